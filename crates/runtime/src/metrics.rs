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

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Seconds over which `weft_claims_per_second` is averaged.
const RATE_WINDOW: u64 = 10;

/// Jobs claimed per wall-clock second, for the last [`RATE_WINDOW`] seconds.
#[derive(Default)]
struct RateWindow {
    slots: [(u64, u64); RATE_WINDOW as usize],
}

fn epoch_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl RateWindow {
    fn add(&mut self, now: u64, n: u64) {
        let slot = &mut self.slots[(now % RATE_WINDOW) as usize];
        if slot.0 != now {
            *slot = (now, 0);
        }
        slot.1 += n;
    }

    fn per_second(&self, now: u64) -> f64 {
        let total: u64 = self
            .slots
            .iter()
            .filter(|(sec, _)| *sec <= now && now - *sec < RATE_WINDOW)
            .map(|(_, n)| n)
            .sum();
        total as f64 / RATE_WINDOW as f64
    }
}

/// The runtime's metrics.
#[derive(Default)]
pub struct Metrics {
    /// Webhooks accepted and queued.
    pub webhooks_received: AtomicU64,
    /// Duplicate deliveries acknowledged without queueing.
    pub webhooks_duplicate: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Jobs waiting or running (in the whole cluster when the store is shared).
    pub queue_depth: AtomicU64,
    /// Jobs this node holds under a lease (claimed and running).
    pub leases_held: AtomicU64,
    /// Jobs this node claimed.
    pub jobs_claimed: AtomicU64,
    /// Jobs this node's intake queued already claimed and ran without a claim.
    pub jobs_handed_off: AtomicU64,
    claim_latency: Mutex<Histogram>,
    claim_rate: Mutex<RateWindow>,
    /// Finished executions by scenario, then by status.
    executions: Mutex<BTreeMap<String, BTreeMap<&'static str, u64>>>,
    operations: Mutex<BTreeMap<String, u64>>,
    modules: Mutex<BTreeMap<String, Histogram>>,
}

/// The entry of `key`, made on first use (its key is copied only then: these are updated for
/// every execution).
fn counter<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
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
        *counter(&mut lock(&self.executions), scenario)
            .entry(status)
            .or_default() += 1;
        *counter(&mut lock(&self.operations), scenario) += operations;
    }

    /// Records one module operation's duration.
    pub fn module_latency(&self, module: &str, seconds: f64) {
        counter(&mut lock(&self.modules), module).observe(seconds);
    }

    /// Records one successful claim: how many jobs it took and how long it took.
    pub fn claimed(&self, jobs: usize, seconds: f64) {
        let jobs = jobs as u64;
        self.jobs_claimed.fetch_add(jobs, Ordering::Relaxed);
        lock(&self.claim_latency).observe(seconds);
        if jobs > 0 {
            lock(&self.claim_rate).add(epoch_secs(), jobs);
        }
    }

    /// Counts one more job in the queue unless it holds `max` already; whether it did.
    pub fn enqueuing(&self, max: u64) -> bool {
        self.queue_depth
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                (d < max).then_some(d + 1)
            })
            .is_ok()
    }

    /// Lowers the queue depth by one, stopping at zero (another node may have queued the job).
    pub fn dequeued(&self) {
        let _ = self
            .queue_depth
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some(d.saturating_sub(1))
            });
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
        let _ = writeln!(
            out,
            "# HELP weft_leases_held Jobs this node holds under a lease.\n# TYPE weft_leases_held gauge"
        );
        let _ = writeln!(
            out,
            "weft_leases_held {}",
            self.leases_held.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP weft_jobs_handed_off_total Jobs this node's intake queued already claimed, run without a claim.\n# TYPE weft_jobs_handed_off_total counter");
        let _ = writeln!(
            out,
            "weft_jobs_handed_off_total {}",
            self.jobs_handed_off.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP weft_jobs_claimed_total Jobs this node claimed from the queue.\n# TYPE weft_jobs_claimed_total counter");
        let _ = writeln!(
            out,
            "weft_jobs_claimed_total {}",
            self.jobs_claimed.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP weft_claims_per_second Jobs this node claimed per second, over the last {RATE_WINDOW} seconds.\n# TYPE weft_claims_per_second gauge");
        let _ = writeln!(
            out,
            "weft_claims_per_second {}",
            lock(&self.claim_rate).per_second(epoch_secs())
        );
        let _ = writeln!(out, "# HELP weft_claim_duration_seconds Time of one claim from the queue.\n# TYPE weft_claim_duration_seconds histogram");
        lock(&self.claim_latency).render(&mut out, "weft_claim_duration_seconds", "");
        let _ = writeln!(out, "# HELP weft_executions_total Finished executions by scenario and status.\n# TYPE weft_executions_total counter");
        let executions = lock(&self.executions);
        let by_status = executions.iter().flat_map(|(scenario, statuses)| {
            statuses
                .iter()
                .map(move |(status, n)| (scenario, status, n))
        });
        for (scenario, status, n) in by_status {
            let _ = writeln!(
                out,
                "weft_executions_total{{scenario=\"{}\",status=\"{status}\"}} {n}",
                escape(scenario)
            );
        }
        drop(executions);
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
            let labels = format!("module=\"{}\"", escape(module));
            h.render(&mut out, "weft_module_duration_seconds", &labels);
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
        assert!(text.contains("weft_module_duration_seconds_count{module=\"flow.iterator\"} 1"));
    }

    #[test]
    fn renders_claims_and_leases() {
        let m = Metrics::default();
        m.claimed(20, 0.002);
        m.claimed(0, 0.0004);
        m.leases_held.store(3, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("weft_leases_held 3"));
        assert!(text.contains("weft_jobs_claimed_total 20"));
        assert!(text.contains("weft_claims_per_second 2"), "{text}");
        assert!(text.contains("weft_claim_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("weft_claim_duration_seconds_count 2"));
    }

    #[test]
    fn queue_depth_stops_at_zero() {
        let m = Metrics::default();
        m.dequeued();
        assert_eq!(m.queue_depth.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn enqueuing_counts_up_to_the_bound() {
        let m = Metrics::default();
        assert!(m.enqueuing(2));
        assert!(m.enqueuing(2));
        assert!(!m.enqueuing(2));
        assert_eq!(m.queue_depth.load(Ordering::Relaxed), 2);
        m.dequeued();
        assert!(m.enqueuing(2));
    }
}
