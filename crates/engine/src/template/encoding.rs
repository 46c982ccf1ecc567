//! Encoding helpers: `base64 encodeURL md5 sha256`.
//!
//! Each reads its argument as text (UTF-8). `base64` is the standard alphabet with
//! padding; `encodeURL` encodes as JavaScript's `encodeURIComponent` (letters, digits and
//! `-_.!~*'()` stay); `md5` and `sha256` give lowercase hex.

use std::fmt::Write as _;

use base64::Engine as _;
use md5::Digest as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::helpers::{helper, req, Args, HelperSpec, Kind};

pub(crate) static HELPERS: &[HelperSpec] = &[
    helper("base64", &[req("text", Kind::Text)], base64),
    helper("encodeURL", &[req("text", Kind::Text)], encode_url),
    helper("md5", &[req("text", Kind::Text)], md5),
    helper("sha256", &[req("text", Kind::Text)], sha256),
];

/// What `encodeURIComponent` escapes: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

fn base64(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(a.text(0)?.as_bytes()),
    ))
}

fn encode_url(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::String(
        utf8_percent_encode(&a.text(0)?, URI_COMPONENT).to_string(),
    ))
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn md5(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::String(hex(&md5::Md5::digest(a.text(0)?.as_bytes()))))
}

fn sha256(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::String(hex(&sha2::Sha256::digest(
        a.text(0)?.as_bytes(),
    ))))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::template::tests::{load_err, render};
    use serde_json::json;

    #[test]
    fn encodings() {
        let d = json!({"1": {"s": "hello world", "u": "a b&c=d/é?"}});
        assert_eq!(render("{{base64 1.s}}", &d), json!("aGVsbG8gd29ybGQ="));
        assert_eq!(
            render("{{encodeURL 1.u}}", &d),
            json!("a%20b%26c%3Dd%2F%C3%A9%3F")
        );
        assert_eq!(
            render("{{encodeURL \"-_.!~*'()\"}}", &d),
            json!("-_.!~*'()")
        );
        assert_eq!(
            render("{{md5 1.s}}", &d),
            json!("5eb63bbbe01eeed093cb22bb8f5acdc3")
        );
        assert_eq!(
            render("{{sha256 1.s}}", &d),
            json!("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")
        );
        assert_eq!(
            render("{{md5 \"\"}}", &d),
            json!("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert!(load_err("{{base64}}").contains("takes 1 argument"));
    }
}
