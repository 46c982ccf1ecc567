//! Phone numbers: E.164 and common national formats, normalized to E.164 before they are
//! sent to Sonar.
//!
//! Accepted, with any mix of spaces, dots, dashes, slashes and parentheses:
//! - E.164 of any country: `+13105550123`, `+44 7700 900123`, `+44 (0)7700 900123`;
//! - the international prefix of the default country: `00 44 7700 900123` (or `011` in North
//!   America);
//! - national forms of the connection's `default_country` (default `US`): for North America
//!   (`US`, `CA`, …) 10 digits (`(310) 555-0123`) or 11 with the leading `1`; for countries
//!   with a trunk prefix (`GB`, `AU`, `DE`, `FR`, …) the number with its leading `0`
//!   (`07700 900123`).
//!
//! Anything else (letters, extensions, wrong lengths) is a DataError naming the field:
//! ``field `phone_number`: `111` is not a valid phone number``.

use weft_engine::ModuleError;

/// How a country writes national numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// The North American Numbering Plan: `+1`, 10 national digits `NXX NXX XXXX`.
    Nanp,
    /// A trunk prefix `0` before `min..=max` national significant digits.
    Trunk0 { min: usize, max: usize },
    /// No trunk prefix; exactly `min..=max` national digits.
    Plain { min: usize, max: usize },
}

/// A country whose national phone formats are understood (connection field
/// `default_country`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Country {
    code: &'static str,
    calling_code: &'static str,
    plan: Plan,
}

/// Supported `default_country` values.
const COUNTRIES: &[Country] = &[
    Country {
        code: "AU",
        calling_code: "61",
        plan: Plan::Trunk0 { min: 9, max: 9 },
    },
    Country {
        code: "CA",
        calling_code: "1",
        plan: Plan::Nanp,
    },
    Country {
        code: "DE",
        calling_code: "49",
        plan: Plan::Trunk0 { min: 6, max: 13 },
    },
    Country {
        code: "ES",
        calling_code: "34",
        plan: Plan::Plain { min: 9, max: 9 },
    },
    Country {
        code: "FR",
        calling_code: "33",
        plan: Plan::Trunk0 { min: 9, max: 9 },
    },
    Country {
        code: "GB",
        calling_code: "44",
        plan: Plan::Trunk0 { min: 9, max: 10 },
    },
    Country {
        code: "IE",
        calling_code: "353",
        plan: Plan::Trunk0 { min: 7, max: 9 },
    },
    Country {
        code: "IN",
        calling_code: "91",
        plan: Plan::Trunk0 { min: 10, max: 10 },
    },
    Country {
        code: "MX",
        calling_code: "52",
        plan: Plan::Plain { min: 10, max: 10 },
    },
    Country {
        code: "NL",
        calling_code: "31",
        plan: Plan::Trunk0 { min: 9, max: 9 },
    },
    Country {
        code: "NZ",
        calling_code: "64",
        plan: Plan::Trunk0 { min: 8, max: 10 },
    },
    Country {
        code: "PR",
        calling_code: "1",
        plan: Plan::Nanp,
    },
    Country {
        code: "US",
        calling_code: "1",
        plan: Plan::Nanp,
    },
];

/// The longest number E.164 allows, in digits (country code included).
const MAX_DIGITS: usize = 15;
/// The shortest international number accepted, in digits (as Sonar does).
const MIN_DIGITS: usize = 8;

impl Default for Country {
    /// The United States.
    fn default() -> Self {
        Country {
            code: "US",
            calling_code: "1",
            plan: Plan::Nanp,
        }
    }
}

impl Country {
    /// The country with this ISO 3166 alpha-2 code (any case); `UK` is read as `GB`.
    pub fn from_code(code: &str) -> Result<Country, String> {
        let wanted = code.trim().to_ascii_uppercase();
        let wanted = if wanted == "UK" {
            "GB".to_owned()
        } else {
            wanted
        };
        COUNTRIES
            .iter()
            .find(|c| c.code == wanted)
            .copied()
            .ok_or_else(|| {
                let known: Vec<&str> = COUNTRIES.iter().map(|c| c.code).collect();
                format!(
                    "`default_country` `{}` is not supported; use one of {}",
                    code.trim(),
                    known.join(", ")
                )
            })
    }

    /// The ISO 3166 code, e.g. `US`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The international call prefix dialled from this country.
    fn exit_prefix(&self) -> &'static str {
        match self.plan {
            Plan::Nanp => "011",
            _ => "00",
        }
    }
}

/// `raw` in E.164, or `None` when it is not a phone number we understand.
pub fn normalize(raw: &str, country: Country) -> Option<String> {
    let raw = raw.trim();
    let (plus, rest) = match raw.strip_prefix('+') {
        Some(rest) => (true, rest.replace("(0)", "")),
        None => (false, raw.to_owned()),
    };
    let mut digits = String::with_capacity(MAX_DIGITS);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '.' | '-' | '(' | ')' | '/' | '\u{a0}' => {}
            _ => return None,
        }
        if digits.len() > MAX_DIGITS + 3 {
            return None;
        }
    }
    if plus {
        return international(&digits);
    }
    if let Some(intl) = digits.strip_prefix(country.exit_prefix()) {
        return international(intl);
    }
    national(&digits, country)
}

/// Checks digits after a `+` (country code first).
fn international(digits: &str) -> Option<String> {
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) || digits.starts_with('0') {
        return None;
    }
    if let Some(national) = digits.strip_prefix('1') {
        return nanp(national);
    }
    if let Some(national) = digits.strip_prefix("44") {
        if !(9..=10).contains(&national.len()) || national.starts_with('0') {
            return None;
        }
    }
    Some(format!("+{digits}"))
}

/// `+1` and the 10 national digits, if they follow the plan (`NXX NXX XXXX`, N = 2-9).
fn nanp(national: &str) -> Option<String> {
    let b = national.as_bytes();
    let ok = b.len() == 10 && b[0] >= b'2' && b[3] >= b'2';
    ok.then(|| format!("+1{national}"))
}

/// A national number of `country`.
fn national(digits: &str, country: Country) -> Option<String> {
    match country.plan {
        Plan::Nanp => match digits.len() {
            10 => nanp(digits),
            11 => digits.strip_prefix('1').and_then(nanp),
            _ => None,
        },
        Plan::Trunk0 { min, max } => {
            let significant = digits.strip_prefix('0')?;
            let ok = (min..=max).contains(&significant.len()) && !significant.starts_with('0');
            ok.then(|| format!("+{}{significant}", country.calling_code))
        }
        Plan::Plain { min, max } => {
            let ok = (min..=max).contains(&digits.len()) && !digits.starts_with('0');
            ok.then(|| format!("+{}{digits}", country.calling_code))
        }
    }
}

/// [`normalize`], or a DataError naming `field`.
pub fn normalize_field(field: &str, raw: &str, country: Country) -> Result<String, ModuleError> {
    normalize(raw, country).ok_or_else(|| {
        let shown: String = raw.chars().take(40).collect();
        ModuleError::data(format!(
            "field `{field}`: `{shown}` is not a valid phone number; use E.164 (`+13105550123`) or a {} national number",
            country.code()
        ))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn us(raw: &str) -> Option<String> {
        normalize(raw, Country::default())
    }

    fn gb(raw: &str) -> Option<String> {
        normalize(raw, Country::from_code("GB").unwrap())
    }

    #[test]
    fn e164_of_any_country() {
        for (raw, e164) in [
            ("+13105550123", "+13105550123"),
            ("+1 310-555-0123", "+13105550123"),
            ("+1 415.555.0123", "+14155550123"),
            ("+1 (310) 555-0123", "+13105550123"),
            ("+447700900123", "+447700900123"),
            ("+44 7700 900123", "+447700900123"),
            ("+44 (0)7700 900123", "+447700900123"),
            ("+61 412 345 678", "+61412345678"),
            ("+33 6 12 34 56 78", "+33612345678"),
            (" +4915123456789 ", "+4915123456789"),
        ] {
            assert_eq!(us(raw).as_deref(), Some(e164), "{raw}");
            assert_eq!(gb(raw).as_deref(), Some(e164), "{raw} with GB default");
        }
    }

    #[test]
    fn us_national_forms() {
        for raw in [
            "3105550123",
            "13105550123",
            "(310) 555-0123",
            "310.555.0123",
            "310-555-0123",
            "1 (310) 555 0123",
            "011 1 310 555 0123",
        ] {
            assert_eq!(us(raw).as_deref(), Some("+13105550123"), "{raw}");
        }
        assert_eq!(us("011 44 7700 900123").as_deref(), Some("+447700900123"));
        let ca = Country::from_code("ca").unwrap();
        assert_eq!(
            normalize("(416) 555-0199", ca).as_deref(),
            Some("+14165550199")
        );
    }

    #[test]
    fn gb_national_forms() {
        for raw in [
            "07700 900123",
            "07700900123",
            "(0)7700 900 123",
            "0044 7700 900123",
        ] {
            assert_eq!(gb(raw).as_deref(), Some("+447700900123"), "{raw}");
        }
        assert_eq!(gb("020 7946 0018").as_deref(), Some("+442079460018"));
        assert_eq!(
            normalize("07700 900123", Country::from_code("uk").unwrap()).as_deref(),
            Some("+447700900123")
        );
        // A US national number means nothing in the UK.
        assert_eq!(gb("(310) 555-0123"), None);
    }

    #[test]
    fn invalid_numbers() {
        for raw in [
            "",
            "111",
            "+1",
            "+0123456789",
            "+1 310 555 012",
            "+1 310 555 01234",
            "0310 555 0123",
            "1310555012",
            "(110) 555-0123",
            "310 155 0123",
            "310-555-0123 x12",
            "abc",
            "+44 07700 900123",
            "+4477009001",
            "+1234567890123456",
            "310_555_0123",
            "+1\n3105550123",
        ] {
            assert_eq!(us(raw), None, "{raw:?}");
        }
        assert_eq!(gb("7700 900123"), None, "no trunk prefix");
        assert_eq!(gb("0770"), None);
    }

    #[test]
    fn error_names_the_field() {
        let err = normalize_field("phone_number", "111", Country::default()).unwrap_err();
        assert_eq!(err.kind, weft_engine::ErrorKind::DataError);
        assert!(
            err.message
                .starts_with("field `phone_number`: `111` is not a valid phone number"),
            "{}",
            err.message
        );
    }

    #[test]
    fn unknown_country_code() {
        let err = Country::from_code("ZZ").unwrap_err();
        assert!(err.contains("`ZZ` is not supported"), "{err}");
        assert!(err.contains("GB"), "{err}");
    }
}
