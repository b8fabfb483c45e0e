//! Alerts (SPEC §8): one JSON object per line, `{"time","kind","severity","log","index","sii","msp",
//! "detail"}`, and the stable id that makes delivery at-least-once without repeats. The types are
//! `ledger_core::api`'s (shared with the auditor); the monitor calls the kind `Kind`.

pub use ledger_core::api::{alert_id, Alert, AlertKind as Kind, Identified, Severity};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_exactly_the_spec_members_in_order() {
        let a = Alert::new(Kind::UnexpectedClaimant, "log.example", Some(7), "x")
            .sii("tel:+14155550100")
            .msp("rogue.example");
        let line = a.to_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = vec![
            "time", "kind", "severity", "log", "index", "sii", "msp", "detail",
        ];
        assert!(line.starts_with("{\"time\":"));
        assert!(line.contains("\"kind\":\"unexpected-claimant\",\"severity\":\"critical\""));
        sorted.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, sorted);
        assert_eq!(v["index"], 7);
        let none = Alert::new(Kind::LogStalled, "l", None, "d").to_line();
        assert!(none.contains("\"index\":null,\"sii\":null,\"msp\":null"));
    }

    #[test]
    fn ids_are_stable_and_ignore_time() {
        let mut a = Alert::new(Kind::BadEntry, "l", Some(1), "d");
        let id1 = a.clone().identify("").id;
        a.time += 100;
        a.detail = "other words".into();
        assert_eq!(a.clone().identify("").id, id1);
        assert_ne!(a.clone().identify("root").id, id1);
        a.index = Some(2);
        assert_ne!(a.identify("").id, id1);
        for k in Kind::ALL {
            let s = serde_json::to_string(&k).unwrap();
            assert_eq!(s, format!("\"{}\"", k.as_str()));
        }
    }
}
