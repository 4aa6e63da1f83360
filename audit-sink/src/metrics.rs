//! Prometheus text exposition, hand-rolled over atomics (no label values
//! derived from input: reasons are a fixed set).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why an ingest request was rejected (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    MissingHeaders,
    BadSignature,
    StaleTimestamp,
    Duplicate,
    InvalidBody,
    TooLarge,
    Unavailable,
}

impl Reject {
    pub const ALL: [Reject; 7] = [
        Reject::MissingHeaders,
        Reject::BadSignature,
        Reject::StaleTimestamp,
        Reject::Duplicate,
        Reject::InvalidBody,
        Reject::TooLarge,
        Reject::Unavailable,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reject::MissingHeaders => "missing_headers",
            Reject::BadSignature => "bad_signature",
            Reject::StaleTimestamp => "stale_timestamp",
            Reject::Duplicate => "duplicate",
            Reject::InvalidBody => "invalid_body",
            Reject::TooLarge => "too_large",
            Reject::Unavailable => "unavailable",
        }
    }
}

/// fsync latency histogram buckets, seconds.
const FSYNC_BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

#[derive(Debug, Default)]
pub struct Metrics {
    pub events_ingested: AtomicU64,
    pub requests_accepted: AtomicU64,
    rejected: [AtomicU64; 7],
    pub batches: AtomicU64,
    pub write_errors: AtomicU64,
    fsync_buckets: [AtomicU64; 12],
    fsync_count: AtomicU64,
    fsync_sum_ns: AtomicU64,
    pub checkpoints_signed: AtomicU64,
    pub checkpoint_failures: AtomicU64,
    pub auth_failures: AtomicU64,
}

/// Values read from the store when rendering.
pub struct Gauges {
    pub tree_size: u64,
    pub checkpoint_size: u64,
    pub checkpoint_age_seconds: f64,
    pub sequence_gaps_missing: u64,
    pub filter_instances: u64,
}

impl Metrics {
    pub fn reject(&self, r: Reject) {
        if let Some(idx) = Reject::ALL.iter().position(|x| *x == r) {
            self.rejected[idx].fetch_add(1, Relaxed);
        }
    }

    pub fn rejected(&self, r: Reject) -> u64 {
        Reject::ALL.iter().position(|x| *x == r).map_or(0, |i| self.rejected[i].load(Relaxed))
    }

    pub fn observe_fsync(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in FSYNC_BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.fsync_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.fsync_count.fetch_add(1, Relaxed);
        self.fsync_sum_ns.fetch_add(d.as_nanos().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    pub fn render(&self, g: &Gauges) -> String {
        let mut s = String::with_capacity(4096);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "meshward_sink_events_ingested_total",
            "Events durably appended to the log.",
            self.events_ingested.load(Relaxed),
        );
        counter(
            "meshward_sink_requests_accepted_total",
            "Ingest requests acknowledged after fdatasync.",
            self.requests_accepted.load(Relaxed),
        );
        counter("meshward_sink_batches_total", "Group-commit batches written.", self.batches.load(Relaxed));
        counter(
            "meshward_sink_write_errors_total",
            "Failed log writes or fsyncs (the log then stops accepting writes).",
            self.write_errors.load(Relaxed),
        );
        counter("meshward_sink_checkpoints_signed_total", "Checkpoints signed.", self.checkpoints_signed.load(Relaxed));
        counter(
            "meshward_sink_checkpoint_failures_total",
            "Checkpoint signing attempts refused or failed.",
            self.checkpoint_failures.load(Relaxed),
        );
        counter(
            "meshward_sink_read_auth_failures_total",
            "Read requests refused for a missing, unknown or out-of-scope reader key.",
            self.auth_failures.load(Relaxed),
        );
        let _ = writeln!(s, "# HELP meshward_sink_requests_rejected_total Ingest requests rejected, by reason.");
        let _ = writeln!(s, "# TYPE meshward_sink_requests_rejected_total counter");
        for (i, r) in Reject::ALL.iter().enumerate() {
            let _ = writeln!(
                s,
                "meshward_sink_requests_rejected_total{{reason=\"{}\"}} {}",
                r.label(),
                self.rejected[i].load(Relaxed)
            );
        }
        let mut gauge = |name: &str, help: &str, v: String| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge("meshward_sink_tree_size", "Entries in the log (all synced).", g.tree_size.to_string());
        gauge(
            "meshward_sink_checkpoint_size",
            "Tree size of the latest signed checkpoint.",
            g.checkpoint_size.to_string(),
        );
        gauge(
            "meshward_sink_last_checkpoint_age_seconds",
            "Seconds since the latest checkpoint was signed.",
            format!("{:.3}", g.checkpoint_age_seconds),
        );
        gauge(
            "meshward_sink_sequence_gaps_missing",
            "Sequence numbers missing across all filter instances.",
            g.sequence_gaps_missing.to_string(),
        );
        gauge("meshward_sink_filter_instances", "Filter instances seen.", g.filter_instances.to_string());
        let _ =
            writeln!(s, "# HELP meshward_sink_fsync_seconds time to make a group commit durable (its two fdatasyncs).");
        let _ = writeln!(s, "# TYPE meshward_sink_fsync_seconds histogram");
        for (i, b) in FSYNC_BUCKETS.iter().enumerate() {
            let _ =
                writeln!(s, "meshward_sink_fsync_seconds_bucket{{le=\"{b}\"}} {}", self.fsync_buckets[i].load(Relaxed));
        }
        let count = self.fsync_count.load(Relaxed);
        let _ = writeln!(s, "meshward_sink_fsync_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(s, "meshward_sink_fsync_seconds_sum {:.9}", self.fsync_sum_ns.load(Relaxed) as f64 / 1e9);
        let _ = writeln!(s, "meshward_sink_fsync_seconds_count {count}");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_by_reason_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.reject(Reject::Duplicate);
        m.reject(Reject::Duplicate);
        m.observe_fsync(std::time::Duration::from_micros(300));
        let text = m.render(&Gauges {
            tree_size: 5,
            checkpoint_size: 4,
            checkpoint_age_seconds: 1.5,
            sequence_gaps_missing: 2,
            filter_instances: 1,
        });
        assert!(text.contains("meshward_sink_requests_rejected_total{reason=\"duplicate\"} 2"), "{text}");
        assert!(text.contains("meshward_sink_requests_rejected_total{reason=\"bad_signature\"} 0"));
        assert!(text.contains("meshward_sink_fsync_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("meshward_sink_fsync_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("meshward_sink_fsync_seconds_bucket{le=\"+Inf\"} 1"));
        assert!(text.contains("meshward_sink_tree_size 5"));
        assert!(text.contains("meshward_sink_last_checkpoint_age_seconds 1.500"));
    }
}
