//! Decides "is `+<digits>` a valid number that libphonenumber formats back to exactly itself"
//! without the library's regex cache.
//!
//! `phonenumber` keeps its patterns in one process-wide LRU cache of 100 compiled regexes behind
//! a mutex, looked up by the pattern text on every match. Numbers from many countries thrash
//! that cache (milliseconds per number) and every thread contends for the lock. This module
//! walks the same metadata (`phonenumber::metadata::DATABASE`) with the same steps as
//! `phonenumber::parse(None, "+<digits>")`, `phonenumber::is_valid` and the E.164 formatter, but
//! with its own compiled copies of the patterns (same source and flags).
//!
//! It is only ever trusted to say "yes": whenever it answers `false` — or meets anything it does
//! not model — [`Sii::parse`] falls back to the library, which then decides. The tests compare
//! both on every example number in the metadata and on random numbers.

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use regex::{Regex, RegexBuilder};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};

/// Something the model does not cover (where the library would panic, or metadata it does
/// not expect): answer `false` and let the library decide.
struct Bail;

/// A pattern only ever asked "is there a match starting at 0?" (what the library computes
/// as `find(value).map(|m| m.start() == 0)`: the leftmost match starts at 0 exactly when
/// some match does). Compiled anchored, `^(?:…)`, so the search stops early; the line
/// breaks end any `#` comment the pattern could contain in ignore-whitespace mode.
struct Prefix(Regex);

impl Prefix {
    fn compile(source: &str) -> Option<Prefix> {
        compile(&format!("^(?:\n{source}\n)")).map(Prefix)
    }

    fn matches_at_start(&self, value: &str) -> bool {
        self.0.is_match(value)
    }
}

/// A compiled `Descriptor` (phonenumber `metadata::Descriptor::is_match`).
struct Desc {
    re: Prefix,
    possible_length: &'static [u16],
}

impl Desc {
    fn compile(d: &'static Descriptor) -> Option<Desc> {
        Some(Desc {
            re: Prefix::compile(d.national_number().as_str())?,
            possible_length: d.possible_length(),
        })
    }

    /// Same as the library: a possible length, and a match starting at 0 (not a full match).
    fn is_match(&self, value: &str) -> bool {
        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
        (self.possible_length.is_empty() || self.possible_length.contains(&len))
            && self.re.matches_at_start(value)
    }
}

/// The patterns of one region's metadata.
struct RegionRx {
    leading_digits: Option<Prefix>,
    national_prefix_for_parsing: Option<Regex>,
    general: Desc,
    /// The descriptors `validator::number_type` tries after `general`, in its order.
    types: Vec<Desc>,
}

/// One region's metadata with its patterns compiled on first use.
struct Region {
    meta: &'static Metadata,
    rx: OnceLock<Option<RegionRx>>,
}

impl Region {
    fn new(meta: &'static Metadata) -> Region {
        Region {
            meta,
            rx: OnceLock::new(),
        }
    }

    fn rx(&self) -> Result<&RegionRx, Bail> {
        self.rx
            .get_or_init(|| compile_region(self.meta))
            .as_ref()
            .ok_or(Bail)
    }
}

/// How `validator::source_for` picks the metadata for a country calling code.
enum CodeEntry {
    /// One region for the code: its metadata, if the library finds any.
    Single(Option<Region>),
    /// Several regions, tried in order; `None` where the library would panic.
    Multi(Vec<Option<Region>>),
}

/// The regex flags of `phonenumber`'s `CachedRegexBuilder` (regex-cache defaults plus
/// `ignore_whitespace`), except Unicode mode: the haystacks here are ASCII digits only, on
/// which `\d`, `\w`, `\s` and `\b` mean the same with or without it, and without it the
/// compiled patterns take a tenth of the memory and time (`\d{9}` is otherwise nine copies
/// of a UTF-8 automaton for every Unicode decimal digit).
fn compile(source: &str) -> Option<Regex> {
    RegexBuilder::new(source)
        .ignore_whitespace(true)
        .unicode(false)
        .size_limit(10 * (1 << 20))
        .dfa_size_limit(2 * (1 << 20))
        .build()
        .ok()
}

fn compile_region(meta: &'static Metadata) -> Option<RegionRx> {
    let d = meta.descriptors();
    let optional = |r: Option<&'static phonenumber::metadata::Descriptor>| match r {
        Some(r) => Desc::compile(r).map(Some),
        None => Some(None),
    };
    let mut types = Vec::new();
    for desc in [
        d.premium_rate(),
        d.toll_free(),
        d.shared_cost(),
        d.voip(),
        d.personal_number(),
        d.pager(),
        d.uan(),
        d.voicemail(),
        d.fixed_line(),
        d.mobile(),
    ] {
        types.extend(optional(desc)?);
    }
    Some(RegionRx {
        leading_digits: match meta.leading_digits() {
            Some(r) => Some(Prefix::compile(r.as_str())?),
            None => None,
        },
        national_prefix_for_parsing: match meta.national_prefix_for_parsing() {
            Some(r) => Some(compile(r.as_str())?),
            None => None,
        },
        general: Desc::compile(d.general())?,
        types,
    })
}

/// Country calling code → regions, as `Database::region`/`by_id`/`by_code` give them.
static CODES: LazyLock<HashMap<u16, CodeEntry>> = LazyLock::new(|| {
    let db: &'static phonenumber::metadata::Database = &DATABASE;
    let mut codes = HashMap::new();
    for code in 1..=999u16 {
        let Some(regions) = db.region(&code) else {
            continue;
        };
        let entry = match regions.as_slice() {
            [] => continue,
            ["001"] => CodeEntry::Single(
                db.by_code(&code)
                    .and_then(|m| m.into_iter().next())
                    .map(Region::new),
            ),
            [one] => CodeEntry::Single(
                one.parse::<phonenumber::country::Id>()
                    .ok()
                    .and_then(|id| db.by_id(id.as_ref()))
                    .map(Region::new),
            ),
            many => CodeEntry::Multi(
                many.iter()
                    .map(|r| {
                        r.parse::<phonenumber::country::Id>()
                            .ok()
                            .and_then(|id| db.by_id(id.as_ref()))
                            .map(Region::new)
                    })
                    .collect(),
            ),
        };
        codes.insert(code, entry);
    }
    codes
});

/// `validator::number_type(meta, value) != Type::Unknown`.
fn known_type(rx: &RegionRx, value: &str) -> bool {
    rx.general.is_match(value) && rx.types.iter().any(|d| d.is_match(value))
}

/// `validator::source_for`: the metadata for `national` under a calling code.
fn source_for<'a>(entry: &'a CodeEntry, national: &str) -> Result<Option<&'a Region>, Bail> {
    match entry {
        CodeEntry::Single(region) => Ok(region.as_ref()),
        CodeEntry::Multi(regions) => {
            for region in regions {
                let region = region.as_ref().ok_or(Bail)?;
                let rx = region.rx()?;
                let hit = match &rx.leading_digits {
                    Some(re) => re.matches_at_start(national),
                    None => known_type(rx, national),
                };
                if hit {
                    return Ok(Some(region));
                }
            }
            Ok(None)
        }
    }
}

/// `parser::helper::national_number`: strips a national prefix (or applies the transform
/// rule) when the metadata says so; the carrier code it extracts does not matter here.
fn national_number<'n>(region: &Region, rx: &RegionRx, n: &'n str) -> Result<Cow<'n, str>, Bail> {
    let Some(parsing) = &rx.national_prefix_for_parsing else {
        if let Some(rest) = region
            .meta
            .national_prefix()
            .and_then(|p| n.strip_prefix(p))
        {
            return Ok(Cow::Borrowed(rest));
        }
        return Ok(Cow::Borrowed(n));
    };
    let Some(m) = parsing.find(n) else {
        return Ok(Cow::Borrowed(n));
    };
    if m.start() != 0 {
        return Ok(Cow::Borrowed(n));
    }
    let viable = rx.general.is_match(n);
    let caps = parsing.captures(n).ok_or(Bail)?;
    let first = caps.get(1);
    let last = caps.get(caps.len().saturating_sub(1));
    match region.meta.national_prefix_transform_rule() {
        Some(transform) if last.is_some() => {
            let transformed = parsing.replace(n, transform).into_owned();
            if viable && !rx.general.is_match(&transformed) {
                return Ok(Cow::Borrowed(n));
            }
            if first.is_none() {
                return Err(Bail); // the library unwraps the first group here
            }
            Ok(Cow::Owned(transformed))
        }
        _ => {
            let rest = n.get(m.start()..).ok_or(Bail)?;
            if viable && !rx.general.is_match(rest) {
                return Ok(Cow::Borrowed(n));
            }
            Ok(Cow::Borrowed(n.get(m.end()..).ok_or(Bail)?))
        }
    }
}

/// `validator::length(meta, number, Type::Unknown) != Validation::TooShort`.
fn not_too_short(meta: &Metadata, len: usize) -> bool {
    let general = meta.descriptors().general();
    let possible = general.possible_length();
    let len = u16::try_from(len).unwrap_or(u16::MAX);
    match possible.first() {
        None => true,
        Some(&min) => general.possible_local_length().contains(&len) || len >= min,
    }
}

/// Compiles every region's patterns; returns the (code, region) pairs that fail to compile
/// or that the table cannot resolve, for which the fast path always defers to the library.
#[cfg(test)]
pub(super) fn uncompiled_regions() -> Vec<(u16, String)> {
    let mut failed = Vec::new();
    for (code, entry) in CODES.iter() {
        let regions: Vec<Option<&Region>> = match entry {
            CodeEntry::Single(r) => r.iter().map(Some).collect(),
            CodeEntry::Multi(rs) => rs.iter().map(Option::as_ref).collect(),
        };
        for region in regions {
            match region {
                Some(r) if r.rx().is_ok() => {}
                Some(r) => failed.push((*code, r.meta.id().to_owned())),
                None => failed.push((*code, "?".to_owned())),
            }
        }
    }
    failed
}

/// Whether `tel:+<digits>` is a canonical, valid SII. `false` means "ask the library".
pub(super) fn is_canonical_valid(digits: &str) -> bool {
    check(digits).unwrap_or(false)
}

fn check(d: &str) -> Result<bool, Bail> {
    let bytes = d.as_bytes();
    // `is_viable` wants 3 digits; no calling code starts with 0; a national number has at
    // most 17 digits.
    if bytes.len() < 3
        || bytes.len() > 20
        || !bytes.iter().all(u8::is_ascii_digit)
        || bytes[0] == b'0'
    {
        return Ok(false);
    }
    // `helper::country_code`: the shortest prefix that is a known calling code.
    let mut found = None;
    for k in 1..=3 {
        let code: u16 = d.get(..k).ok_or(Bail)?.parse().map_err(|_| Bail)?;
        if let Some(entry) = CODES.get(&code) {
            found = Some((k, entry));
            break;
        }
    }
    let Some((k, entry)) = found else {
        return Ok(false);
    };
    let n = d.get(k..).ok_or(Bail)?;

    // `parser::parse_with`: national prefix handling with the metadata found for the number
    // without leading zeros. The number is canonical only if it is left unchanged.
    if let Some(region) = source_for(entry, n.trim_start_matches('0'))? {
        let rx = region.rx()?;
        let mut potential = national_number(region, rx, n)?;
        if let Some(prefix) = region.meta.national_prefix() {
            if let Some(rest) = potential.strip_prefix(prefix) {
                potential = Cow::Owned(rest.to_owned());
            }
        }
        if not_too_short(region.meta, potential.len()) && potential != n {
            return Ok(false);
        }
    }
    // Length limits and `NationalNumber::from_str` (leading zeros, then a u64 below 2^56).
    if n.len() < 2 || n.len() > 17 {
        return Ok(false);
    }
    let value = n.trim_start_matches('0');
    match value.parse::<u64>() {
        Ok(v) if v < (1 << 56) => {}
        _ => return Ok(false),
    }
    // `is_valid`: the metadata for the national number as formatted (with its zeros).
    let Some(region) = source_for(entry, n)? else {
        return Ok(false);
    };
    Ok(known_type(region.rx()?, n))
}

#[cfg(test)]
mod tests {
    //! The fast path for canonical phone numbers against the library it models.

    use super::*;
    use crate::sii::Sii;

    /// The library's answer: `from_human` never takes the fast path.
    fn library_says_canonical(digits: &str) -> bool {
        let text = format!("tel:+{digits}");
        matches!(Sii::from_human(&text, None), Ok(sii) if sii.as_str() == text)
    }

    fn assert_same(digits: &str) {
        assert_eq!(
            is_canonical_valid(digits),
            library_says_canonical(digits),
            "fast path and library disagree on +{digits}"
        );
    }

    /// Every example number of every region and number type in the metadata, by calling code,
    /// grouped by code so that the library's small regex cache stays warm.
    fn examples() -> Vec<(u16, String)> {
        let db = &phonenumber::metadata::DATABASE;
        let mut out = Vec::new();
        for code in 1..=999u16 {
            for meta in db.by_code(&code).unwrap_or_default() {
                let d = meta.descriptors();
                let all = [
                    Some(d.general()),
                    d.fixed_line(),
                    d.mobile(),
                    d.toll_free(),
                    d.premium_rate(),
                    d.shared_cost(),
                    d.personal_number(),
                    d.voip(),
                    d.pager(),
                    d.uan(),
                    d.voicemail(),
                    d.emergency(),
                    d.short_code(),
                    d.standard_rate(),
                    d.carrier(),
                    d.no_international(),
                ];
                for example in all.into_iter().flatten().filter_map(|d| d.example()) {
                    out.push((code, example.to_owned()));
                }
            }
        }
        out
    }

    #[test]
    fn every_region_compiles_for_the_fast_path() {
        assert_eq!(uncompiled_regions(), Vec::<(u16, String)>::new());
    }

    #[test]
    fn fast_path_agrees_on_metadata_examples_and_their_mutations() {
        let examples = examples();
        assert!(examples.len() > 1000, "only {} examples", examples.len());
        let mut accepted = 0;
        for (code, national) in &examples {
            let digits = format!("{code}{national}");
            assert_same(&digits);
            accepted += usize::from(library_says_canonical(&digits));
            // With a national (trunk) prefix, one digit more or less, a changed first digit.
            assert_same(&format!("{code}0{national}"));
            assert_same(&format!("{code}{national}5"));
            assert_same(&digits[..digits.len() - 1]);
            for first in ['0', '1', '7', '9'] {
                assert_same(&format!("{code}{first}{}", national.get(1..).unwrap_or("")));
            }
        }
        // Most examples are valid numbers; the test must not pass by both sides saying no.
        assert!(
            accepted * 10 > examples.len() * 9,
            "{accepted} of {}",
            examples.len()
        );
    }

    #[test]
    fn fast_path_agrees_on_random_numbers() {
        // xorshift64*: deterministic, no dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let db = &phonenumber::metadata::DATABASE;
        let codes: Vec<u16> = (1..=999u16).filter(|c| db.by_code(c).is_some()).collect();
        for code in codes {
            for _ in 0..12 {
                let len = 4 + (next() % 11) as usize;
                let national: String = (0..len)
                    .map(|_| char::from(b'0' + (next() % 10) as u8))
                    .collect();
                assert_same(&format!("{code}{national}"));
            }
        }
        for _ in 0..300 {
            let len = 1 + (next() % 19) as usize;
            let digits: String = (0..len)
                .map(|_| char::from(b'0' + (next() % 10) as u8))
                .collect();
            assert_same(&digits);
        }
    }
}
