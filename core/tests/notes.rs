//! Keys and signed notes (SPEC §2, C2SP signed-note): the Go/C2SP known-answer vector, exhaustive
//! mutation of it, key text formats, every syntax rejection, verification rules, and property tests.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ledger_core::key::{compute_key_id, KeyAlg, KeyError, SignerKey, VerifierKey};
use ledger_core::note::{Note, NoteError, NoteSignature, MAX_NOTE_BYTES};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// The vectors directory: `$LEDGER_VECTORS`, else `shared/vectors` next to the workspace.
fn vectors_dir() -> std::path::PathBuf {
    std::env::var_os("LEDGER_VECTORS")
        .map(Into::into)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into())
}

/// The signed-note vector of `vectors/README.md`: (verifier key text, note bytes).
///
/// The README quotes the key in backticks and the note as a block indented by six spaces.
fn readme_vector() -> (String, Vec<u8>) {
    let path = vectors_dir().join("README.md");
    let readme = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let vkey = readme
        .split('`')
        .find(|s| s.starts_with("PeterNeumann+"))
        .expect("README quotes the PeterNeumann key")
        .to_string();
    let start = readme
        .find("must accept this note")
        .expect("README introduces the note");
    let mut lines: Vec<&str> = Vec::new();
    let block = readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with("      "));
    for line in block {
        if let Some(l) = line.strip_prefix("      ") {
            lines.push(l);
        } else if line.is_empty() {
            lines.push("");
        } else {
            break;
        }
    }
    while lines.first() == Some(&"") {
        lines.remove(0);
    }
    while lines.last() == Some(&"") {
        lines.pop();
    }
    let mut note = lines.join("\n");
    note.push('\n');
    (vkey, note.into_bytes())
}

/// The same vector as written in Go's `golang.org/x/mod/sumdb/note` documentation, to check
/// that the README was read correctly.
const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n\
                       \n\
                       \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

fn key(name: &str, seed: u8) -> SignerKey {
    SignerKey::from_seed(name, KeyAlg::Ed25519, [seed; 32]).unwrap()
}

fn signed(text: &str, keys: &[&SignerKey]) -> Note {
    let mut n = Note::new(text).unwrap();
    for k in keys {
        n.sign(k).unwrap();
    }
    n
}

// ---------------------------------------------------------------------------------------------
// The known-answer vector
// ---------------------------------------------------------------------------------------------

#[test]
fn vector_is_read_from_the_readme() {
    let (vkey, note) = readme_vector();
    assert_eq!(
        vkey,
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    );
    assert_eq!(note, GO_NOTE.as_bytes());
}

#[test]
fn vector_note_verifies() {
    let (vkey, bytes) = readme_vector();
    let key = VerifierKey::parse(&vkey).unwrap();
    let note = Note::parse(&bytes).unwrap();
    assert_eq!(
        note.text(),
        "If you think cryptography is the answer to your problem,\n\
         then you don't know what your problem is.\n"
    );
    assert_eq!(note.signatures().len(), 1);
    let sig = &note.signatures()[0];
    assert_eq!(sig.name, "PeterNeumann");
    assert_eq!(sig.key_id, [0xc7, 0x4f, 0x20, 0xa3]);
    assert_eq!(sig.sig.len(), 64);
    assert_eq!(note.verify(std::slice::from_ref(&key)).unwrap(), vec![key]);
    assert_eq!(note.to_bytes(), bytes);
}

#[test]
fn vector_key_id_is_recomputed_from_name_and_public_key() {
    let (vkey, _) = readme_vector();
    let key = VerifierKey::parse(&vkey).unwrap();
    // Independently of the crate: SHA-256("PeterNeumann" ‖ 0x0A ‖ 0x01 ‖ pubkey)[:4].
    let material = B64
        .decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        .unwrap();
    assert_eq!(material[0], 0x01);
    let mut h = Sha256::new();
    h.update(b"PeterNeumann\n");
    h.update(&material);
    let sum = h.finalize();
    assert_eq!(&sum[..4], &[0xc7, 0x4f, 0x20, 0xa3]);
    assert_eq!(key.key_id(), [0xc7, 0x4f, 0x20, 0xa3]);
    assert_eq!(key.public_key().as_bytes(), &material[1..]);
    assert_eq!(
        compute_key_id("PeterNeumann", KeyAlg::Ed25519, key.public_key()),
        [0xc7, 0x4f, 0x20, 0xa3]
    );
    assert_eq!(key.name(), "PeterNeumann");
    assert_eq!(key.alg(), KeyAlg::Ed25519);
    // The same key as a cosignature key would have another ID.
    assert_ne!(
        compute_key_id("PeterNeumann", KeyAlg::Cosignature, key.public_key()),
        key.key_id()
    );
}

#[test]
fn go_signer_key_reproduces_the_vector_byte_for_byte() {
    let (vkey, bytes) = readme_vector();
    let sk = SignerKey::parse(GO_SKEY).unwrap();
    assert_eq!(sk.verifier().to_string(), vkey);
    assert_eq!(sk.to_text(), GO_SKEY);
    let note = Note::parse(&bytes).unwrap();
    let mut fresh = Note::new(note.text()).unwrap();
    fresh.sign(&sk).unwrap();
    assert_eq!(fresh.to_bytes(), bytes, "Ed25519 is deterministic");
}

/// Parse, then verify under the vector key; `Ok` only when both accept.
fn accepts(bytes: &[u8], key: &VerifierKey) -> Result<(), NoteError> {
    Note::parse(bytes)?.verify(std::slice::from_ref(key))?;
    Ok(())
}

/// Substitutes every byte of the vector with every other value. Each mutation must fail to
/// parse, or parse to a note whose text or signature lines differ from the original (so nothing
/// decodes two byte forms to one signed content). Mutations that parse are then verified under
/// the vector key: all of them when `verify_all`, otherwise the single-bit flips (8 per byte
/// position, ~1,500 mutations), which keeps the default run fast in debug builds.
fn substitutions_are_rejected(verify_all: bool) {
    let (vkey, bytes) = readme_vector();
    let key = VerifierKey::parse(&vkey).unwrap();
    let original = Note::parse(&bytes).unwrap();
    assert!(accepts(&bytes, &key).is_ok());
    let (mut parsed, mut verified) = (0usize, 0usize);
    for i in 0..bytes.len() {
        for v in 0..=255u8 {
            if v == bytes[i] {
                continue;
            }
            let mut m = bytes.clone();
            m[i] = v;
            let Ok(note) = Note::parse(&m) else { continue };
            parsed += 1;
            assert_ne!(
                note, original,
                "byte {i} -> {v:#04x} parsed to the original note"
            );
            if verify_all || (v ^ bytes[i]).count_ones() == 1 {
                verified += 1;
                assert!(
                    note.verify(std::slice::from_ref(&key)).is_err(),
                    "byte {i} changed from {:#04x} to {v:#04x} was accepted",
                    bytes[i]
                );
            }
        }
    }
    // Sanity: the loop exercised both paths many times.
    assert!(parsed > 5_000, "only {parsed} mutations parsed");
    assert!(verified > 500, "only {verified} mutations verified");
}

#[test]
fn vector_every_single_byte_substitution_is_rejected() {
    substitutions_are_rejected(false);
}

/// The same with a signature verification for all ~15,000 parseable substitutions (about two
/// minutes in a debug build): `cargo test --test notes -- --ignored`.
#[test]
#[ignore = "slow in debug builds; the default test verifies every single-bit flip"]
fn vector_every_single_byte_substitution_is_rejected_verifying_all() {
    substitutions_are_rejected(true);
}

#[test]
fn vector_every_single_byte_deletion_and_insertion_is_rejected() {
    let (vkey, bytes) = readme_vector();
    let key = VerifierKey::parse(&vkey).unwrap();
    for i in 0..bytes.len() {
        let mut m = bytes.clone();
        m.remove(i);
        assert!(accepts(&m, &key).is_err(), "deleting byte {i} was accepted");
    }
    for i in 0..=bytes.len() {
        // 'A' is valid in the text and in base64, so most insertions reach verification.
        let mut m = bytes.clone();
        m.insert(i, b'A');
        assert!(
            accepts(&m, &key).is_err(),
            "inserting 'A' at {i} was accepted"
        );
    }
}

#[test]
fn vector_with_non_canonical_base64_padding_bits_is_rejected() {
    // Go's lenient decoder maps "...AM=" and "...AN=" to the same bytes; we require canonical
    // base64 so that each signature has one encoding.
    let (_, bytes) = readme_vector();
    let s = String::from_utf8(bytes).unwrap().replace("AM=\n", "AN=\n");
    assert_eq!(Note::parse(s.as_bytes()), Err(NoteError::BadBase64));
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

#[test]
fn generated_keys_round_trip_through_their_texts() {
    let mut rng = rand_core::OsRng;
    for alg in [KeyAlg::Ed25519, KeyAlg::Cosignature] {
        let sk = SignerKey::generate("example.com/log", alg, &mut rng).unwrap();
        let text = sk.to_text();
        assert!(text.starts_with("PRIVATE+KEY+example.com/log+"));
        let back = SignerKey::parse(&text).unwrap();
        assert_eq!(back.to_text(), text);
        assert_eq!(back.verifier(), sk.verifier());
        assert_eq!(back.key_id(), sk.key_id());
        assert_eq!(back.name(), "example.com/log");

        let vk = sk.verifier();
        let vtext = vk.to_string();
        assert_eq!(VerifierKey::parse(&vtext).unwrap(), vk);
        assert_eq!(vtext.parse::<VerifierKey>().unwrap(), vk);
        let hex_id: String = vk.key_id().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(vtext.split('+').nth(1), Some(hex_id.as_str()));
        let material = B64.decode(vtext.splitn(3, '+').nth(2).unwrap()).unwrap();
        assert_eq!(material[0], alg.byte());
        assert_eq!(&material[1..], vk.public_key().as_bytes());

        let json = serde_json::to_string(&vk).unwrap();
        assert_eq!(json, format!("\"{vtext}\""));
        assert_eq!(serde_json::from_str::<VerifierKey>(&json).unwrap(), vk);
    }
}

#[test]
fn serde_refuses_a_bad_verifier_key() {
    assert!(serde_json::from_str::<VerifierKey>("\"PeterNeumann+c74f20a3+AAAA\"").is_err());
    assert!(serde_json::from_str::<VerifierKey>("42").is_err());
}

#[test]
fn key_names_are_validated() {
    for bad in ["", "a b", "a+b", "a\tb", "a\u{2003}b", "a\nb"] {
        assert_eq!(
            SignerKey::from_seed(bad, KeyAlg::Ed25519, [1; 32]).err(),
            Some(KeyError::InvalidName),
            "{bad:?}"
        );
    }
    assert_eq!(
        VerifierKey::parse("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(KeyError::InvalidName)
    );
}

/// Re-encodes a key text's material with its first (algorithm) byte replaced.
fn with_alg_byte(text: &str, prefix_parts: usize, alg: u8) -> String {
    let parts: Vec<&str> = text.splitn(prefix_parts + 1, '+').collect();
    let mut material = B64.decode(parts[prefix_parts]).unwrap();
    material[0] = alg;
    let mut out = parts[..prefix_parts].join("+");
    out.push('+');
    out.push_str(&B64.encode(material));
    out
}

#[test]
fn signer_key_parse_rejections() {
    // Wrong key ID.
    let wrong_id = GO_SKEY.replace("c74f20a3", "c74f20a4");
    assert!(matches!(
        SignerKey::parse(&wrong_id),
        Err(KeyError::KeyIdMismatch { .. })
    ));
    // Uppercase hex is a second encoding of the same ID.
    assert_eq!(
        SignerKey::parse(&GO_SKEY.replace("c74f20a3", "C74F20A3")).err(),
        Some(KeyError::BadKeyIdHex)
    );
    assert_eq!(
        SignerKey::parse(&GO_SKEY.replace("c74f20a3", "c74f20a")).err(),
        Some(KeyError::BadKeyIdHex)
    );
    // Unknown algorithm byte.
    assert_eq!(
        SignerKey::parse(&with_alg_byte(GO_SKEY, 4, 0x02)).err(),
        Some(KeyError::UnknownAlg(0x02))
    );
    // A known algorithm with another ID: the ID commits to the algorithm.
    assert!(matches!(
        SignerKey::parse(&with_alg_byte(GO_SKEY, 4, 0x04)),
        Err(KeyError::KeyIdMismatch { .. })
    ));
    // Bad base64: invalid character, missing characters, non-canonical trailing bits.
    for bad in [
        GO_SKEY.replace("AYEK", "AYE!"),
        GO_SKEY.trim_end_matches('z').to_string(),
        format!("{GO_SKEY}="),
    ] {
        assert_eq!(
            SignerKey::parse(&bad).err(),
            Some(KeyError::BadBase64),
            "{bad}"
        );
    }
    // Seed of the wrong length (valid base64 of 1 + 30 bytes).
    let short = format!(
        "PRIVATE+KEY+PeterNeumann+c74f20a3+{}",
        B64.encode([1u8; 31])
    );
    assert_eq!(
        SignerKey::parse(&short).err(),
        Some(KeyError::WrongLength(31))
    );
    // Not a private key text at all; a verifier key is not a signer key.
    assert_eq!(
        SignerKey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
            .err(),
        Some(KeyError::NotPrivateKey)
    );
    assert_eq!(
        SignerKey::parse("PRIVATE+KEY+PeterNeumann").err(),
        Some(KeyError::Malformed)
    );
}

#[test]
fn verifier_key_parse_rejections() {
    const VK: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    assert!(matches!(
        VerifierKey::parse(&VK.replace("c74f20a3", "00000000")),
        Err(KeyError::KeyIdMismatch { .. })
    ));
    // Same key, another name: the ID no longer matches.
    assert!(matches!(
        VerifierKey::parse(&VK.replace("PeterNeumann", "PeterNeuman")),
        Err(KeyError::KeyIdMismatch { .. })
    ));
    assert_eq!(
        VerifierKey::parse(&with_alg_byte(VK, 2, 0x02)).err(),
        Some(KeyError::UnknownAlg(0x02))
    );
    assert_eq!(
        VerifierKey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T!")
            .err(),
        Some(KeyError::BadBase64)
    );
    assert_eq!(
        VerifierKey::parse("PeterNeumann+c74f20a3").err(),
        Some(KeyError::Malformed)
    );
    assert_eq!(
        VerifierKey::parse("PeterNeumann+c74f20a3+").err(),
        Some(KeyError::WrongLength(0))
    );
    // A small-order point (the identity) is refused.
    let mut identity = [0u8; 33];
    identity[0] = 0x01;
    identity[1] = 0x01;
    let text = format!("weak+00000000+{}", B64.encode(identity));
    assert_eq!(
        VerifierKey::parse(&text).err(),
        Some(KeyError::WeakPublicKey)
    );
}

#[test]
fn signer_key_debug_hides_the_seed() {
    let sk = SignerKey::parse(GO_SKEY).unwrap();
    let dbg = format!("{sk:?}");
    assert!(dbg.contains("PeterNeumann"), "{dbg}");
    assert!(!dbg.contains("AYEKFALV"), "{dbg}");
    // The seed bytes, as decimal list or hex, must not appear.
    let seed = &B64
        .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
        .unwrap()[1..];
    assert!(!dbg.contains(&format!("{seed:?}")), "{dbg}");
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!dbg.contains(&hex), "{dbg}");
}

// ---------------------------------------------------------------------------------------------
// Sign / verify
// ---------------------------------------------------------------------------------------------

#[test]
fn sign_verify_round_trip() {
    let a = key("a.example", 1);
    let b = key("b.example", 2);
    let n = signed("mimi-ledger/v1 enroll\nrole msp\n", &[&a, &b]);
    let bytes = n.to_bytes();
    let parsed = Note::parse(&bytes).unwrap();
    assert_eq!(parsed, n);
    assert_eq!(parsed.to_bytes(), bytes);
    assert_eq!(parsed.verify(&[a.verifier()]).unwrap(), vec![a.verifier()]);
    assert_eq!(
        parsed.verify(&[b.verifier(), a.verifier()]).unwrap(),
        vec![a.verifier(), b.verifier()],
        "verified keys come in signature order"
    );
    // The signature covers exactly the text, final newline included.
    let sig = &parsed.signatures()[0];
    assert!(a.verifier().verify(n.text().as_bytes(), &sig.sig));
    assert!(!a
        .verifier()
        .verify(n.text().trim_end().as_bytes(), &sig.sig));
}

#[test]
fn note_signed_by_the_right_name_with_the_wrong_key_is_rejected() {
    let real = key("log.example", 1);
    let impostor = key("log.example", 2);
    let n = signed("hello\n", &[&impostor]);
    let parsed = Note::parse(&n.to_bytes()).unwrap();
    // Different key ⇒ different key ID ⇒ unknown signer ⇒ nothing verified.
    assert_eq!(
        parsed.verify(&[real.verifier()]),
        Err(NoteError::UnverifiedNote)
    );

    // An impostor who copies the real key ID still fails: the signature is checked.
    let mut forged = Note::new("hello\n").unwrap();
    forged
        .add_signature(NoteSignature {
            name: "log.example".into(),
            key_id: real.key_id(),
            sig: impostor.sign(b"hello\n").to_vec(),
        })
        .unwrap();
    let parsed = Note::parse(&forged.to_bytes()).unwrap();
    assert_eq!(
        parsed.verify(&[real.verifier()]),
        Err(NoteError::BadSignature {
            name: "log.example".into()
        })
    );
}

#[test]
fn a_failing_signature_by_a_known_key_is_an_error_even_if_another_verifies() {
    let a = key("a.example", 1);
    let b = key("b.example", 2);
    let mut n = signed("text\n", &[&a]);
    n.add_signature(NoteSignature {
        name: "b.example".into(),
        key_id: b.key_id(),
        sig: vec![0; 64],
    })
    .unwrap();
    let parsed = Note::parse(&n.to_bytes()).unwrap();
    assert_eq!(parsed.verify(&[a.verifier()]).unwrap(), vec![a.verifier()]);
    assert_eq!(
        parsed.verify(&[a.verifier(), b.verifier()]),
        Err(NoteError::BadSignature {
            name: "b.example".into()
        })
    );
    // A repeated signature line by a known key is verified too.
    let mut dup = signed("text\n", &[&a]);
    let mut bad = dup.signatures()[0].clone();
    bad.sig[0] ^= 1;
    dup.add_signature(bad).unwrap();
    assert!(matches!(
        dup.verify(&[a.verifier()]),
        Err(NoteError::BadSignature { .. })
    ));
}

#[test]
fn unknown_extra_signatures_are_ignored() {
    let a = key("a.example", 1);
    let mut n = signed("text\n", &[&a]);
    // Unknown name; known name with unknown ID; known ID with unknown name — all ignored.
    for (name, id) in [
        ("stranger", [1, 2, 3, 4]),
        ("a.example", [9, 9, 9, 9]),
        ("b.example", a.key_id()),
    ] {
        n.add_signature(NoteSignature {
            name: name.into(),
            key_id: id,
            sig: vec![0xAA; 64],
        })
        .unwrap();
    }
    let parsed = Note::parse(&n.to_bytes()).unwrap();
    assert_eq!(parsed.signatures().len(), 4);
    assert_eq!(parsed.verify(&[a.verifier()]).unwrap(), vec![a.verifier()]);
    // With no known key at all the note is unverified.
    assert_eq!(
        parsed.verify(&[key("c.example", 3).verifier()]),
        Err(NoteError::UnverifiedNote)
    );
    assert_eq!(parsed.verify(&[]), Err(NoteError::UnverifiedNote));
}

#[test]
fn cosignature_keys_do_not_verify_plain_signatures() {
    let seed = [5u8; 32];
    let plain = SignerKey::from_seed("w.example", KeyAlg::Ed25519, seed).unwrap();
    let cosig = SignerKey::from_seed("w.example", KeyAlg::Cosignature, seed).unwrap();
    let n = signed("text\n", &[&plain]);
    assert_eq!(
        n.verify(&[cosig.verifier()]),
        Err(NoteError::UnverifiedNote)
    );
    // Even a 0x04 key that (artificially) shares the ID is not used for plain notes.
    let mut m = Note::new("text\n").unwrap();
    m.add_signature(NoteSignature {
        name: "w.example".into(),
        key_id: cosig.key_id(),
        sig: cosig.sign(b"text\n").to_vec(),
    })
    .unwrap();
    assert_eq!(
        m.verify(&[cosig.verifier()]),
        Err(NoteError::UnverifiedNote)
    );
    assert_eq!(
        Note::new("text\n").unwrap().sign(&cosig),
        Err(NoteError::UnsupportedKeyAlg)
    );
}

// ---------------------------------------------------------------------------------------------
// Syntax rejections
// ---------------------------------------------------------------------------------------------

fn vector_string() -> String {
    String::from_utf8(readme_vector().1).unwrap()
}

#[test]
fn rejects_non_utf8() {
    let mut b = readme_vector().1;
    b[3] = 0xFF;
    assert_eq!(Note::parse(&b), Err(NoteError::NotUtf8));
    // A truncated multi-byte sequence (the em dash cut short).
    assert_eq!(
        Note::parse(b"text\n\n\xe2\x80 k AAAAAAA=\n"),
        Err(NoteError::NotUtf8)
    );
}

#[test]
fn rejects_control_characters() {
    for c in ['\r', '\t', '\0', '\u{1b}', '\u{0b}', '\u{0c}'] {
        let s = vector_string().replacen(' ', &c.to_string(), 1);
        assert_eq!(
            Note::parse(s.as_bytes()),
            Err(NoteError::ControlCharacter),
            "{c:?}"
        );
        assert_eq!(
            Note::new(&format!("a{c}b\n")),
            Err(NoteError::ControlCharacter),
            "{c:?}"
        );
    }
}

#[test]
fn rejects_crlf_line_endings() {
    let s = vector_string().replace('\n', "\r\n");
    assert_eq!(Note::parse(s.as_bytes()), Err(NoteError::ControlCharacter));
}

#[test]
fn rejects_missing_blank_line() {
    let s = vector_string().replace("is.\n\n", "is.\n");
    assert_eq!(Note::parse(s.as_bytes()), Err(NoteError::MissingBlankLine));
    assert_eq!(Note::parse(b""), Err(NoteError::MissingBlankLine));
}

#[test]
fn rejects_missing_final_newline() {
    let s = vector_string();
    let s = s.strip_suffix('\n').unwrap();
    assert_eq!(
        Note::parse(s.as_bytes()),
        Err(NoteError::MissingFinalNewline)
    );
    assert_eq!(Note::new("no newline"), Err(NoteError::MissingFinalNewline));
    assert_eq!(Note::new(""), Err(NoteError::MissingFinalNewline));
}

#[test]
fn rejects_empty_signature_block_and_trailing_garbage() {
    assert_eq!(Note::parse(b"text\n\n"), Err(NoteError::MissingSignature));
    // An empty line after the signatures moves the split: nothing follows it.
    let s = format!("{}\n", vector_string());
    assert_eq!(Note::parse(s.as_bytes()), Err(NoteError::MissingSignature));
    // Anything after the last signature line that is not a signature line.
    let s = format!("{}garbage\n", vector_string());
    assert_eq!(Note::parse(s.as_bytes()), Err(NoteError::BadSignatureLine));
    let s = format!("{}garbage", vector_string());
    assert_eq!(
        Note::parse(s.as_bytes()),
        Err(NoteError::MissingFinalNewline)
    );
}

#[test]
fn rejects_bad_base64_signatures() {
    for bad in [
        "x08go!ZJ",
        "x08go/ZJkuBS9UG",
        "AAAAAAA",
        "AAAAAAA==",
        "AAAA AAA=",
        "=AAAAAAA",
    ] {
        let s = format!("text\n\n\u{2014} k {bad}\n");
        let err = Note::parse(s.as_bytes()).unwrap_err();
        assert!(
            err == NoteError::BadBase64,
            "{bad:?} gave {err:?}, want BadBase64"
        );
    }
    // An empty signature decodes to nothing at all.
    assert_eq!(
        Note::parse("text\n\n\u{2014} k \n".as_bytes()),
        Err(NoteError::SignatureTooShort)
    );
    // URL-safe alphabet is not the standard one.
    let s = vector_string().replace("/ZJ", "_ZJ");
    assert_eq!(Note::parse(s.as_bytes()), Err(NoteError::BadBase64));
}

#[test]
fn rejects_signatures_shorter_than_five_bytes() {
    let s = format!("text\n\n\u{2014} k {}\n", B64.encode([1, 2, 3, 4]));
    assert_eq!(Note::parse(s.as_bytes()), Err(NoteError::SignatureTooShort));
    let s = format!("text\n\n\u{2014} k {}\n", B64.encode([1, 2, 3, 4, 5]));
    assert!(Note::parse(s.as_bytes()).is_ok());
}

#[test]
fn rejects_signature_lines_without_em_dash() {
    let sig = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";
    for line in [
        format!("- PeterNeumann {sig}"),
        format!("-- PeterNeumann {sig}"),
        format!("\u{2013} PeterNeumann {sig}"), // EN DASH
        format!("\u{2014}PeterNeumann {sig}"),  // no space after the dash
        format!("PeterNeumann {sig}"),
        format!("\u{2014} PeterNeumann{sig}"), // no space before the signature
    ] {
        let s = format!("text\n\n{line}\n");
        assert_eq!(
            Note::parse(s.as_bytes()),
            Err(NoteError::BadSignatureLine),
            "{line}"
        );
    }
    // Two spaces: an empty name.
    let s = format!("text\n\n\u{2014}  PeterNeumann {sig}\n");
    assert_eq!(Note::parse(s.as_bytes()), Err(NoteError::InvalidKeyName));
    // A '+' in the name.
    let s = format!("text\n\n\u{2014} Peter+Neumann {sig}\n");
    assert_eq!(Note::parse(s.as_bytes()), Err(NoteError::InvalidKeyName));
}

#[test]
fn signature_count_limit_is_100() {
    let line = format!("\u{2014} k {}\n", B64.encode([0u8; 68]));
    let hundred = format!("text\n\n{}", line.repeat(100));
    assert_eq!(
        Note::parse(hundred.as_bytes()).unwrap().signatures().len(),
        100
    );
    let hundred_one = format!("text\n\n{}", line.repeat(101));
    assert_eq!(
        Note::parse(hundred_one.as_bytes()),
        Err(NoteError::TooManySignatures)
    );
    let mut n = Note::parse(hundred.as_bytes()).unwrap();
    let s = n.signatures()[0].clone();
    assert_eq!(n.add_signature(s), Err(NoteError::TooManySignatures));
}

#[test]
fn size_limit() {
    let body = "a".repeat(MAX_NOTE_BYTES);
    let s = format!("{body}\n\n\u{2014} k AAAAAAA=\n");
    assert_eq!(Note::parse(s.as_bytes()), Err(NoteError::TooLarge));
    assert_eq!(Note::new(&format!("{body}\n")), Err(NoteError::TooLarge));
    // The largest accepted note is exactly MAX_NOTE_BYTES.
    let tail = "\n\n\u{2014} k AAAAAAA=\n";
    let body = "a".repeat(MAX_NOTE_BYTES - tail.len());
    let s = format!("{body}{tail}");
    assert_eq!(s.len(), MAX_NOTE_BYTES);
    assert_eq!(Note::parse(s.as_bytes()).unwrap().to_bytes(), s.as_bytes());
    // add_signature keeps to_bytes within the limit.
    let mut n = Note::parse(s.as_bytes()).unwrap();
    let extra = n.signatures()[0].clone();
    assert_eq!(n.add_signature(extra), Err(NoteError::TooLarge));
}

#[test]
fn add_signature_validates_its_input() {
    let mut n = Note::new("t\n").unwrap();
    let bad_name = NoteSignature {
        name: "a b".into(),
        key_id: [0; 4],
        sig: vec![1],
    };
    assert_eq!(n.add_signature(bad_name), Err(NoteError::InvalidKeyName));
    let empty = NoteSignature {
        name: "a".into(),
        key_id: [0; 4],
        sig: vec![],
    };
    assert_eq!(n.add_signature(empty), Err(NoteError::SignatureTooShort));
    assert!(n.signatures().is_empty());
}

#[test]
fn text_with_empty_lines_and_dash_lines_round_trips() {
    let k = key("k", 9);
    for text in [
        "\n",
        "a\n\n",
        "a\n\nb\n",
        "\u{2014} k AAAAAAA=\n",
        "a\n\n\u{2014} k AAAAAAA=\n",
        "ünïcödé 🙂\n",
    ] {
        let n = signed(text, &[&k]);
        let b = n.to_bytes();
        let p = Note::parse(&b).unwrap();
        assert_eq!(p.text(), text);
        assert_eq!(p, n);
        assert_eq!(p.verify(&[k.verifier()]).unwrap(), vec![k.verifier()]);
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

/// Structured, mostly valid notes: text lines and signature lines with random parts.
fn near_note() -> impl Strategy<Value = Vec<u8>> {
    let text_line = "[a-z0-9 /+=.\u{e9}\u{2014}-]{0,20}";
    let name = prop_oneof![Just("k".to_string()), "[a-z./+]{0,6}"];
    let sig = prop::collection::vec(any::<u8>(), 0..80);
    let sig_line = (name, sig, any::<bool>()).prop_map(|(n, s, dash)| {
        let prefix = if dash { "\u{2014} " } else { "- " };
        format!("{prefix}{n} {}\n", B64.encode(s))
    });
    (
        prop::collection::vec(text_line, 0..5),
        prop::collection::vec(sig_line, 0..4),
        any::<bool>(),
    )
        .prop_map(|(text, sigs, blank)| {
            let mut s = String::new();
            for l in text {
                s.push_str(&l);
                s.push('\n');
            }
            if blank {
                s.push('\n');
            }
            for l in sigs {
                s.push_str(&l);
            }
            s.into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_never_panics_and_accepted_bytes_round_trip(b in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(n) = Note::parse(&b) {
            prop_assert_eq!(n.to_bytes(), b);
        }
    }

    #[test]
    fn structured_notes_round_trip(b in near_note()) {
        if let Ok(n) = Note::parse(&b) {
            prop_assert_eq!(&n.to_bytes(), &b);
            prop_assert_eq!(Note::parse(&n.to_bytes()).unwrap(), n);
        }
    }

    #[test]
    fn mutated_vector_never_panics_and_is_never_accepted(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)
    ) {
        let (vkey, bytes) = readme_vector();
        let key = VerifierKey::parse(&vkey).unwrap();
        let mut m = bytes.clone();
        for (i, v) in edits {
            let i = i.index(m.len());
            m[i] = v;
        }
        if m != bytes {
            prop_assert!(accepts(&m, &key).is_err());
        }
        if let Ok(n) = Note::parse(&m) {
            prop_assert_eq!(n.to_bytes(), m);
        }
    }

}

proptest! {
    // Each case signs and verifies, which is slow in debug builds.
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn new_texts_sign_and_round_trip(text in "([^\u{0}-\u{1f}]{0,16}\n){1,4}") {
        let k = key("prop.example", 4);
        let n = signed(&text, &[&k]);
        let p = Note::parse(&n.to_bytes()).unwrap();
        prop_assert_eq!(p.text(), text.as_str());
        prop_assert_eq!(p.verify(&[k.verifier()]).unwrap(), vec![k.verifier()]);
    }
}
