//! The C2SP tlog-witness wire format (SPEC §7), for both ends: the log that asks for cosignatures
//! and the witness (the auditor) that answers.
//!
//! `POST /add-checkpoint` carries `old <size>\n`, at most [`MAX_PROOF_LINES`] base64 consistency
//! proof hashes one per line, an empty line, and the checkpoint note. A `409 Conflict` answers with
//! the witness's latest cosigned size as `text/x.tlog.size` ([`TLOG_SIZE_CONTENT_TYPE`]); a `200`
//! answers with signature lines, of which only the `cosignature/v1` lines by the witness's key
//! count ([`cosignatures_in_response`]). Witnesses serve their latest cosigned checkpoint of a log
//! at `/<hex sha256(origin)>/checkpoint` ([`gossip_path`]) for gossip.
//!
//! Pure byte and text handling, no I/O: the log server's async client, the auditor's HTTP handler
//! and the monitor's gossip all build and read exactly the same bytes. Which status a witness
//! answers is the witness's business (`auditor::witness`); this module only says what the bytes
//! mean.

use sha2::{Digest as _, Sha256};

use crate::api::b64::{decode_hash, encode_hash};
use crate::checkpoint::parse_canonical_u64;
use crate::cosignature::verify_cosignature;
use crate::hash::to_hex;
use crate::key::VerifierKey;
use crate::note::{Note, NoteSignature};
use crate::Hash;

/// The most consistency proof lines a request may carry (tlog-witness: clients MUST NOT send
/// more than 63, a proof between any two sizes below 2⁶³ fits).
pub const MAX_PROOF_LINES: usize = 63;

/// The `Content-Type` of a `409 Conflict` answer, whose body is the witness's size and `\n`.
pub const TLOG_SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// Why witness protocol bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A request line does not end in `\n`.
    #[error("a line does not end in a newline")]
    LineWithoutNewline,
    /// A request line is not UTF-8.
    #[error("a line is not UTF-8")]
    LineNotUtf8,
    /// The first line is not `old <size>` with a canonical decimal size.
    #[error("first line must be `old <size>` (decimal, no leading zeros)")]
    BadOldSize,
    /// More than [`MAX_PROOF_LINES`] proof lines.
    #[error("more than 63 consistency proof lines")]
    TooManyProofLines,
    /// A proof line is not one standard-base64 hash of 32 bytes.
    #[error("proof line: {0}")]
    BadProofLine(String),
    /// Nothing follows the empty line.
    #[error("no checkpoint after the empty line")]
    NoCheckpoint,
    /// A `text/x.tlog.size` body is not a canonical decimal size and a newline.
    #[error("{0:?} is not a text/x.tlog.size body")]
    BadSizeBody(String),
    /// A `200` body is not signature lines for the checkpoint.
    #[error("witness answer is not signature lines: {0}")]
    NotSignatureLines(String),
    /// A `200` body has no `cosignature/v1` line by the witness's key that verifies.
    #[error("no cosignature by the witness key verifies")]
    NoValidCosignature,
}

/// A parsed `add-checkpoint` request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    /// The size of the checkpoint the client believes the witness cosigned last.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The checkpoint note bytes, as sent (not yet parsed: that is the witness's next step).
    pub checkpoint: Vec<u8>,
}

/// Parses a C2SP size (decimal u64, no sign, no leading zeros).
pub fn parse_size(s: &str) -> Option<u64> {
    parse_canonical_u64(s)
}

/// Encodes a request body: `old <size>\n`, one base64 hash per line, `\n`, the checkpoint note.
pub fn format_request(old_size: u64, proof: &[Hash], checkpoint_note: &[u8]) -> Vec<u8> {
    let mut out = format!("old {old_size}\n").into_bytes();
    for h in proof {
        out.extend_from_slice(encode_hash(h).as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(checkpoint_note);
    out
}

/// Parses a request body (tlog-witness "add-checkpoint": old size line, zero to 63 proof lines,
/// an empty line, the checkpoint). The checkpoint bytes are returned as they are.
pub fn parse_request(body: &[u8]) -> Result<AddCheckpointRequest, CodecError> {
    let mut rest = body;
    let next_line = |rest: &mut &[u8]| -> Result<String, CodecError> {
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(CodecError::LineWithoutNewline)?;
        let (line, tail) = rest.split_at(nl);
        *rest = tail.get(1..).unwrap_or_default();
        String::from_utf8(line.to_vec()).map_err(|_| CodecError::LineNotUtf8)
    };
    let first = next_line(&mut rest)?;
    let old_size = first
        .strip_prefix("old ")
        .and_then(parse_size)
        .ok_or(CodecError::BadOldSize)?;
    let mut proof = Vec::new();
    loop {
        let line = next_line(&mut rest)?;
        if line.is_empty() {
            break;
        }
        if proof.len() == MAX_PROOF_LINES {
            return Err(CodecError::TooManyProofLines);
        }
        proof.push(decode_hash(&line).map_err(CodecError::BadProofLine)?);
    }
    if rest.is_empty() {
        return Err(CodecError::NoCheckpoint);
    }
    Ok(AddCheckpointRequest {
        old_size,
        proof,
        checkpoint: rest.to_vec(),
    })
}

/// The body of a `409 Conflict`: the witness's latest cosigned size and a newline.
pub fn format_size_body(size: u64) -> String {
    format!("{size}\n")
}

/// Parses the body of a `409 Conflict` (`text/x.tlog.size`).
pub fn parse_size_body(body: &str) -> Result<u64, CodecError> {
    body.strip_suffix('\n')
        .and_then(parse_size)
        .ok_or_else(|| CodecError::BadSizeBody(body.to_string()))
}

/// The signatures among `sigs` that verify as `cosignature/v1` by `witness_key` over
/// `checkpoint_text`, in order; every other line (the log's own, another witness's, a bad one) is
/// dropped.
pub fn select_cosignatures(
    checkpoint_text: &str,
    sigs: &[NoteSignature],
    witness_key: &VerifierKey,
) -> Vec<NoteSignature> {
    sigs.iter()
        .filter(|s| verify_cosignature(witness_key, checkpoint_text, s).is_ok())
        .cloned()
        .collect()
}

/// Reads a `200` answer to `add-checkpoint` as tlog-witness suggests: appended to the checkpoint
/// text it must form a note with the same text; returns its lines that verify as `cosignature/v1`
/// by `witness_key` (at least one).
pub fn cosignatures_in_response(
    checkpoint_text: &str,
    body: &str,
    witness_key: &VerifierKey,
) -> Result<Vec<NoteSignature>, CodecError> {
    let note = Note::parse(format!("{checkpoint_text}\n{body}").as_bytes())
        .map_err(|e| CodecError::NotSignatureLines(e.to_string()))?;
    if note.text() != checkpoint_text {
        return Err(CodecError::NotSignatureLines(
            "body is not only signature lines".into(),
        ));
    }
    let valid = select_cosignatures(checkpoint_text, note.signatures(), witness_key);
    if valid.is_empty() {
        return Err(CodecError::NoValidCosignature);
    }
    Ok(valid)
}

/// The gossip path segment of a log: lowercase hex SHA-256 of its origin.
pub fn origin_hash(origin: &str) -> String {
    to_hex(&Sha256::digest(origin.as_bytes()))
}

/// The path at which a witness serves its latest cosigned checkpoint of `origin`:
/// `/<hex sha256(origin)>/checkpoint`.
pub fn gossip_path(origin: &str) -> String {
    format!("/{}/checkpoint", origin_hash(origin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Checkpoint, SignedCheckpoint};
    use crate::cosignature::cosign;
    use crate::testkit::{test_key, test_witness_key};

    #[test]
    fn request_round_trips() {
        let proof = vec![[1u8; 32], [2u8; 32]];
        let note = b"o\n1\nAAAA\n\n\xe2\x80\x94 o AAAAAAA=\n".to_vec();
        let body = format_request(7, &proof, &note);
        let r = parse_request(&body).unwrap();
        assert_eq!(r.old_size, 7);
        assert_eq!(r.proof, proof);
        assert_eq!(r.checkpoint, note);
    }

    #[test]
    fn malformed_requests_are_refused() {
        let note = b"o\n1\nAAAA\n\n\xe2\x80\x94 o AAAAAAA=\n";
        for bad in [
            &b"old 07\n\n"[..],
            b"old -1\n\n",
            b"old 1",
            b"new 1\n\nx",
            b"old 1\n\n",
            b"old 1\nnot base64\n\nx",
            b"old 1\nAAAA\n\nx",
        ] {
            assert!(
                parse_request(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let too_long = format_request(1, &vec![[0u8; 32]; 64], note);
        assert_eq!(parse_request(&too_long), Err(CodecError::TooManyProofLines));
        let max = format_request(1, &vec![[0u8; 32]; 63], note);
        assert_eq!(parse_request(&max).unwrap().proof.len(), 63);
    }

    #[test]
    fn size_bodies_round_trip() {
        assert_eq!(parse_size_body(&format_size_body(42)), Ok(42));
        for bad in ["42", "042\n", "-1\n", "\n", "4 2\n"] {
            assert!(parse_size_body(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_and_filters_cosignature_lines() {
        let log = test_key("log.example/a");
        let scp = SignedCheckpoint::sign(
            Checkpoint {
                origin: "log.example/a".into(),
                size: 3,
                root: [7; 32],
            },
            &log,
        )
        .unwrap();
        let w = test_witness_key("w.example/1");
        let other = test_witness_key("w.example/2");
        let text = scp.note.text();
        let mine = cosign(&w, text, 100).unwrap();
        let theirs = cosign(&other, text, 100).unwrap();
        let body = format!("{}{}", theirs.to_line(), mine.to_line());
        let got = cosignatures_in_response(text, &body, &w.verifier()).unwrap();
        assert_eq!(got, vec![mine]);
        assert_eq!(
            cosignatures_in_response(text, &theirs.to_line(), &w.verifier()),
            Err(CodecError::NoValidCosignature)
        );
        assert!(matches!(
            cosignatures_in_response(text, "garbage\n", &w.verifier()),
            Err(CodecError::NotSignatureLines(_))
        ));
    }

    #[test]
    fn origin_hash_is_hex_sha256() {
        assert_eq!(
            origin_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            gossip_path("example.com/log"),
            "/4d3203c8f35cdf600e475f55fede6081a703d3d322f208865fca2ec4f0e030f8/checkpoint"
        );
    }
}
