//! Identifiers (SPEC §1): canonical SIIs, names, SSIs and tags.

use ledger_core::sii::{
    Name, NameError, Sii, SiiError, SiiKind, Ssi, SsiError, Tag, TagError, MAX_TAGS,
};
use proptest::prelude::*;

fn parse_ok(s: &str) -> Sii {
    match Sii::parse(s) {
        Ok(sii) => sii,
        Err(e) => panic!("{s:?} should be canonical, got {e:?}"),
    }
}

fn human(input: &str, region: Option<&str>) -> String {
    match Sii::from_human(input, region) {
        Ok(sii) => sii.into_string(),
        Err(e) => panic!("{input:?} in {region:?} should canonicalize, got {e:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Sii::parse
// ---------------------------------------------------------------------------------------------

#[test]
fn canonical_siis_are_accepted_unchanged() {
    for s in [
        "tel:+14155550100",   // US
        "tel:+16135550123",   // CA, shares +1
        "tel:+41446681800",   // CH
        "tel:+442079460958",  // GB
        "tel:+4915123456789", // DE mobile
        "tel:+390612345678",  // IT: the leading 0 is part of the number
        "tel:+8613800138000", // CN
        "tel:+80012345678",   // non-geographic (+800)
        "mailto:alice@example.com",
        "mailto:Alice@example.com", // the local part keeps its case
        "mailto:Alice@xn--bcher-kva.example",
        "mailto:first.last+tag@mail.example.org",
        "mailto:o'brien!x$&*=^_`{|}~-/@example.com",
        "mailto:用户@example.com", // RFC 6532 local part, as given
    ] {
        let sii = parse_ok(s);
        assert_eq!(sii.as_str(), s);
        assert_eq!(sii.to_string(), s);
        assert_eq!(s.parse::<Sii>().as_ref(), Ok(&sii));
        let kind = if s.starts_with("tel:") {
            SiiKind::Tel
        } else {
            SiiKind::Mailto
        };
        assert_eq!(sii.kind(), kind, "{s}");
    }
}

#[test]
fn non_canonical_spellings_are_refused_with_the_canonical_form() {
    for (given, canonical) in [
        ("tel:+1 415 555 0100", "tel:+14155550100"),
        ("tel:14155550100", "tel:+14155550100"),
        ("tel:+1-415-555-0100", "tel:+14155550100"),
        ("tel:+1.415.555.0100", "tel:+14155550100"),
        ("tel:+1(415)555-0100", "tel:+14155550100"),
        ("TEL:+14155550100", "tel:+14155550100"),
        ("Tel:+14155550100", "tel:+14155550100"),
        (" tel:+14155550100", "tel:+14155550100"),
        ("tel:+14155550100\n", "tel:+14155550100"),
        ("+14155550100", "tel:+14155550100"),
        ("+1 (415) 555-0100", "tel:+14155550100"),
        // RFC 3966 local number with a global phone-context: the NZ trunk prefix 0 goes.
        ("tel:03-331-6005;phone-context=+64", "tel:+6433316005"),
        ("tel:03-331-6005;PHONE-CONTEXT=+64", "tel:+6433316005"),
        // libphonenumber drops a trunk prefix written after the country code.
        ("tel:+4402079460958", "tel:+442079460958"),
        ("tel:+44 (0)20 7946 0958", "tel:+442079460958"),
        ("mailto:Alice@Example.COM", "mailto:Alice@example.com"),
        ("MAILTO:alice@example.com", "mailto:alice@example.com"),
        (
            "mailto:Alice@Bücher.Example",
            "mailto:Alice@xn--bcher-kva.example",
        ),
        (
            "mailto:Alice@XN--BCHER-KVA.example",
            "mailto:Alice@xn--bcher-kva.example",
        ),
        ("mailto:a%2Bb@example.com", "mailto:a+b@example.com"),
        (
            "mailto:%E7%94%A8%E6%88%B7@example.com",
            "mailto:用户@example.com",
        ),
        ("alice@example.com", "mailto:alice@example.com"),
    ] {
        let err = Sii::parse(given).expect_err(given);
        assert_eq!(
            err,
            SiiError::NonCanonical {
                given: given.to_owned(),
                canonical: canonical.to_owned()
            },
            "{given:?}"
        );
        assert!(err.is_non_canonical());
        assert_eq!(err.canonical(), Some(canonical));
        // The canonical form is itself canonical.
        assert_eq!(parse_ok(canonical).as_str(), canonical);
    }
}

#[test]
fn invalid_siis_are_refused_with_what_is_wrong() {
    let long_local = format!("mailto:{}@example.com", "a".repeat(65));
    type Expect = fn(&SiiError) -> bool;
    let cases: Vec<(&str, Expect)> = vec![
        ("", |e| matches!(e, SiiError::Empty)),
        ("   ", |e| matches!(e, SiiError::Empty)),
        (
            "tel:+1415555",
            |e| matches!(e, SiiError::InvalidPhoneNumber { number } if number == "+1415555"),
        ),
        ("tel:+12425550123", |e| {
            matches!(e, SiiError::InvalidPhoneNumber { .. })
        }),
        ("tel:+99912345", |e| {
            matches!(e, SiiError::UnparseablePhoneNumber { .. })
        }),
        ("tel:+0041446681800", |e| {
            matches!(e, SiiError::UnparseablePhoneNumber { .. })
        }),
        ("tel:+1", |e| {
            matches!(e, SiiError::UnparseablePhoneNumber { .. })
        }),
        ("tel:", |e| {
            matches!(e, SiiError::UnparseablePhoneNumber { .. })
        }),
        ("tel:+", |e| {
            matches!(e, SiiError::UnparseablePhoneNumber { .. })
        }),
        ("tel:+14155550100;ext=12", |e| {
            matches!(e, SiiError::TelExtension)
        }),
        (
            "tel:+14155550100;isub=12",
            |e| matches!(e, SiiError::TelParameter { parameter } if parameter == "isub=12"),
        ),
        ("tel:+14155550100;phone-context=+1", |e| {
            matches!(e, SiiError::TelParameter { .. })
        }),
        ("tel:5550100;phone-context=example.com", |e| {
            matches!(e, SiiError::TelParameter { .. })
        }),
        ("tel:+1-800-FLOWERS", |e| {
            matches!(e, SiiError::TelCharacter { ch: 'F' })
        }),
        ("tel:+1415555*0100", |e| {
            matches!(e, SiiError::TelCharacter { ch: '*' })
        }),
        ("tel:+1+4155550100", |e| {
            matches!(e, SiiError::TelCharacter { ch: '+' })
        }),
        ("+1 415 555 0100 x12", |e| {
            matches!(e, SiiError::TelCharacter { ch: 'x' })
        }),
        ("+14155550100;ext=1", |e| {
            matches!(e, SiiError::TelCharacter { ch: ';' })
        }),
        ("tel:0446681800", |e| {
            matches!(e, SiiError::MissingCountryCode)
        }),
        ("(415) 555-0100", |e| {
            matches!(e, SiiError::MissingCountryCode)
        }),
        ("tel:+1415\t5550100", |e| {
            matches!(e, SiiError::ControlCharacter { position: 9 })
        }),
        ("tel:+1415\u{0}5550100", |e| {
            matches!(e, SiiError::ControlCharacter { position: 9 })
        }),
        (
            "sip:alice@example.com",
            |e| matches!(e, SiiError::UnknownScheme { scheme } if scheme == "sip"),
        ),
        ("https://example.com/", |e| {
            matches!(e, SiiError::UnknownScheme { .. })
        }),
        ("mailto:alice", |e| {
            matches!(e, SiiError::AtSignCount { found: 0 })
        }),
        ("mailto:a@b@example.com", |e| {
            matches!(e, SiiError::AtSignCount { found: 2 })
        }),
        ("mailto:a%40b@example.com", |e| {
            matches!(e, SiiError::AtSignCount { found: 2 })
        }),
        ("mailto:alice@example.com,bob@example.com", |e| {
            matches!(e, SiiError::AtSignCount { found: 2 })
        }),
        ("mailto:@example.com", |e| {
            matches!(e, SiiError::EmptyLocalPart)
        }),
        (long_local.as_str(), |e| {
            matches!(e, SiiError::LocalPartTooLong { len: 65 })
        }),
        ("mailto:al ice@example.com", |e| {
            matches!(e, SiiError::Whitespace)
        }),
        ("mailto:al%20ice@example.com", |e| {
            matches!(e, SiiError::Whitespace)
        }),
        ("mailto:\"alice\"@example.com", |e| {
            matches!(e, SiiError::LocalPartCharacter { ch: '"' })
        }),
        ("mailto:a#b@example.com", |e| {
            matches!(e, SiiError::LocalPartCharacter { ch: '#' })
        }),
        ("mailto:a(b)@example.com", |e| {
            matches!(e, SiiError::LocalPartCharacter { ch: '(' })
        }),
        ("mailto:a%25b@example.com", |e| {
            matches!(e, SiiError::LocalPartCharacter { ch: '%' })
        }),
        ("a%b@example.com", |e| {
            matches!(e, SiiError::LocalPartCharacter { ch: '%' })
        }),
        ("mailto:alice@example.com?subject=hi", |e| {
            matches!(e, SiiError::MailtoHeaders)
        }),
        ("mailto:a%zzb@example.com", |e| {
            matches!(e, SiiError::BadPercentEncoding)
        }),
        ("mailto:a%C3@example.com", |e| {
            matches!(e, SiiError::BadPercentEncoding)
        }),
        ("mailto:a%0Ab@example.com", |e| {
            matches!(e, SiiError::BadPercentEncoding)
        }),
        ("mailto:alice@", |e| {
            matches!(
                e,
                SiiError::BadDomain {
                    reason: "empty",
                    ..
                }
            )
        }),
        ("mailto:alice@example.com.", |e| {
            matches!(e, SiiError::BadDomain { .. })
        }),
        ("mailto:alice@exa_mple.com", |e| {
            matches!(e, SiiError::BadDomain { .. })
        }),
        ("mailto:alice@-example.com", |e| {
            matches!(e, SiiError::BadDomain { .. })
        }),
        ("mailto:alice@example..com", |e| {
            matches!(e, SiiError::BadDomain { .. })
        }),
        ("mailto:alice@[192.0.2.1]", |e| {
            matches!(e, SiiError::BadDomain { .. })
        }),
        ("mailto:alice@192.0.2.1", |e| {
            matches!(e, SiiError::BadDomain { .. })
        }),
        ("mailto:alice@xn--a.example", |e| {
            matches!(e, SiiError::BadDomain { .. })
        }),
    ];
    for (input, expected) in cases {
        match Sii::parse(input) {
            Err(e) => {
                assert!(expected(&e), "{input:?}: unexpected error {e:?}");
                assert!(!e.is_non_canonical(), "{input:?}");
                assert_eq!(e.canonical(), None);
                assert!(!e.to_string().is_empty());
            }
            Ok(sii) => panic!("{input:?} accepted as {sii:?}"),
        }
    }
}

#[test]
fn input_size_limits() {
    let huge = format!("tel:+1{}", "0".repeat(2000));
    assert!(matches!(
        Sii::parse(&huge),
        Err(SiiError::InputTooLong { len: 2006, .. })
    ));
    assert!(matches!(
        Sii::parse("tel:+1415555010012345678"),
        Err(SiiError::UnparseablePhoneNumber { .. } | SiiError::InvalidPhoneNumber { .. })
    ));
}

/// `len` bytes of lowercase LDH labels ending in `.example`, e.g. for a long e-mail domain.
fn domain_of_len(len: usize) -> String {
    let mut labels = Vec::new();
    let mut remaining = len - ".example".len();
    while remaining > 0 {
        // Leave room for the dot before the next label, and never leave exactly 1 byte over.
        let take = remaining.min(62);
        let take = if remaining - take == 1 {
            take - 1
        } else {
            take
        };
        labels.push("a".repeat(take));
        remaining -= take;
        remaining = remaining.saturating_sub(1); // the dot before the next label
    }
    let d = format!("{}.example", labels.join("."));
    assert_eq!(d.len(), len);
    d
}

#[test]
fn mailto_address_length_limit_is_254_bytes() {
    let local = "a".repeat(64);
    let at_limit = format!("mailto:{local}@{}", domain_of_len(254 - 65));
    assert_eq!(parse_ok(&at_limit).as_str().len(), "mailto:".len() + 254);
    let over = format!("mailto:{local}@{}", domain_of_len(255 - 65));
    assert_eq!(
        Sii::parse(&over),
        Err(SiiError::AddressTooLong { len: 255 })
    );
    // The limit applies to the ASCII form of the domain.
    let unicode = format!(
        "mailto:{}@bücher.{}",
        "a".repeat(64),
        domain_of_len(254 - 65 - 14)
    );
    assert!(matches!(
        Sii::parse(&unicode),
        Err(SiiError::NonCanonical { .. })
    ));
    let unicode = format!(
        "mailto:{}@bücher.{}",
        "a".repeat(64),
        domain_of_len(255 - 65 - 14)
    );
    assert!(matches!(
        Sii::parse(&unicode),
        Err(SiiError::AddressTooLong { len: 255 })
    ));
}

// ---------------------------------------------------------------------------------------------
// Sii::from_human
// ---------------------------------------------------------------------------------------------

#[test]
fn from_human_reads_us_numbers() {
    for (input, region) in [
        ("+1 (415) 555-0100", None),
        ("tel:+1-415-555-0100", None),
        ("+1 415 555 0100", Some("CH")), // a + wins over the region
        ("(415) 555-0100", Some("US")),
        ("415.555.0100", Some("us")),
        ("1 415 555 0100", Some("US")),
        ("00 1 415 555 0100", Some("CH")), // CH international prefix
    ] {
        assert_eq!(
            human(input, region),
            "tel:+14155550100",
            "{input} {region:?}"
        );
    }
    assert_eq!(
        Sii::from_human("(415) 555-0100", None),
        Err(SiiError::MissingCountryCode)
    );
}

#[test]
fn from_human_reads_swiss_numbers() {
    for (input, region) in [
        ("+41 44 668 18 00", None),
        ("tel:+41-44-668-18-00", None),
        ("0041 44 668 18 00", Some("CH")),
        ("044 668 18 00", Some("CH")),
        ("0446681800", Some("ch")),
        ("011 41 44 668 18 00", Some("US")), // US international prefix
    ] {
        assert_eq!(
            human(input, region),
            "tel:+41446681800",
            "{input} {region:?}"
        );
    }
    assert_eq!(human("0441234567", Some("CH")), "tel:+41441234567");
    assert_eq!(
        Sii::from_human("0041 44 668 18 00", None),
        Err(SiiError::MissingCountryCode)
    );
    assert_eq!(
        Sii::from_human("044 668 18 00", None),
        Err(SiiError::MissingCountryCode)
    );
}

#[test]
fn from_human_reads_uk_numbers() {
    for (input, region) in [
        ("+44 20 7946 0958", None),
        ("+44 (0)20 7946 0958", None),
        ("020 7946 0958", Some("GB")),
        ("020 7946 0958", Some("UK")),
        ("00 44 20 7946 0958", Some("DE")),
    ] {
        assert_eq!(
            human(input, region),
            "tel:+442079460958",
            "{input} {region:?}"
        );
    }
    assert_eq!(
        Sii::from_human("020 7946 0958", None),
        Err(SiiError::MissingCountryCode)
    );
    // Read in the wrong region, a UK national number is not a valid US one.
    assert!(matches!(
        Sii::from_human("020 7946 0958", Some("US")),
        Err(SiiError::InvalidPhoneNumber { .. } | SiiError::UnparseablePhoneNumber { .. })
    ));
}

#[test]
fn from_human_rejects_bad_regions() {
    for region in ["XX", "CHE", "", "1", "001", "Ch "] {
        assert_eq!(
            Sii::from_human("+41 44 668 18 00", Some(region)),
            Err(SiiError::BadRegion {
                region: region.to_owned()
            }),
            "{region:?}"
        );
    }
}

#[test]
fn from_human_canonicalizes_mailto_with_idna() {
    for (input, canonical) in [
        ("Alice@Bücher.Example", "mailto:Alice@xn--bcher-kva.example"),
        (
            "mailto:Alice@Bücher.Example",
            "mailto:Alice@xn--bcher-kva.example",
        ),
        ("  alice@EXAMPLE.com  ", "mailto:alice@example.com"),
        (
            "bob@Ünïcödé.example",
            "mailto:bob@xn--ncd-dma1a7bzb.example",
        ), // checked with Python's punycode codec
        ("carol@日本.example", "mailto:carol@xn--wgv71a.example"),
        ("dave@straße.example", "mailto:dave@xn--strae-oqa.example"), // IDNA 2008: ß kept
        ("erin@ＥＸＡＭＰＬＥ.com", "mailto:erin@example.com"),       // UTS 46 width mapping
    ] {
        assert_eq!(human(input, None), canonical, "{input}");
        assert_eq!(human(input, Some("CH")), canonical, "{input}");
        assert_eq!(parse_ok(canonical).kind(), SiiKind::Mailto);
    }
}

#[test]
fn serde_is_the_canonical_string_and_deserialization_is_strict() {
    let sii = parse_ok("tel:+14155550100");
    let json = serde_json::to_string(&sii).unwrap();
    assert_eq!(json, "\"tel:+14155550100\"");
    assert_eq!(serde_json::from_str::<Sii>(&json).unwrap(), sii);
    let err = serde_json::from_str::<Sii>("\"tel:+1-415-555-0100\"").unwrap_err();
    assert!(err.to_string().contains("tel:+14155550100"), "{err}");
    assert!(serde_json::from_str::<Sii>("\"sip:alice@example.com\"").is_err());

    let name = Name::parse("msp-a.example").unwrap();
    assert_eq!(serde_json::to_string(&name).unwrap(), "\"msp-a.example\"");
    assert_eq!(
        serde_json::from_str::<Name>("\"msp-a.example\"").unwrap(),
        name
    );
    assert!(serde_json::from_str::<Name>("\"MSP-A.example\"").is_err());

    let ssi = Ssi::parse("mimi://msp-a.example/u/alice").unwrap();
    assert_eq!(
        serde_json::from_str::<Ssi>(&serde_json::to_string(&ssi).unwrap()).unwrap(),
        ssi
    );
    assert!(serde_json::from_str::<Ssi>("\"no scheme\"").is_err());

    let tag = Tag::parse("Personal").unwrap();
    assert_eq!(serde_json::to_string(&tag).unwrap(), "\"Personal\"");
    assert!(serde_json::from_str::<Tag>("\"Per sonal\"").is_err());
}

#[test]
fn siis_order_and_borrow_as_their_text() {
    use std::collections::BTreeSet;
    let set: BTreeSet<Sii> = [
        "tel:+41446681800",
        "mailto:alice@example.com",
        "tel:+14155550100",
    ]
    .into_iter()
    .map(parse_ok)
    .collect();
    assert!(set.contains("tel:+14155550100"));
    let order: Vec<&str> = set.iter().map(Sii::as_str).collect();
    assert_eq!(
        order,
        [
            "mailto:alice@example.com",
            "tel:+14155550100",
            "tel:+41446681800"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Name, Ssi, Tag
// ---------------------------------------------------------------------------------------------

/// A lowercase DNS name of exactly `len` bytes made of 63-byte labels.
fn name_of_len(len: usize) -> String {
    let mut s = String::new();
    while s.len() < len {
        if !s.is_empty() {
            s.push('.');
        }
        let take = (len - s.len()).min(63);
        s.push_str(&"a".repeat(take));
    }
    assert_eq!(s.len(), len);
    s
}

#[test]
fn names() {
    for ok in [
        "msp-a.example",
        "a",
        "x1.y-2.z",
        "prover.example",
        "xn--bcher-kva.example",
        "123",
    ] {
        assert_eq!(Name::parse(ok).unwrap().as_str(), ok);
        assert_eq!(ok.parse::<Name>().unwrap().to_string(), ok);
    }
    let max = name_of_len(253);
    assert_eq!(Name::parse(&max).unwrap().as_str(), max);
    assert_eq!(
        Name::parse(&name_of_len(254)),
        Err(NameError::TooLong { len: 254 })
    );
    let label63 = format!("{}.example", "a".repeat(63));
    assert!(Name::parse(&label63).is_ok());
    let label64 = format!("{}.example", "a".repeat(64));
    assert_eq!(
        Name::parse(&label64),
        Err(NameError::LabelTooLong {
            position: 0,
            len: 64
        })
    );

    assert_eq!(Name::parse(""), Err(NameError::Empty));
    assert_eq!(
        Name::parse("MSP-A.example"),
        Err(NameError::Uppercase {
            ch: 'M',
            position: 0
        })
    );
    assert_eq!(
        Name::parse("msp-a.Example"),
        Err(NameError::Uppercase {
            ch: 'E',
            position: 6
        })
    );
    assert!(Name::parse("msp-a.Example")
        .unwrap_err()
        .to_string()
        .contains("lowercase"));
    assert_eq!(Name::parse("msp-a.example."), Err(NameError::TrailingDot));
    assert_eq!(
        Name::parse(".example"),
        Err(NameError::EmptyLabel { position: 0 })
    );
    assert_eq!(
        Name::parse("a..example"),
        Err(NameError::EmptyLabel { position: 2 })
    );
    assert_eq!(
        Name::parse("-a.example"),
        Err(NameError::HyphenAtLabelEdge { position: 0 })
    );
    assert_eq!(
        Name::parse("a.b-.example"),
        Err(NameError::HyphenAtLabelEdge { position: 2 })
    );
    assert_eq!(
        Name::parse("msp_a.example"),
        Err(NameError::InvalidCharacter {
            ch: '_',
            position: 3
        })
    );
    assert_eq!(
        Name::parse("msp a"),
        Err(NameError::InvalidCharacter {
            ch: ' ',
            position: 3
        })
    );
    assert_eq!(
        Name::parse("bücher.example"),
        Err(NameError::InvalidCharacter {
            ch: 'ü',
            position: 1
        })
    );
    assert_eq!(
        Name::parse("msp+a"),
        Err(NameError::InvalidCharacter {
            ch: '+',
            position: 3
        })
    );
}

#[test]
fn ssis() {
    for ok in [
        "mimi://msp-a.example/u/alice",
        "im:alice@example.com",
        "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
        "x:y",
        "mimi://msp-a.example/u/alice?x=1#frag",
    ] {
        assert_eq!(Ssi::parse(ok).unwrap().as_str(), ok);
        assert_eq!(ok.parse::<Ssi>().unwrap().to_string(), ok);
    }
    let prefix = "mimi://msp-a.example/u/";
    let at_limit = format!("{prefix}{}", "a".repeat(512 - prefix.len()));
    assert_eq!(Ssi::parse(&at_limit).unwrap().as_str().len(), 512);
    let over = format!("{prefix}{}", "a".repeat(513 - prefix.len()));
    assert_eq!(Ssi::parse(&over), Err(SsiError::TooLong { len: 513 }));

    assert_eq!(Ssi::parse(""), Err(SsiError::Empty));
    assert_eq!(Ssi::parse("alice"), Err(SsiError::MissingScheme));
    assert_eq!(Ssi::parse("/u/alice"), Err(SsiError::MissingScheme));
    assert_eq!(Ssi::parse("1mimi://a"), Err(SsiError::MissingScheme));
    assert_eq!(Ssi::parse("mi_mi://a"), Err(SsiError::MissingScheme));
    assert_eq!(Ssi::parse(":alice"), Err(SsiError::MissingScheme));
    assert_eq!(Ssi::parse("mimi:"), Err(SsiError::NothingAfterScheme));
    assert_eq!(
        Ssi::parse("mimi://a/b c"),
        Err(SsiError::Whitespace { position: 10 })
    );
    assert_eq!(
        Ssi::parse("mimi://a/b\u{a0}c"),
        Err(SsiError::Whitespace { position: 10 })
    );
    assert_eq!(
        Ssi::parse("mimi://a/b\u{7f}"),
        Err(SsiError::ControlCharacter { position: 10 })
    );
    assert_eq!(
        Ssi::parse("mimi://a/bü"),
        Err(SsiError::NonAscii {
            ch: 'ü',
            position: 10
        })
    );
}

#[test]
fn tags() {
    for ok in ["Personal", "work", "a", "A.b_c-9"] {
        assert_eq!(Tag::parse(ok).unwrap().as_str(), ok);
        assert_eq!(ok.parse::<Tag>().unwrap().to_string(), ok);
    }
    assert_eq!(Tag::parse(&"t".repeat(64)).unwrap().as_str().len(), 64);
    assert_eq!(
        Tag::parse(&"t".repeat(65)),
        Err(TagError::TooLong { len: 65 })
    );
    assert_eq!(Tag::parse(""), Err(TagError::Empty));
    assert_eq!(
        Tag::parse("a b"),
        Err(TagError::InvalidCharacter {
            ch: ' ',
            position: 1
        })
    );
    assert_eq!(
        Tag::parse("a+b"),
        Err(TagError::InvalidCharacter {
            ch: '+',
            position: 1
        })
    );
    assert_eq!(
        Tag::parse("ä"),
        Err(TagError::InvalidCharacter {
            ch: 'ä',
            position: 0
        })
    );
    assert_eq!(MAX_TAGS, 16);
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// Strings near the SII grammar, so that the properties see accepted values too.
fn sii_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        // Valid US numbers (555-01xx) and near misses.
        "(tel|TEL):\\+?1( |-)?(415|212|650)( |-)?555(-| )?01[0-9]{2}",
        "tel:\\+[0-9]{1,18}",
        // Canonical numbers.
        "tel:\\+1(415|212|650)55501[0-9]{2}",
        "tel:\\+41(44|43|79)[1-9][0-9]{6}",
        "tel:\\+(41|44|49|33|39|61|81|86|91|7|1)[0-9]{6,11}",
        "[+]?[0-9 ()./-]{1,24}",
        "tel:[0-9 ()-]{3,15}(;(phone-context|ext|isub)=[+]?[0-9a-z.-]{0,8})?",
        "(mailto:|MAILTO:)?[a-zA-Z0-9.!$&'*+/=^_`{|}~%#?@\"ü-]{0,12}@[a-zA-Z0-9ü.ß_-]{0,20}",
        "mailto:[a-z]{1,8}@[a-z]{1,8}\\.(example|com|org|xn--bcher-kva)",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn identifier_parsers_never_panic(s in any::<String>()) {
        let _ = Name::parse(&s);
        let _ = Ssi::parse(&s);
        let _ = Tag::parse(&s);
        let _ = Sii::parse(&s);
    }

    #[test]
    fn accepted_siis_are_fixed_points(s in sii_like()) {
        match Sii::parse(&s) {
            Ok(sii) => {
                prop_assert_eq!(sii.as_str(), s.as_str());
                prop_assert_eq!(Sii::from_human(&s, None), Ok(sii.clone()));
                prop_assert_eq!(Sii::parse(sii.as_str()), Ok(sii.clone()));
            }
            Err(SiiError::NonCanonical { given, canonical }) => {
                prop_assert_eq!(given, s.clone());
                prop_assert_ne!(canonical.as_str(), s.as_str());
                // The suggested canonical form is accepted as it is.
                prop_assert_eq!(Sii::parse(&canonical).map(Sii::into_string), Ok(canonical));
            }
            Err(_) => {}
        }
    }

    #[test]
    fn from_human_never_panics_and_yields_canonical_siis(
        s in sii_like(),
        region in prop_oneof![
            Just(None),
            Just(Some("US".to_owned())),
            Just(Some("CH".to_owned())),
            Just(Some("GB".to_owned())),
            "[A-Za-z]{0,3}".prop_map(Some),
        ],
    ) {
        if let Ok(sii) = Sii::from_human(&s, region.as_deref()) {
            prop_assert_eq!(Sii::parse(sii.as_str()), Ok(sii.clone()));
        }
    }

    #[test]
    fn names_ssis_and_tags_accept_exactly_their_grammar(s in "[a-zA-Z0-9._:/+ -]{0,70}") {
        let tag_ok = !s.is_empty() && s.len() <= 64
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        prop_assert_eq!(Tag::parse(&s).is_ok(), tag_ok);

        let name_ok = !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
        prop_assert_eq!(Name::parse(&s).is_ok(), name_ok);

        let ssi_ok = !s.contains(' ') && s.split_once(':').is_some_and(|(scheme, rest)| {
            !rest.is_empty()
                && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
        });
        prop_assert_eq!(Ssi::parse(&s).is_ok(), ssi_ok);
    }
}
