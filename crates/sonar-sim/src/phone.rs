//! Phone number normalization to E.164 (contract §4).
//!
//! Accepted: E.164 (`+13105550123`, `+447700900123`), US 10-digit (`3105550123`), US 11-digit with
//! a leading `1`, and any mix of spaces, dots, dashes and parentheses (`(310) 555-0123`,
//! `+1 310-555-0123`). Everything else is an invalid phone number.

use crate::error::ApiError;

/// The longest number E.164 allows, in digits (country code included).
const MAX_DIGITS: usize = 15;
/// The shortest international number we accept, in digits (country code included).
const MIN_INTERNATIONAL_DIGITS: usize = 8;

/// `raw` in E.164 (`+` and digits), or [`ApiError::InvalidPhoneNumber`].
pub(crate) fn normalize(raw: &str) -> Result<String, ApiError> {
    let raw = raw.trim();
    let (international, rest) = match raw.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let mut digits = String::with_capacity(MAX_DIGITS + 1);
    digits.push('+');
    for c in rest.chars() {
        match c {
            '0'..='9' => {
                if digits.len() > MAX_DIGITS {
                    return Err(ApiError::InvalidPhoneNumber);
                }
                digits.push(c);
            }
            ' ' | '.' | '-' | '(' | ')' => {}
            _ => return Err(ApiError::InvalidPhoneNumber),
        }
    }
    let count = digits.len() - 1;
    let valid = if international {
        if digits.starts_with("+1") {
            count == 11
        } else {
            (MIN_INTERNATIONAL_DIGITS..=MAX_DIGITS).contains(&count) && !digits.starts_with("+0")
        }
    } else {
        match count {
            10 => {
                digits.insert(1, '1');
                true
            }
            11 => digits.starts_with("+1"),
            _ => false,
        }
    };
    if valid {
        Ok(digits)
    } else {
        Err(ApiError::InvalidPhoneNumber)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_contract_forms() {
        for (raw, e164) in [
            ("+13105550123", "+13105550123"),
            ("+447700900123", "+447700900123"),
            ("3105550123", "+13105550123"),
            ("13105550123", "+13105550123"),
            ("(310) 555-0123", "+13105550123"),
            ("310.555.0123", "+13105550123"),
            ("+1 310-555-0123", "+13105550123"),
            ("+1 415.555.0123", "+14155550123"),
            ("+44 7700 900123", "+447700900123"),
            ("5555555557", "+15555555557"),
            (" 1 (310) 555-0123 ", "+13105550123"),
        ] {
            assert_eq!(normalize(raw).ok().as_deref(), Some(e164), "{raw}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for raw in [
            "",
            "111",
            "+",
            "310555012",
            "23105550123",
            "+1310555012",
            "+131055501234",
            "310-555-01x3",
            "+1234567",
            "+0123456789",
            "1234567890123456",
            "+44 7700 900123 1234",
            "3105550123+",
            "++13105550123",
        ] {
            assert!(
                matches!(normalize(raw), Err(ApiError::InvalidPhoneNumber)),
                "{raw}"
            );
        }
    }
}
