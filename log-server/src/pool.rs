//! A small fixed pool of OS threads for CPU-bound work (signature checks), off the async runtime.
//!
//! Idle workers block on a channel instead of spinning (as rayon's do), so a lightly loaded log does
//! not burn CPU between submissions. Callers bound the queued work themselves (the sequencer's
//! reserved queue slots bound the submissions being checked).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed-size worker pool.
#[derive(Debug, Clone)]
pub struct WorkerPool {
    tx: mpsc::Sender<Job>,
}

impl WorkerPool {
    /// Starts `threads` workers (at least one) named `name-<i>`.
    pub fn new(name: &str, threads: usize) -> std::io::Result<WorkerPool> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || loop {
                    // The lock is held only while taking one job, not while running it.
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // every sender is gone
                    }
                })?;
        }
        Ok(WorkerPool { tx })
    }

    /// A pool with one worker per available CPU.
    pub fn per_cpu(name: &str) -> std::io::Result<WorkerPool> {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        WorkerPool::new(name, n)
    }

    /// Runs `f` on a worker and awaits its result.
    pub async fn run<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.tx.send(job).ok()?;
        rx.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_on_named_workers() {
        let pool = WorkerPool::new("test-pool", 2).expect("pool");
        let mut handles = Vec::new();
        for i in 0..20u64 {
            let p = pool.clone();
            handles.push(tokio::spawn(async move {
                p.run(move || {
                    let name = std::thread::current().name().map(str::to_string);
                    (i * i, name)
                })
                .await
            }));
        }
        for (i, h) in handles.into_iter().enumerate() {
            let (sq, name) = h.await.expect("join").expect("ran");
            assert_eq!(sq, (i * i) as u64);
            assert!(name.expect("named").starts_with("test-pool-"));
        }
    }
}
