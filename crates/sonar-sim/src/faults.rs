//! Fault injection for the `/api` routes, configured through `POST /_sim/faults`.
//!
//! Modes, combinable: a rate limit (`rate_limit_per_s`: requests beyond it within a one-second
//! window get 429 `Rate Limit Exceeded` with `Retry-After`), added latency (`latency_ms`) and
//! random failures (`error_rate` in 0..=1 answered with `error_status`, default 500,
//! `Request Timed Out`). With no fault set the middleware costs one atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;
use crate::Shared;

/// The window the rate limit counts requests in.
const WINDOW: Duration = Duration::from_secs(1);

/// The active fault settings; all zero / `None` means no faults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct FaultConfig {
    pub(crate) latency_ms: u64,
    pub(crate) error_rate: f64,
    pub(crate) error_status: u16,
    pub(crate) rate_limit_per_s: Option<u32>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            error_status: 500,
            rate_limit_per_s: None,
        }
    }
}

impl FaultConfig {
    fn is_active(&self) -> bool {
        self.latency_ms > 0 || self.error_rate > 0.0 || self.rate_limit_per_s.is_some()
    }
}

#[derive(Debug, Default)]
struct Inner {
    config: FaultConfig,
    window_start: Option<Instant>,
    window_count: u32,
}

/// The fault settings plus the rate limiter's window.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    active: AtomicBool,
    inner: Mutex<Inner>,
}

/// What to do with one request.
#[derive(Debug, PartialEq)]
enum Verdict {
    RateLimited {
        retry_after_s: u64,
    },
    Serve {
        latency: Duration,
        fail_with: Option<StatusCode>,
    },
}

impl Faults {
    /// Replaces the settings (and restarts the rate-limit window).
    pub(crate) fn set(&self, config: FaultConfig) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.active.store(config.is_active(), Ordering::Release);
        *inner = Inner {
            config,
            ..Inner::default()
        };
    }

    pub(crate) fn config(&self) -> FaultConfig {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.config.clone()
    }

    fn judge(&self, now: Instant) -> Verdict {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(limit) = inner.config.rate_limit_per_s {
            let start = match inner.window_start {
                Some(start) if now.duration_since(start) < WINDOW => start,
                _ => {
                    inner.window_start = Some(now);
                    inner.window_count = 0;
                    now
                }
            };
            if inner.window_count >= limit {
                let left = WINDOW.saturating_sub(now.duration_since(start));
                let retry_after_s = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                return Verdict::RateLimited {
                    retry_after_s: retry_after_s.max(1),
                };
            }
            inner.window_count += 1;
        }
        let config = &inner.config;
        let fail_with = (config.error_rate > 0.0 && rand::random::<f64>() < config.error_rate)
            .then(|| {
                StatusCode::from_u16(config.error_status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            });
        Verdict::Serve {
            latency: Duration::from_millis(config.latency_ms),
            fail_with,
        }
    }
}

/// Middleware on `/api`: applies the configured faults before the handler runs.
pub(crate) async fn inject(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    if !shared.faults.active.load(Ordering::Acquire) {
        return next.run(req).await;
    }
    match shared.faults.judge(Instant::now()) {
        Verdict::RateLimited { retry_after_s } => {
            ApiError::RateLimited { retry_after_s }.into_response()
        }
        Verdict::Serve { latency, fail_with } => {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            match fail_with {
                Some(status) => ApiError::InjectedFailure(status).into_response(),
                None => next.run(req).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_counts_per_window() {
        let faults = Faults::default();
        faults.set(FaultConfig {
            rate_limit_per_s: Some(2),
            ..FaultConfig::default()
        });
        let start = Instant::now();
        let pass = Verdict::Serve {
            latency: Duration::ZERO,
            fail_with: None,
        };
        assert_eq!(faults.judge(start), pass);
        assert_eq!(faults.judge(start + Duration::from_millis(10)), pass);
        assert_eq!(
            faults.judge(start + Duration::from_millis(20)),
            Verdict::RateLimited { retry_after_s: 1 }
        );
        assert_eq!(faults.judge(start + Duration::from_millis(1001)), pass);
    }

    #[test]
    fn clearing_turns_everything_off() {
        let faults = Faults::default();
        faults.set(FaultConfig {
            error_rate: 1.0,
            error_status: 503,
            ..FaultConfig::default()
        });
        assert!(faults.active.load(Ordering::Acquire));
        assert_eq!(
            faults.judge(Instant::now()),
            Verdict::Serve {
                latency: Duration::ZERO,
                fail_with: Some(StatusCode::SERVICE_UNAVAILABLE)
            }
        );
        faults.set(FaultConfig::default());
        assert!(!faults.active.load(Ordering::Acquire));
    }

    mod http {
        #![allow(clippy::unwrap_used)]

        use std::time::{Duration, Instant};

        use axum::http::StatusCode;
        use serde_json::json;

        use crate::test_support::*;

        const MESSAGE: &str = "/api/v1/messages";

        fn message() -> serde_json::Value {
            json!({"to": "3105550147", "text": "hi"})
        }

        #[tokio::test]
        async fn latency_is_added() {
            let router = sim().router();
            let (status, body) =
                post_json(&router, "/_sim/faults", &json!({"latency_ms": 120})).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["latency_ms"], 120);
            let started = Instant::now();
            let (status, _) = post_json(&router, MESSAGE, &message()).await;
            assert_eq!(status, StatusCode::ACCEPTED);
            assert!(started.elapsed() >= Duration::from_millis(120));
            // The control surface is never slowed down.
            let started = Instant::now();
            get(&router, "/_sim/state").await;
            assert!(started.elapsed() < Duration::from_millis(120));
        }

        #[tokio::test]
        async fn error_rate_one_always_fails_with_the_status() {
            let router = sim().router();
            post_json(
                &router,
                "/_sim/faults",
                &json!({"error_rate": 1.0, "error_status": 503}),
            )
            .await;
            for _ in 0..5 {
                let (status, body) = post_json(&router, MESSAGE, &message()).await;
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                assert_eq!(body, json!({"error": "Request Timed Out"}));
            }
            post_form(&router, "/_sim/faults", "error_rate=1").await;
            let (status, body) = get(&router, "/api/v1/webhooks").await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "500 by default");
            assert_eq!(body, json!({"error": "Request Timed Out"}));
            let (status, _) = get(&router, "/_sim/state").await;
            assert_eq!(status, StatusCode::OK, "faults apply to /api only");
        }

        #[tokio::test]
        async fn rate_limit_answers_429_with_retry_after() {
            let router = sim().router();
            post_json(&router, "/_sim/faults", &json!({"rate_limit_per_s": 2})).await;
            for _ in 0..2 {
                let (status, _) = post_json(&router, MESSAGE, &message()).await;
                assert_eq!(status, StatusCode::ACCEPTED);
            }
            let bytes = serde_json::to_vec(&message()).unwrap();
            let (status, headers, body) = request_full(
                &router,
                "POST",
                MESSAGE,
                &[TOKEN],
                Some(("application/json", bytes)),
            )
            .await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(body, fixture("error_rate_limited.json"));
            let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert_eq!(retry_after, 1, "the window is one second");
        }

        #[tokio::test]
        async fn empty_body_clears_every_fault() {
            let sim = sim();
            let router = sim.router();
            post_json(
                &router,
                "/_sim/faults",
                &json!({"latency_ms": 5, "error_rate": 1, "rate_limit_per_s": 1, "duplicate_check": true}),
            )
            .await;
            let (status, _) = post_json(&router, MESSAGE, &message()).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            let (status, body) = post_json(&router, "/_sim/faults", &json!({})).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                body,
                json!({"latency_ms": 0, "error_rate": 0.0, "error_status": 500,
                       "rate_limit_per_s": null, "duplicate_check": false})
            );
            for _ in 0..3 {
                let (status, _) = post_json(&router, MESSAGE, &message()).await;
                assert_eq!(status, StatusCode::ACCEPTED);
            }
            let (_, current) = get(&router, "/_sim/faults").await;
            assert_eq!(current, body);
        }

        #[tokio::test]
        async fn bad_settings_are_refused() {
            let router = sim().router();
            for (body, error) in [
                (json!({"error_rate": 1.5}), "error_rate is invalid"),
                (json!({"error_status": 42}), "error_status is invalid"),
                (json!({"latency_ms": "soon"}), "latency_ms is invalid"),
            ] {
                let (status, answer) = post_json(&router, "/_sim/faults", &body).await;
                assert_eq!(status, StatusCode::BAD_REQUEST);
                assert_eq!(answer, json!({ "error": error }));
            }
        }
    }
}
