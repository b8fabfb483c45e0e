//! How one-time codes reach the owner of an SII: a pluggable [`Sender`], with an outbox folder (one
//! file per SII, for demos and tests) and an HTTP webhook (for a real SMS or e-mail gateway).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use ledger_core::entry::Action;
use ledger_core::sii::{Name, Sii, SiiKind, Ssi, Tag};
use serde::Serialize;

/// One code to deliver, with what it authorizes (shown to the recipient, so that they know what
/// they are agreeing to — MIMI R1/R10).
#[derive(Clone, Debug)]
pub struct Message {
    /// The SII the code goes to.
    pub to: Sii,
    /// The challenge the code answers.
    pub challenge: String,
    /// The one-time code.
    pub code: String,
    /// The action it authorizes.
    pub action: Action,
    /// The MSP (claim and revoke).
    pub msp: Option<Name>,
    /// The SSI (claim and revoke).
    pub ssi: Option<Ssi>,
    /// The preference tags of a claim.
    pub tags: Vec<Tag>,
    /// When the code expires (Unix seconds).
    pub expires: u64,
}

impl Message {
    /// The human text of the message.
    pub fn text(&self) -> String {
        let what = match (self.action, &self.msp, &self.ssi) {
            (Action::Claim, Some(m), Some(s)) => {
                let tags = if self.tags.is_empty() {
                    String::new()
                } else {
                    let t: Vec<&str> = self.tags.iter().map(Tag::as_str).collect();
                    format!(" (tags {})", t.join(", "))
                };
                format!("{m} to map {} to {s}{tags}", self.to)
            }
            (Action::Revoke, Some(m), Some(s)) => {
                format!("removing the mapping of {} to {s} at {m}", self.to)
            }
            _ => format!("opting {} out of MIMI discovery", self.to),
        };
        format!(
            "Your mimi-ledger code is {}. It authorizes {what}. If you did not ask for this, \
             ignore this message.",
            self.code
        )
    }

    /// The outbox file content: `key value` lines, then an empty line and the human text.
    pub fn outbox_text(&self) -> String {
        let mut s = format!(
            "to {}\nchallenge {}\ncode {}\naction {}\n",
            self.to,
            self.challenge,
            self.code,
            self.action.as_str()
        );
        if let Some(m) = &self.msp {
            s.push_str(&format!("msp {m}\n"));
        }
        if let Some(x) = &self.ssi {
            s.push_str(&format!("ssi {x}\n"));
        }
        for t in &self.tags {
            s.push_str(&format!("tag {t}\n"));
        }
        s.push_str(&format!("expires {}\n\n{}\n", self.expires, self.text()));
        s
    }
}

/// A delivery failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Writing the outbox file failed.
    #[error("cannot write outbox file {path}: {source}")]
    Outbox {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The webhook could not be reached or refused the message.
    #[error("webhook {url}: {reason}")]
    Webhook {
        /// The webhook URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// The boxed future a [`Sender`] returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// Delivers one-time codes.
pub trait Sender: Send + Sync {
    /// A short name for logs (`outbox`, `webhook`).
    fn kind(&self) -> &'static str;
    /// Delivers `msg`; resolves once the message is handed over.
    fn send<'a>(&'a self, msg: &'a Message) -> SendFuture<'a>;
}

/// The file name of an SII's outbox file: every byte outside `[A-Za-z0-9.+@_-]` percent-encoded,
/// so the mapping is injective and safe on any file system (the `ledger` CLI uses the same rule).
pub fn outbox_file_name(sii: &str) -> String {
    let mut out = String::with_capacity(sii.len() + 8);
    for b in sii.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'@' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(".txt");
    out
}

/// Writes each message to `<dir>/<outbox_file_name(sii)>`, replacing the SII's previous one.
#[derive(Clone, Debug)]
pub struct OutboxSender {
    dir: PathBuf,
}

impl OutboxSender {
    /// An outbox in `dir` (created when missing, mode 0700: the files hold one-time codes, and
    /// their names the SIIs being proven).
    pub fn new(dir: PathBuf) -> std::io::Result<OutboxSender> {
        ledger_secret_file::create_private_dir(&dir)?;
        Ok(OutboxSender { dir })
    }
}

impl Sender for OutboxSender {
    fn kind(&self) -> &'static str {
        "outbox"
    }

    fn send<'a>(&'a self, msg: &'a Message) -> SendFuture<'a> {
        Box::pin(async move {
            let name = outbox_file_name(msg.to.as_str());
            let path = self.dir.join(&name);
            let tmp = self.dir.join(format!(".{name}.{}.tmp", msg.challenge));
            let err = |source| SendError::Outbox {
                path: path.clone(),
                source,
            };
            // A one-time code is a secret until used: the file is created 0600 (never with the
            // umask), then renamed over the SII's previous one, so a reader never sees half a
            // message. The temporary name is unique per challenge, so `create_new` never meets it.
            let text = msg.outbox_text();
            let write_tmp = tmp.clone();
            tokio::task::spawn_blocking(move || {
                ledger_secret_file::write_secret(&write_tmp, text.as_bytes())
            })
            .await
            .map_err(|e| err(std::io::Error::other(e)))?
            .map_err(|e| err(e.into()))?;
            tokio::fs::rename(&tmp, &path).await.map_err(err)?;
            Ok(())
        })
    }
}

/// POSTs each message as JSON to a gateway (`{"to","channel","challenge","code","text","expires"}`).
#[derive(Clone, Debug)]
pub struct WebhookSender {
    url: String,
    bearer: Option<String>,
    client: reqwest::Client,
}

#[derive(Serialize)]
struct WebhookBody<'a> {
    to: &'a str,
    channel: &'static str,
    challenge: &'a str,
    code: &'a str,
    text: String,
    expires: u64,
}

impl WebhookSender {
    /// A webhook at `url`, with an optional bearer token for the gateway.
    pub fn new(url: String, bearer: Option<String>) -> Result<WebhookSender, SendError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SendError::Webhook {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        Ok(WebhookSender {
            url,
            bearer,
            client,
        })
    }
}

impl Sender for WebhookSender {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, msg: &'a Message) -> SendFuture<'a> {
        Box::pin(async move {
            let body = WebhookBody {
                to: msg.to.as_str(),
                channel: match msg.to.kind() {
                    SiiKind::Tel => "sms",
                    _ => "email",
                },
                challenge: &msg.challenge,
                code: &msg.code,
                text: msg.text(),
                expires: msg.expires,
            };
            let mut req = self.client.post(&self.url).json(&body);
            if let Some(t) = &self.bearer {
                req = req.bearer_auth(t);
            }
            let fail = |reason: String| SendError::Webhook {
                url: self.url.clone(),
                reason,
            };
            let resp = req.send().await.map_err(|e| fail(e.to_string()))?;
            if !resp.status().is_success() {
                return Err(fail(format!("answered HTTP {}", resp.status())));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            to: Sii::parse("tel:+14155550100").unwrap(),
            challenge: "abc".into(),
            code: "123456".into(),
            action: Action::Claim,
            msp: Some(Name::parse("msp-a.example").unwrap()),
            ssi: Some(Ssi::parse("mimi://msp-a.example/u/alice").unwrap()),
            tags: vec![Tag::parse("Personal").unwrap()],
            expires: 10,
        }
    }

    #[test]
    fn outbox_file_names_are_safe_and_distinct() {
        assert_eq!(
            outbox_file_name("tel:+14155550100"),
            "tel%3A+14155550100.txt"
        );
        assert_eq!(
            outbox_file_name("mailto:a/b@x.example"),
            "mailto%3Aa%2Fb@x.example.txt"
        );
        assert_ne!(
            outbox_file_name("mailto:a%2F@x"),
            outbox_file_name("mailto:a/@x")
        );
    }

    #[tokio::test]
    async fn outbox_writes_one_file_per_sii() {
        let dir = tempfile::tempdir().unwrap();
        let s = OutboxSender::new(dir.path().join("out")).unwrap();
        let mut m = msg();
        s.send(&m).await.unwrap();
        m.challenge = "def".into();
        m.code = "654321".into();
        s.send(&m).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("out")).unwrap().collect();
        assert_eq!(files.len(), 1, "one file per SII, replaced");
        let text =
            std::fs::read_to_string(dir.path().join("out").join("tel%3A+14155550100.txt")).unwrap();
        assert!(text.starts_with("to tel:+14155550100\nchallenge def\ncode 654321\naction claim\n"));
        assert!(text.contains("authorizes msp-a.example to map tel:+14155550100 to mimi://msp-a.example/u/alice (tags Personal)"));
    }

    #[tokio::test]
    async fn webhook_posts_json_with_the_bearer_token() {
        use std::sync::{Arc, Mutex};
        type Seen = Arc<Mutex<Vec<(Option<String>, serde_json::Value)>>>;
        let seen: Seen = Arc::default();
        let seen2 = seen.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::Json<serde_json::Value>| {
                    let seen = seen2.clone();
                    async move {
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        seen.lock().unwrap().push((auth, body.0));
                        "ok"
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let hook =
            WebhookSender::new(format!("http://{addr}/hook"), Some("s3cret".into())).unwrap();
        hook.send(&msg()).await.unwrap();
        let got = seen.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.as_deref(), Some("Bearer s3cret"));
        let v = &got[0].1;
        assert_eq!(v["to"], "tel:+14155550100");
        assert_eq!(v["channel"], "sms");
        assert_eq!(v["code"], "123456");
        assert_eq!(v["challenge"], "abc");
        assert!(v["text"].as_str().unwrap().contains("123456"));

        // A gateway that refuses is a delivery failure, naming the status.
        let bad = WebhookSender::new(format!("http://{addr}/nope"), None).unwrap();
        let err = bad.send(&msg()).await.unwrap_err();
        assert!(err.to_string().contains("404"), "{err}");
    }
}
