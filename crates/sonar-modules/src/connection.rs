//! The `sonar` app: the connection's fields and the [`SonarConnection`] handle every Sonar
//! module runs with.
//!
//! ```yaml
//! connections:
//!   sonar:
//!     app: sonar
//!     token: ${SONAR_TOKEN}   # sent only as the `X-Token` header, never logged
//!     sandbox: true           # https://sandbox.sendsonar.com/api
//!     # base_url: http://127.0.0.1:4010/api   # the simulator, a proxy
//! ```
//!
//! Connections with the same request timeout share one `reqwest::Client` (one connection
//! pool, 10 s connect timeout, 30 s request timeout by default, no redirects); the token goes
//! into each request's header, not into the client.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use reqwest::Url;
use serde_json::{Map, Value};
use weft_engine::exec::record::Redactor;
use weft_engine::spec::{field, FieldSpec, FieldType};
use weft_engine::App;

use crate::phone::Country;

/// What replaces the token in anything the Sonar modules show (messages, recorded answers).
pub(crate) const SCRUBBED: &str = "[redacted]";

/// Base URL of live accounts.
pub const LIVE_BASE_URL: &str = "https://www.sendsonar.com/api";
/// Base URL of sandbox accounts.
pub const SANDBOX_BASE_URL: &str = "https://sandbox.sendsonar.com/api";

/// The `sonar` app (`connections: { x: { app: sonar, ... } }`).
pub struct SonarApp;

static FIELDS: &[FieldSpec] = &[
    field("token", FieldType::Text)
        .required()
        .help("The account's private API token (Sonar: Company Settings). A secret: give it as `${VAR}`; it is sent only as the `X-Token` header and redacted everywhere.")
        .example("${SONAR_TOKEN}"),
    field("sandbox", FieldType::Boolean)
        .help("`true` uses the sandbox (`https://sandbox.sendsonar.com/api`); `false` or absent uses the live API (`https://www.sendsonar.com/api`). Sandbox and live accounts have separate tokens.")
        .example("true"),
    field("base_url", FieldType::Url)
        .help("Overrides the API base URL (the simulator, a proxy); wins over `sandbox`. No query string, no credentials.")
        .example("http://127.0.0.1:4010/api"),
    field("default_country", FieldType::Text)
        .help("Country whose national phone formats are understood (`(310) 555-0123` for `US`, `07700 900123` for `GB`); ISO 3166 code, default `US`. E.164 numbers (`+44…`) work whatever it is.")
        .example("GB"),
    field("max_retries", FieldType::Number)
        .help("How many times a request failing with a rate limit (429) or a connection error (5xx, timeout, refused) is retried before the module fails; 0 to 10, default 3.")
        .example("3"),
    field("retry_base_ms", FieldType::Number)
        .help("First retry delay in milliseconds, doubled on each retry, with jitter; default 500.")
        .example("500"),
    field("retry_max_ms", FieldType::Number)
        .help("Longest single retry wait in milliseconds, also the cap on a `Retry-After` asked by Sonar; default 30000.")
        .example("30000"),
    field("timeout_secs", FieldType::Number)
        .help("Seconds one request may take before it fails as a ConnectionError; default 30, at most 300.")
        .example("30"),
];

/// How failed requests are retried (connection fields `max_retries`, `retry_base_ms`,
/// `retry_max_ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first backoff delay; each retry doubles it.
    pub base: Duration,
    /// The longest single wait, backoff or `Retry-After`.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 3 retries, 500 ms first delay, 30 s cap.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): exponential backoff with "equal
    /// jitter" (half fixed, half random), or the server's `Retry-After` when it gave one;
    /// never more than [`RetryPolicy::max`].
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max);
        }
        let factor = 2u32.saturating_pow(retry.min(20));
        let backoff = self.base.saturating_mul(factor).min(self.max);
        let half = backoff / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// A built Sonar connection: base URL, token, HTTP client, phone and retry settings.
///
/// Get it in a module with `cx.connection::<SonarConnection>()?`. Its `Debug` output
/// redacts the token.
pub struct SonarConnection {
    pub(crate) base: Url,
    /// The `X-Token` header, built once (marked sensitive: never printed by the client).
    pub(crate) token_header: reqwest::header::HeaderValue,
    pub(crate) country: Country,
    pub(crate) retry: RetryPolicy,
    pub(crate) client: reqwest::Client,
    /// Replaces the token with [`SCRUBBED`] in whatever Sonar answers.
    pub(crate) scrubber: Redactor,
}

impl std::fmt::Debug for SonarConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SonarConnection")
            .field("base_url", &self.base.as_str())
            .field("token", &"[redacted]")
            .field("default_country", &self.country.code())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The HTTP client of every connection whose requests time out after `timeout`.
///
/// Built once per timeout in the process and shared: each client holds a connection pool and a
/// TLS configuration, which cost tens of kilobytes and a fraction of a millisecond to build,
/// so a server with a hundred scenarios would otherwise build a hundred. Sharing is safe: the
/// pool keeps connections per host and port, and a connection's token is a header of each
/// request.
fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    static CLIENTS: OnceLock<Mutex<HashMap<Duration, reqwest::Client>>> = OnceLock::new();
    let mut clients = CLIENTS
        .get_or_init(Mutex::default)
        .lock()
        // The map is only read and inserted into: a panic elsewhere leaves it whole.
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(client) = clients.get(&timeout) {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        // A redirect could carry the `X-Token` header to another host.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("weft-sonar/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    clients.insert(timeout, client.clone());
    Ok(client)
}

impl SonarConnection {
    /// Builds a connection from its fields (as the loader passes them to
    /// [`App::connect`]); the error says which field is wrong.
    pub fn from_fields(fields: &Map<String, Value>) -> Result<Self, String> {
        let token = match fields.get("token") {
            Some(Value::String(t)) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => return Err("`token` is required and must be non-empty text".to_owned()),
        };
        if token.chars().any(|c| c.is_control()) {
            return Err("`token` contains control characters".to_owned());
        }
        let mut token_header = reqwest::header::HeaderValue::from_str(&token)
            .map_err(|_| "`token` is not a valid HTTP header value".to_owned())?;
        token_header.set_sensitive(true);
        let sandbox = match fields.get("sandbox") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(format!(
                    "`sandbox` must be `true` or `false`, not `{other}`"
                ))
            }
        };
        let base_text = match fields.get("base_url") {
            None | Some(Value::Null) => if sandbox {
                SANDBOX_BASE_URL
            } else {
                LIVE_BASE_URL
            }
            .to_owned(),
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(other) => return Err(format!("`base_url` must be a URL, not `{other}`")),
        };
        let base = parse_base_url(&base_text)?;
        let country = match fields.get("default_country") {
            None | Some(Value::Null) => Country::default(),
            Some(Value::String(code)) if code.trim().is_empty() => Country::default(),
            Some(Value::String(code)) => Country::from_code(code)?,
            Some(other) => {
                return Err(format!(
                    "`default_country` must be a country code like `US`, not `{other}`"
                ))
            }
        };
        let defaults = RetryPolicy::default();
        let max_retries =
            number(fields, "max_retries", 0.0, 10.0)?.map_or(defaults.max_retries, |n| n as u32);
        let base_ms = number(fields, "retry_base_ms", 0.0, 600_000.0)?;
        let max_ms = number(fields, "retry_max_ms", 0.0, 3_600_000.0)?;
        let retry = RetryPolicy {
            max_retries,
            base: base_ms.map_or(defaults.base, |ms| Duration::from_secs_f64(ms / 1000.0)),
            max: max_ms.map_or(defaults.max, |ms| Duration::from_secs_f64(ms / 1000.0)),
        };
        let timeout = number(fields, "timeout_secs", 0.001, 300.0)?.unwrap_or(30.0);
        let client = http_client(Duration::from_secs_f64(timeout))?;
        Ok(SonarConnection {
            base,
            scrubber: Redactor::new(std::slice::from_ref(&token), SCRUBBED),
            token_header,
            country,
            retry,
            client,
        })
    }

    /// The API base URL, without a trailing slash (e.g. `https://www.sendsonar.com/api`).
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The country whose national phone formats are understood.
    pub fn default_country(&self) -> &'static str {
        self.country.code()
    }

    /// How failed requests are retried.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Replaces every occurrence of the token in `text` (for anything shown to users).
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.scrubber.text(text)
    }
}

/// A `number` connection field within `min..=max`, if given.
fn number(
    fields: &Map<String, Value>,
    name: &str,
    min: f64,
    max: f64,
) -> Result<Option<f64>, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(format!(
                "`{name}` must be between {min} and {max}, not `{n}`"
            )),
        },
        Some(other) => Err(format!("`{name}` must be a number, not `{other}`")),
    }
}

/// Parses and checks a base URL: `http`/`https`, a host, no credentials, query or fragment.
fn parse_base_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`base_url` `{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`base_url` `{text}` must start with `http://` or `https://`"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`base_url` `{text}` has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("`base_url` must not contain credentials; use `token`".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`base_url` `{text}` must not have a query string or fragment"
        ));
    }
    // Keep the path without a trailing slash so that `base + "/v1/..."` is the endpoint.
    let mut url = url;
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

impl App for SonarApp {
    fn name(&self) -> &'static str {
        "sonar"
    }

    fn fields(&self) -> &'static [FieldSpec] {
        FIELDS
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["token"]
    }

    fn connect(&self, fields: &Map<String, Value>) -> Result<Arc<dyn Any + Send + Sync>, String> {
        Ok(Arc::new(SonarConnection::from_fields(fields)?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn sandbox_live_and_override() {
        let live = SonarConnection::from_fields(&fields(json!({"token": "t"}))).unwrap();
        assert_eq!(live.base_url(), LIVE_BASE_URL);
        let sandbox =
            SonarConnection::from_fields(&fields(json!({"token": "t", "sandbox": true}))).unwrap();
        assert_eq!(sandbox.base_url(), SANDBOX_BASE_URL);
        let sim = SonarConnection::from_fields(&fields(
            json!({"token": "t", "sandbox": true, "base_url": "http://127.0.0.1:4010/api/"}),
        ))
        .unwrap();
        assert_eq!(sim.base_url(), "http://127.0.0.1:4010/api");
        assert_eq!(sim.default_country(), "US");
        assert_eq!(sim.retry_policy(), RetryPolicy::default());
    }

    #[test]
    fn bad_fields_are_refused() {
        for (f, needle) in [
            (json!({}), "`token` is required"),
            (json!({"token": " "}), "`token` is required"),
            (
                json!({"token": "t", "base_url": "ftp://x/api"}),
                "must start with",
            ),
            (
                json!({"token": "t", "base_url": "https://u:p@x/api"}),
                "credentials",
            ),
            (
                json!({"token": "t", "base_url": "https://x/api?a=1"}),
                "query string",
            ),
            (
                json!({"token": "t", "default_country": "ZZ"}),
                "`default_country`",
            ),
            (json!({"token": "t", "max_retries": 11}), "`max_retries`"),
            (json!({"token": "t", "timeout_secs": 0}), "`timeout_secs`"),
        ] {
            let err = SonarConnection::from_fields(&fields(f.clone())).unwrap_err();
            assert!(err.contains(needle), "{f}: {err}");
        }
    }

    #[test]
    fn debug_redacts_the_token() {
        let c = SonarConnection::from_fields(&fields(json!({"token": "canary-6f1d"}))).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("canary-6f1d"), "{shown}");
        assert!(shown.contains("[redacted]"));
        assert_eq!(c.scrub("x canary-6f1d y"), "x [redacted] y");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = RetryPolicy {
            max_retries: 5,
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let d0 = p.delay(0, None);
            assert!(
                d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100),
                "{d0:?}"
            );
            let d2 = p.delay(2, None);
            assert!(
                d2 >= Duration::from_millis(200) && d2 <= Duration::from_millis(400),
                "{d2:?}"
            );
            let d9 = p.delay(9, None);
            assert!(
                d9 >= Duration::from_millis(500) && d9 <= Duration::from_millis(1000),
                "{d9:?}"
            );
        }
        assert_eq!(
            p.delay(0, Some(Duration::from_millis(300))),
            Duration::from_millis(300)
        );
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(60))),
            Duration::from_millis(1000)
        );
    }
}
