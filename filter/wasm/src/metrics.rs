//! Request metrics, as Envoy custom metrics (shown with the `wasmcustom.`
//! prefix at `/stats` and `/stats/prometheus`). They count the decision's
//! summary, which the audit event is built from, so metrics and the audit
//! trail can never disagree:
//!
//! - `meshward_requests_{allow,redact,block}` — exchanges by final action;
//! - `meshward_findings_<class>` — findings by class, request and response;
//! - `meshward_blocks_<guard>` — blocks by guard (`pii`, `pii_response`,
//!   `classification`, `injection`, `allow`);
//! - `meshward_filter_time_us` — histogram of time spent deciding;
//! - `meshward_vm_memory_bytes` — the VM's linear memory, which only grows:
//!   flat after warm-up means no leak (the soak in `make bench` reads it).
//!
//! Labels never carry values, request ids or anything else per request.

use std::cell::Cell;
use std::collections::BTreeMap;

use meshward_audit_proto::event::Action;
use meshward_engine::audit::DecisionSummary;
use meshward_engine::detect::EntityClass;

use crate::abi::{self, MetricType};

const GUARDS: [&str; 5] = ["pii", "pii_response", "classification", "injection", "allow"];

pub struct Metrics {
    requests: [Option<u32>; 3],
    findings: BTreeMap<&'static str, u32>,
    blocks: BTreeMap<&'static str, u32>,
    filter_time: Option<u32>,
    vm_memory: Option<u32>,
    /// The last value given to `vm_memory`, so the host is called only when
    /// the memory grew.
    vm_memory_reported: Cell<u64>,
}

impl Metrics {
    /// Defines every metric once per VM; a metric the host refuses is
    /// simply not recorded.
    pub fn define() -> Metrics {
        let counter = |name: &str| abi::define_metric(MetricType::Counter, name).ok();
        let requests = ["allow", "redact", "block"].map(|action| counter(&format!("meshward_requests_{action}")));
        let findings = EntityClass::ALL
            .iter()
            .filter_map(|c| {
                let id = counter(&format!("meshward_findings_{}", c.name().to_ascii_lowercase()))?;
                Some((c.name(), id))
            })
            .collect();
        let blocks = GUARDS.iter().filter_map(|g| Some((*g, counter(&format!("meshward_blocks_{g}"))?))).collect();
        let filter_time = abi::define_metric(MetricType::Histogram, "meshward_filter_time_us").ok();
        let vm_memory = abi::define_metric(MetricType::Gauge, "meshward_vm_memory_bytes").ok();
        Metrics { requests, findings, blocks, filter_time, vm_memory, vm_memory_reported: Cell::new(0) }
    }

    pub fn record(&self, event: &DecisionSummary, filter_time_us: u64) {
        let slot = match event.action {
            Action::Allow => 0,
            Action::Redact => 1,
            Action::Block => 2,
        };
        if let Some(Some(id)) = self.requests.get(slot) {
            abi::increment_metric(*id, 1);
        }
        for (class, n) in event.findings.iter().chain(&event.response_findings) {
            if let Some(id) = self.findings.get(class.name()) {
                abi::increment_metric(*id, i64::try_from(*n).unwrap_or(i64::MAX));
            }
        }
        for guard in event.guards.iter().filter(|g| g.verdict == Some("block")) {
            if let Some(id) = self.blocks.get(guard.name) {
                abi::increment_metric(*id, 1);
            }
        }
        if let Some(id) = self.filter_time {
            abi::record_metric(id, filter_time_us);
        }
        if let Some(id) = self.vm_memory {
            let bytes = linear_memory_bytes();
            if bytes != self.vm_memory_reported.get() {
                self.vm_memory_reported.set(bytes);
                abi::record_metric(id, bytes);
            }
        }
    }
}

/// The size of the VM's linear memory (memory 0), in bytes.
#[cfg(target_arch = "wasm32")]
fn linear_memory_bytes() -> u64 {
    const WASM_PAGE: u64 = 64 * 1024;
    core::arch::wasm32::memory_size(0) as u64 * WASM_PAGE
}

/// Native builds (tests, clippy) have no linear memory to report.
#[cfg(not(target_arch = "wasm32"))]
fn linear_memory_bytes() -> u64 {
    0
}
