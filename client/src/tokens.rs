//! `ledger token`: Privacy Pass lookup tokens (RFC 9576–9578, publicly verifiable, type 2) for
//! Discovery Providers started with `--require-token` (docs/privacy.md).
//!
//! `ledger token fetch --issuer URL --credential FILE --count N` asks the DP for its challenge
//! (the `WWW-Authenticate: PrivateToken …` of an unauthenticated `GET /v1/lookup`), checks that
//! the key it names is the issuer's (its directory), and fetches N tokens from the issuer with
//! the MSP's bearer credential — each a blind RSA signature on a fresh nonce, so the issuer never
//! sees the token it signed. Tokens are kept in a state file next to the trust file
//! (`<trust>.tokens.json`, mode 0600); `ledger lookup` spends one per lookup (removed from the
//! file before the request is sent: a token is never sent twice).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use privacypass::auth::authenticate::TokenChallenge;
use privacypass::public_tokens::{PublicKey, TokenRequest, TokenResponse};
use privacypass::{Deserialize as _, Serialize as _};
use serde::{Deserialize, Serialize};

use crate::failover::Skip;
use crate::http::{join, Http};
use crate::lookup::LookupError;
use crate::trust::{TrustFile, TrustFileExt as _};

const B64URL_ANY: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const DAY_S: u64 = 86_400;
const DIRECTORY_PATH: &str = "/.well-known/private-token-issuer-directory";

/// `ledger token …`.
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Fetch tokens for a DP from an issuer, with an MSP credential.
    ///
    /// Example:
    ///   ledger token fetch --issuer http://127.0.0.1:8090 --credential msp.credential --count 20
    #[command(verbatim_doc_comment)]
    Fetch {
        /// The issuer's base URL.
        #[arg(long, value_name = "URL")]
        issuer: String,
        /// A file holding the MSP's bearer credential for the issuer.
        #[arg(long, value_name = "FILE")]
        credential: PathBuf,
        /// How many tokens to fetch.
        #[arg(long, default_value_t = 10)]
        count: u32,
        /// The DP the tokens are for (default: the trust file's log_url).
        #[arg(long, value_name = "URL")]
        dp: Option<String>,
    },
    /// How many tokens are stored, per DP.
    Count,
}

/// One stored token.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    /// The DP's base URL it is for.
    dp: String,
    /// The UTC day it was fetched on (the DP accepts it that day and the next).
    day: u64,
    /// The token (base64url of its TLS encoding).
    token: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Wallet {
    tokens: Vec<Stored>,
}

/// The state file of `trust`: `<trust stem>.tokens.json` in the same folder.
pub fn state_path(trust: &Path) -> PathBuf {
    let stem = trust
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trust".into());
    trust.with_file_name(format!("{stem}.tokens.json"))
}

fn today() -> u64 {
    crate::util::now() / DAY_S
}

impl Wallet {
    fn load(path: &Path) -> anyhow::Result<Wallet> {
        match std::fs::read(path) {
            Ok(b) => {
                let mut w: Wallet = serde_json::from_slice(&b)
                    .with_context(|| format!("token state file {}", path.display()))?;
                let t = today();
                w.tokens.retain(|s| s.day + 1 >= t);
                Ok(w)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Wallet::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the file (mode 0600): a new file beside it, synced, renamed over it.
    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("json.tmp");
        let _ = std::fs::remove_file(&tmp);
        ledger_secret_file::write_secret(&tmp, &serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
        Ok(())
    }

    fn take(&mut self, url: &str) -> Option<Stored> {
        let i = self
            .tokens
            .iter()
            .position(|s| url.starts_with(s.dp.trim_end_matches('/')))?;
        Some(self.tokens.remove(i))
    }
}

/// `ledger token …`.
pub fn run(trust: &Path, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Fetch {
            issuer,
            credential,
            count,
            dp,
        } => fetch(trust, &issuer, &credential, count, dp.as_deref()),
        TokenCommand::Count => {
            let w = Wallet::load(&state_path(trust))?;
            let mut per: std::collections::BTreeMap<&str, usize> = Default::default();
            for s in &w.tokens {
                *per.entry(s.dp.as_str()).or_default() += 1;
            }
            for (dp, n) in per {
                println!("{n}\t{dp}");
            }
            Ok(())
        }
    }
}

/// The `PrivateToken` challenge and key of a `WWW-Authenticate` value.
fn parse_challenge(value: &str) -> anyhow::Result<(TokenChallenge, Vec<u8>)> {
    let rest = value
        .trim()
        .strip_prefix("PrivateToken ")
        .ok_or_else(|| anyhow!("not a PrivateToken challenge: {value:?}"))?;
    let mut challenge = None;
    let mut key = None;
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("challenge=") {
            challenge = Some(B64URL_ANY.decode(v.trim_matches('"'))?);
        } else if let Some(v) = part.strip_prefix("token-key=") {
            key = Some(B64URL_ANY.decode(v.trim_matches('"'))?);
        }
    }
    let challenge = challenge.ok_or_else(|| anyhow!("the challenge has no challenge="))?;
    let challenge = TokenChallenge::deserialize(&challenge)
        .map_err(|e| anyhow!("the challenge does not parse: {e}"))?;
    Ok((challenge, key.ok_or_else(|| anyhow!("no token-key="))?))
}

#[derive(Deserialize)]
struct Directory {
    #[serde(rename = "issuer-request-uri")]
    request_uri: String,
    #[serde(rename = "token-keys")]
    token_keys: Vec<DirectoryKey>,
}

#[derive(Deserialize)]
struct DirectoryKey {
    #[serde(rename = "token-type")]
    token_type: u16,
    #[serde(rename = "token-key")]
    token_key: String,
}

fn fetch(
    trust: &Path,
    issuer: &str,
    credential: &Path,
    count: u32,
    dp: Option<&str>,
) -> anyhow::Result<()> {
    let tf = TrustFile::load(trust)?;
    let dp = tf.url(dp, "--dp")?;
    let bearer = std::fs::read_to_string(credential)
        .with_context(|| format!("reading the credential {}", credential.display()))?
        .trim()
        .to_string();
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    // The DP's challenge: an unauthenticated lookup is refused with it.
    let probe = join(&dp, "/v1/lookup");
    let resp = client
        .get(&probe)
        .send()
        .with_context(|| format!("asking {probe} for its token challenge"))?;
    let www = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(www) = www.filter(|_| resp.status().as_u16() == 401) else {
        bail!(
            "the DP at {dp} does not ask for Privacy Pass tokens (HTTP {} without a PrivateToken challenge)",
            resp.status().as_u16()
        );
    };
    let (challenge, dp_key) = parse_challenge(&www)?;
    // The issuer's key, which must be the one the DP pins.
    let dir_url = join(issuer, DIRECTORY_PATH);
    let dir: Directory = client
        .get(&dir_url)
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .with_context(|| format!("reading the issuer directory {dir_url}"))?;
    let issuer_key = dir
        .token_keys
        .iter()
        .find(|k| k.token_type == 2)
        .ok_or_else(|| anyhow!("{dir_url} lists no key of token type 2"))?;
    let issuer_key = B64URL_ANY.decode(&issuer_key.token_key)?;
    if issuer_key != dp_key {
        bail!("the DP at {dp} wants tokens of another issuer key than {issuer}'s");
    }
    let key = PublicKey::from_spki(&issuer_key).map_err(|e| anyhow!("issuer key: {e}"))?;
    let request_url = if dir.request_uri.starts_with("http") {
        dir.request_uri.clone()
    } else {
        join(issuer, &dir.request_uri)
    };
    let state = state_path(trust);
    let mut wallet = Wallet::load(&state)?;
    let mut rng = blind_rsa_signatures::reexports::rand::rng();
    let mut got = 0u32;
    let mut stop = None;
    for _ in 0..count {
        let (req, st) = TokenRequest::new(&mut rng, key.clone(), &challenge)
            .map_err(|e| anyhow!("making a token request: {e}"))?;
        let body = req
            .tls_serialize_detached()
            .map_err(|e| anyhow!("encoding the token request: {e:?}"))?;
        let resp = client
            .post(&request_url)
            .bearer_auth(&bearer)
            .header(reqwest::header::CONTENT_TYPE, "message/token-request")
            .body(body)
            .send()
            .with_context(|| format!("POST {request_url}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().context("reading the token response")?;
        if status != 200 {
            let detail = serde_json::from_slice::<ledger_core::api::Problem>(&bytes)
                .map(|p| format!("{}: {}", p.type_.rsplit(':').next().unwrap_or(""), p.detail))
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).chars().take(200).collect());
            stop = Some(format!("the issuer refused (HTTP {status}) {detail}"));
            break;
        }
        let resp = TokenResponse::tls_deserialize_exact(&bytes)
            .map_err(|e| anyhow!("the token response does not parse: {e:?}"))?;
        let token = resp
            .issue_token(&st)
            .map_err(|e| anyhow!("the issuer's blind signature does not verify: {e}"))?;
        let ser = token
            .tls_serialize_detached()
            .map_err(|e| anyhow!("encoding the token: {e:?}"))?;
        wallet.tokens.push(Stored {
            dp: dp.clone(),
            day: today(),
            token: URL_SAFE_NO_PAD.encode(ser),
        });
        got += 1;
    }
    wallet.save(&state)?;
    let held = wallet.tokens.iter().filter(|s| s.dp == dp).count();
    eprintln!(
        "fetched {got} of {count} tokens for {dp} ({held} stored in {})",
        state.display()
    );
    match stop {
        Some(why) => bail!("fetched {got} of {count} tokens: {why}"),
        None => Ok(()),
    }
}

/// The client for `ledger lookup`: spends one stored token per lookup of a DP it holds tokens
/// for (`--token`: fails unless it holds one for each DP).
pub fn lookup_http(
    http: Http,
    trust: &Path,
    dps: &[String],
    require: bool,
) -> anyhow::Result<Http> {
    let state = state_path(trust);
    let wallet = Wallet::load(&state)?;
    if wallet.tokens.is_empty() && !require {
        return Ok(http);
    }
    if require {
        for dp in dps {
            if !wallet
                .tokens
                .iter()
                .any(|s| dp.starts_with(s.dp.trim_end_matches('/')))
            {
                bail!(
                    "no token stored for {dp} in {}: run `ledger token fetch --issuer URL --credential FILE --count N`",
                    state.display()
                );
            }
        }
    }
    let wallet = Arc::new(Mutex::new(wallet));
    Ok(http.with_lookup_auth(Box::new(move |url: &str| {
        let mut w = wallet.lock().unwrap_or_else(|p| p.into_inner());
        let s = w.take(url)?;
        // Removed from the file before it is sent: never spent twice, even after a crash.
        if let Err(e) = w.save(&state) {
            eprintln!("warning: cannot update {}: {e:#}", state.display());
            return None;
        }
        Some(format!("PrivateToken token={}", s.token))
    })))
}

/// One stored token for `dp` as an `Authorization` value, removed from the state file before it
/// is returned (never spent twice, even after a crash); `None` when none is stored (an error
/// when `require`). For lookups through an Oblivious HTTP relay, where the token travels inside
/// the encapsulated request.
pub fn take_authorization(trust: &Path, dp: &str, require: bool) -> anyhow::Result<Option<String>> {
    let state = state_path(trust);
    let mut wallet = Wallet::load(&state)?;
    match wallet.take(dp) {
        Some(s) => {
            wallet.save(&state)?;
            Ok(Some(format!("PrivateToken token={}", s.token)))
        }
        None if require => bail!(
            "no token stored for {dp} in {}: run `ledger token fetch --issuer URL --credential FILE --count N`",
            state.display()
        ),
        None => Ok(None),
    }
}

/// What to tell the user when DPs refused for want of a token.
pub fn hint(skipped: &[Skip], trust: &Path) -> Option<String> {
    skipped.iter().find_map(|s| match &s.error {
        LookupError::NoAnswer(e) => match e.slug().as_deref() {
            Some("token-required") => Some(format!(
                "{} requires Privacy Pass tokens: fetch some with `ledger --trust {} token fetch --issuer ISSUER_URL --credential FILE --count N` (an MSP credential for the issuer), then look up again",
                s.dp,
                trust.display()
            )),
            Some("token-spent") | Some("bad-token") => Some(format!(
                "{} refused the stored token; fetch fresh ones with `ledger token fetch`",
                s.dp
            )),
            _ => None,
        },
        LookupError::Rejected { .. } => None,
    })
}

/// `e` with `hint` appended.
pub fn with_hint(e: anyhow::Error, hint: Option<String>) -> anyhow::Error {
    match hint {
        Some(h) => {
            if e.downcast_ref::<crate::util::VerificationFailed>()
                .is_some()
            {
                eprintln!("hint: {h}");
                e
            } else {
                e.context(h)
            }
        }
        None => e,
    }
}
