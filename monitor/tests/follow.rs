//! Follow mode: the real `monitor` binary polls a test log, alerts on new entries as they appear,
//! raises `log-stalled` once when the checkpoint stops changing, and serves `/metrics`.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{config, kinds, publish, KillOnDrop, Setup, TileServer};
use ledger_core::entry::Role;
use ledger_core::testkit::{claim, test_key, MemLog};
use ledger_core::TreeHash;

const ORIGIN: &str = "example.com/log";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `GET /metrics`, read to the end of the stream: `Connection: close` makes the server close
/// it after the answer (without it the read waits for the keep-alive timeout), and the read
/// timeout bounds the wait should it not (`None`: try again).
fn get_metrics(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn follows_new_entries_reports_a_stall_once_and_serves_metrics() {
    let mut log = MemLog::new(ORIGIN, TreeHash::Blake3);
    let msp = test_key("msp-a.example");
    let rogue = test_key("rogue.example");
    log.enroll(Role::Msp, &msp);
    log.enroll(Role::Msp, &rogue);
    log.submit(
        claim(
            &msp,
            "tel:+14155550100",
            "mimi://msp-a.example/u/a",
            log.now,
            &[],
            None,
        )
        .bytes(),
    )
    .unwrap();
    log.seal();
    let server = TileServer::start(publish(&log));
    let s = Setup::new();
    let mut cfg = config(
        &server.url(),
        ORIGIN,
        &log.key.verifier().to_string(),
        "blake3",
        &s.alerts_path(),
        "[[watch]]\nsii = \"tel:+14155550100\"\nallowed = [\"msp-a.example\"]\n\n[rules]\nunattested_claim = \"off\"\n",
    );
    cfg = cfg.replace(
        "hash = \"blake3\"\n",
        "hash = \"blake3\"\nstall_after_s = 2\n",
    );
    s.write_config(&cfg);
    let port = free_port();
    let _child = KillOnDrop(s.spawn(&["--metrics-listen", &format!("127.0.0.1:{port}")]));

    // The checkpoint does not change: one log-stalled, and only one.
    let alerts = s.wait_alerts(Duration::from_secs(30), |a| !a.is_empty());
    assert_eq!(kinds(&alerts), vec!["log-stalled"], "{alerts:#?}");
    assert_eq!(alerts[0]["index"], log.size());

    // New entries are picked up while following.
    let index = log
        .submit(
            claim(
                &rogue,
                "tel:+14155550100",
                "mimi://rogue.example/u/m",
                log.now,
                &[],
                None,
            )
            .bytes(),
        )
        .unwrap();
    log.seal();
    server.set_files(publish(&log));
    let alerts = s.wait_alerts(Duration::from_secs(30), |a| {
        a.iter().any(|x| x["kind"] == "unexpected-claimant")
    });
    let rogue_alert = alerts
        .iter()
        .find(|x| x["kind"] == "unexpected-claimant")
        .unwrap();
    assert_eq!(rogue_alert["index"], index);

    let metrics = {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(m) = get_metrics(port) {
                if m.contains("kind=\"unexpected-claimant\"} 1") {
                    break m;
                }
            }
            assert!(
                std::time::Instant::now() < end,
                "metrics never showed the alert"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "monitor_log_position{{log=\"{ORIGIN}\"}} {}",
            log.size()
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("monitor_checkpoint_age_seconds{log="),
        "{metrics}"
    );
    assert!(
        metrics.contains("monitor_entries_verified_total{log="),
        "{metrics}"
    );

    // The stall after the growth is a new stall: a second log-stalled, for the new size.
    let alerts = s.wait_alerts(Duration::from_secs(30), |a| {
        a.iter().filter(|x| x["kind"] == "log-stalled").count() >= 2
    });
    let stalls: Vec<_> = alerts
        .iter()
        .filter(|x| x["kind"] == "log-stalled")
        .collect();
    assert_eq!(stalls.len(), 2, "{alerts:#?}");
    assert_eq!(stalls[1]["index"], log.size());
}
