//! `ledger lookup --relay URL`: the lookup through an Oblivious HTTP relay (RFC 9458), so that the
//! relay learns who asks but not what, and the DP (the gateway) what but not who.
//!
//! The request is encapsulated for the gateway key configuration pinned in the trust file
//! (`ohttp_keys`, written by `ledger trust init` and `ledger trust update-ohttp`): keys are never
//! fetched at lookup time, since a DP handing each client its own key could tell clients apart
//! (RFC 9458 §7). A gateway that does not accept the pinned configuration is refused as a key
//! mismatch, with exit status 2 like an answer that does not verify. The answer is then verified
//! exactly as a direct one (SPEC §6).

use std::path::Path;

use anyhow::{anyhow, Context as _};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ledger_ohttp::{client, config, message, KEYS_PATH};

use crate::commands::canonical_sii;
use crate::failover::Found;
use crate::http::{ctx, join, query_escape, Http, HttpError};
use crate::lookup::{print_json, print_table, remember_size, verify_body};
use crate::trust::{TrustFile, TrustFileExt as _};
use crate::util::VerificationFailed;

/// The step name of a key mismatch in `VERIFICATION FAILED` messages.
const KEY_MISMATCH: &str = "ohttp-key-mismatch";

/// `GET <log>/ohttp-keys`, checked, as the base64 the trust file stores.
pub fn fetch_keys(http: &Http, log: &str) -> anyhow::Result<String> {
    let url = join(log.trim_end_matches('/'), KEYS_PATH);
    let bytes = http
        .get_bytes(&url)
        .map_err(ctx("cannot fetch the log's OHTTP key configuration"))?;
    let list = config::parse_list(&bytes).map_err(|e| anyhow!("{url}: {e}"))?;
    if !list.iter().any(config::KeyConfigInfo::supported) {
        return Err(anyhow!(
            "{url}: no key configuration with a supported suite"
        ));
    }
    Ok(B64.encode(bytes))
}

/// A short description of a pinned list: its key ids, the current (first) one named.
pub fn describe(b64: &str) -> String {
    match B64
        .decode(b64)
        .ok()
        .and_then(|b| config::parse_list(&b).ok())
    {
        Some(list) => format!(
            "key id {} (of {})",
            list.first().map_or(0, |c| c.key_id),
            list.iter()
                .map(|c| c.key_id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "unreadable".to_string(),
    }
}

/// `ledger trust update-ohttp`: re-pin the log's current key configuration.
pub fn update_pin(trust_path: &Path, log: Option<&str>) -> anyhow::Result<()> {
    let mut tf = TrustFile::load(trust_path)?;
    let log = tf.url(log, "--log")?;
    let http = Http::new()?;
    let keys = fetch_keys(&http, &log)?;
    let before = tf.ohttp_keys.as_deref().map(describe);
    if tf.ohttp_keys.as_deref() == Some(keys.as_str()) {
        println!(
            "the pinned OHTTP key configuration is current: {}",
            describe(&keys)
        );
        return Ok(());
    }
    tf.ohttp_keys = Some(keys);
    tf.save(trust_path)?;
    println!(
        "pinned the OHTTP key configuration of {log}: {} (was: {})",
        tf.ohttp_keys.as_deref().map(describe).unwrap_or_default(),
        before.unwrap_or_else(|| "none".to_string())
    );
    Ok(())
}

fn mismatch(detail: String) -> anyhow::Error {
    VerificationFailed {
        step: Some(KEY_MISMATCH.to_string()),
        detail,
    }
    .into()
}

/// The authority named in the inner request: the `--dp` URL's, else the trust file's log URL's.
fn authority(url: Option<&str>) -> String {
    url.and_then(|u| u.split_once("://").map(|(_, rest)| rest))
        .map(|rest| rest.split('/').next().unwrap_or("").to_string())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "dp.invalid".to_string())
}

/// `ledger lookup SII --relay URL [--dp URL] [--json]`.
pub fn lookup(
    trust_path: &Path,
    sii: &str,
    region: Option<&str>,
    relay: &str,
    dp: Option<&str>,
    json: bool,
    use_token: bool,
) -> anyhow::Result<()> {
    let tf = TrustFile::load(trust_path)?;
    let trust = tf.trust()?;
    let pinned = tf.ohttp_keys.as_deref().ok_or_else(|| {
        anyhow!(
            "{} pins no OHTTP gateway key configuration, so a lookup through a relay is refused \
             (keys are never fetched at lookup time); pin one with `ledger trust update-ohttp`",
            trust_path.display()
        )
    })?;
    let list = B64
        .decode(pinned)
        .map_err(|e| anyhow!("the trust file's ohttp_keys is not base64: {e}"))?;
    let sii = canonical_sii(sii, region)?;
    let authority = authority(dp.or(tf.log_url.as_deref()));
    let path = format!("/v1/lookup?sii={}", query_escape(sii.as_str()));
    // A stored token for the DP pays for the lookup inside the encapsulation (the relay never
    // sees it; the DP cannot tell which MSP fetched it).
    let dp_url = dp.or(tf.log_url.as_deref()).unwrap_or_default();
    let token = crate::tokens::take_authorization(trust_path, dp_url, use_token)?;
    let request = message::encode_get_authorized(
        &authority,
        &path,
        std::time::SystemTime::now(),
        token.as_deref(),
    )
    .context("encoding the lookup")?;
    let (encapsulated, pending) =
        client::encapsulate(&list, &request).context("encapsulating the lookup")?;
    let key_id = pending.key_id;
    let http = Http::new()?;
    let sealed = match http.post_ohttp(relay, encapsulated) {
        Ok(b) => b,
        Err(HttpError::Problem {
            status, problem, ..
        }) if status == 400 && problem.detail.starts_with("key mismatch") => {
            return Err(mismatch(format!(
                "the gateway behind {relay} does not accept the pinned OHTTP key configuration \
                 (key id {key_id}): {}. Its keys differ from the ones in the trust file: if the \
                 log operator announced a key rotation, re-pin with `ledger trust update-ohttp`; \
                 otherwise this DP may be giving clients different keys to tell them apart",
                problem.detail
            )))
        }
        Err(e) => return Err(ctx("the relay did not answer")(e)),
    };
    let inner = pending.open(&sealed).map_err(|e| {
        mismatch(format!(
            "the answer through {relay} is not sealed with the pinned key configuration (key id {key_id}): {e}"
        ))
    })?;
    let answer = message::decode_response(&inner).context("the gateway's answer")?;
    if answer.status != 200 {
        let detail = serde_json::from_slice::<ledger_core::api::Problem>(&answer.body)
            .map(|p| format!("{}: {}", p.type_, p.detail))
            .unwrap_or_else(|_| {
                String::from_utf8_lossy(&answer.body)
                    .chars()
                    .take(200)
                    .collect()
            });
        return Err(anyhow!(
            "the Discovery Provider behind {relay} refused the lookup ({}): {detail}",
            answer.status
        ));
    }
    let via = format!("{authority} via relay {relay}");
    let looked = verify_body(&sii, &answer.body, &trust).map_err(|e| e.into_error(&via))?;
    let v = &looked.verified;
    remember_size(&tf, trust_path, v.checkpoint.checkpoint.size)?;
    if json {
        let found = Found {
            looked,
            dp: via,
            skipped: Vec::new(),
        };
        print_json(&found.looked.verified, &found)?;
    } else {
        print_table(v);
    }
    Ok(())
}
