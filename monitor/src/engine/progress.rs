//! The catch-up progress display: a bar on a terminal, plain lines every few seconds otherwise.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

/// Catch-up progress: an `indicatif` bar on a terminal, plain lines every few seconds otherwise.
pub(super) struct Ui {
    bar: Option<ProgressBar>,
    name: String,
    total: u64,
    start: Instant,
    start_pos: u64,
    last_line: Instant,
}

impl Ui {
    pub(super) fn new(bar: bool, name: &str, pos: u64, total: u64) -> Ui {
        let bar = bar.then(|| {
            let b = ProgressBar::new(total);
            b.set_position(pos);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} entries ({per_sec}, eta {eta})",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_message(name.to_string());
            b
        });
        Ui {
            bar,
            name: name.to_string(),
            total,
            start: Instant::now(),
            start_pos: pos,
            last_line: Instant::now(),
        }
    }

    pub(super) fn set(&mut self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        } else if self.last_line.elapsed() >= Duration::from_secs(5) {
            self.last_line = Instant::now();
            info!(log = %self.name, "catch-up: {pos}/{} entries ({:.0}/s)", self.total, self.rate(pos));
        }
    }

    pub(super) fn rate(&self, pos: u64) -> f64 {
        let secs = self.start.elapsed().as_secs_f64().max(1e-6);
        (pos.saturating_sub(self.start_pos)) as f64 / secs
    }

    pub(super) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        let done = self.total.saturating_sub(self.start_pos);
        if done > 0 {
            info!(
                log = %self.name,
                "caught up {done} entries in {:.1} s ({:.0}/s)",
                self.start.elapsed().as_secs_f64(),
                self.rate(self.total)
            );
        }
    }
}
