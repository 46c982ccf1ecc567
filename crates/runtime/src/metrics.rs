//! Prometheus metrics (`GET /metrics`), kept in a few atomics and small maps; rendered in the
//! text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Bucket bounds of the module latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The runtime's metrics.
#[derive(Default)]
pub struct Metrics {
    /// Webhooks accepted and queued.
    pub webhooks_received: AtomicU64,
    /// Duplicate deliveries acknowledged without queueing.
    pub webhooks_duplicate: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Jobs waiting or running.
    pub queue_depth: AtomicU64,
    executions: Mutex<BTreeMap<(String, &'static str), u64>>,
    operations: Mutex<BTreeMap<String, u64>>,
    modules: Mutex<BTreeMap<String, Histogram>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a metrics lock leaves plain counters behind; keep counting.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Counts a refused webhook by reason.
    pub fn refused(&self, reason: &'static str) {
        *lock(&self.refused).entry(reason).or_default() += 1;
    }

    /// Counts a finished execution.
    pub fn execution(&self, scenario: &str, status: &'static str, operations: u64) {
        *lock(&self.executions)
            .entry((scenario.to_owned(), status))
            .or_default() += 1;
        *lock(&self.operations)
            .entry(scenario.to_owned())
            .or_default() += operations;
    }

    /// Records one module operation's duration.
    pub fn module_latency(&self, module: &str, seconds: f64) {
        let mut map = lock(&self.modules);
        let h = map.entry(module.to_owned()).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP weft_webhooks_received_total Webhooks accepted and durably queued.\n# TYPE weft_webhooks_received_total counter");
        let _ = writeln!(
            out,
            "weft_webhooks_received_total {}",
            self.webhooks_received.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP weft_webhooks_duplicate_total Redelivered webhooks acknowledged without queueing.\n# TYPE weft_webhooks_duplicate_total counter");
        let _ = writeln!(
            out,
            "weft_webhooks_duplicate_total {}",
            self.webhooks_duplicate.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP weft_webhooks_refused_total Webhooks refused, by reason.\n# TYPE weft_webhooks_refused_total counter");
        for (reason, n) in lock(&self.refused).iter() {
            let _ = writeln!(
                out,
                "weft_webhooks_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP weft_queue_depth Jobs waiting or running.\n# TYPE weft_queue_depth gauge"
        );
        let _ = writeln!(
            out,
            "weft_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP weft_executions_total Finished executions by scenario and status.\n# TYPE weft_executions_total counter");
        for ((scenario, status), n) in lock(&self.executions).iter() {
            let _ = writeln!(
                out,
                "weft_executions_total{{scenario=\"{}\",status=\"{status}\"}} {n}",
                escape(scenario)
            );
        }
        let _ = writeln!(out, "# HELP weft_operations_total Operations run, by scenario.\n# TYPE weft_operations_total counter");
        for (scenario, n) in lock(&self.operations).iter() {
            let _ = writeln!(
                out,
                "weft_operations_total{{scenario=\"{}\"}} {n}",
                escape(scenario)
            );
        }
        let _ = writeln!(out, "# HELP weft_module_duration_seconds Time of one module operation.\n# TYPE weft_module_duration_seconds histogram");
        for (module, h) in lock(&self.modules).iter() {
            let m = escape(module);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "weft_module_duration_seconds_bucket{{module=\"{m}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "weft_module_duration_seconds_bucket{{module=\"{m}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "weft_module_duration_seconds_sum{{module=\"{m}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "weft_module_duration_seconds_count{{module=\"{m}\"}} {}",
                h.count
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.webhooks_received.fetch_add(3, Ordering::Relaxed);
        m.refused("too_large");
        m.execution("s\"1", "success", 4);
        m.module_latency("flow.iterator", 0.002);
        let text = m.render();
        assert!(text.contains("weft_webhooks_received_total 3"));
        assert!(text.contains("weft_webhooks_refused_total{reason=\"too_large\"} 1"));
        assert!(text.contains("weft_executions_total{scenario=\"s\\\"1\",status=\"success\"} 1"));
        assert!(text.contains("weft_operations_total{scenario=\"s\\\"1\"} 4"));
        assert!(text.contains(
            "weft_module_duration_seconds_bucket{module=\"flow.iterator\",le=\"0.0025\"} 1"
        ));
        assert!(text.contains(
            "weft_module_duration_seconds_bucket{module=\"flow.iterator\",le=\"0.001\"} 0"
        ));
    }
}
