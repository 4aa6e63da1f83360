//! Sequence-gap detection per filter instance.
//!
//! Every decision event carries `instance_id` and a per-instance `seq`
//! starting at 1. The sink records, per instance, the highest `seq` seen and
//! the ranges below it not (yet) seen. Late arrivals (retries) fill gaps;
//! repeats are counted as duplicates. The state is rebuilt from the log on
//! start, so it survives restarts.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

#[derive(Debug, Default, Clone)]
pub struct InstanceSeq {
    pub max_seq: u64,
    pub received: u64,
    pub duplicates: u64,
    /// Missing ranges, start → end (inclusive).
    missing: BTreeMap<u64, u64>,
    missing_count: u64,
}

impl InstanceSeq {
    fn observe(&mut self, seq: u64) {
        self.received += 1;
        if seq == 0 {
            return;
        }
        if seq > self.max_seq {
            if seq > self.max_seq + 1 {
                self.missing.insert(self.max_seq + 1, seq - 1);
                self.missing_count += seq - 1 - self.max_seq;
            }
            self.max_seq = seq;
            return;
        }
        // seq ≤ max: fills a gap or repeats.
        let Some((&start, &end)) = self.missing.range(..=seq).next_back() else {
            self.duplicates += 1;
            return;
        };
        if seq > end {
            self.duplicates += 1;
            return;
        }
        self.missing.remove(&start);
        if start < seq {
            self.missing.insert(start, seq - 1);
        }
        if seq < end {
            self.missing.insert(seq + 1, end);
        }
        self.missing_count -= 1;
    }
}

#[derive(Debug, Default)]
pub struct GapTracker {
    instances: HashMap<String, InstanceSeq>,
    total_missing: u64,
}

#[derive(Debug, Serialize)]
pub struct InstanceReport {
    pub instance_id: String,
    pub max_seq: u64,
    pub received: u64,
    pub duplicates: u64,
    pub missing_count: u64,
    /// Inclusive ranges `[first, last]` of sequence numbers never received
    /// (at most 1000 listed; `missing_count` is exact).
    pub missing: Vec<[u64; 2]>,
}

impl GapTracker {
    pub fn observe(&mut self, instance_id: &str, seq: u64) {
        let inst = match self.instances.get_mut(instance_id) {
            Some(i) => i,
            None => self.instances.entry(instance_id.to_string()).or_default(),
        };
        let before = inst.missing_count;
        inst.observe(seq);
        self.total_missing = self.total_missing + inst.missing_count - before;
    }

    pub fn total_missing(&self) -> u64 {
        self.total_missing
    }

    pub fn instances(&self) -> usize {
        self.instances.len()
    }

    /// Reports instances (all, or only those with gaps), sorted by id.
    pub fn report(&self, only_gaps: bool, instance: Option<&str>) -> Vec<InstanceReport> {
        let mut out: Vec<InstanceReport> = self
            .instances
            .iter()
            .filter(|(id, s)| (!only_gaps || s.missing_count > 0) && instance.is_none_or(|want| want == id.as_str()))
            .map(|(id, s)| InstanceReport {
                instance_id: id.clone(),
                max_seq: s.max_seq,
                received: s.received,
                duplicates: s.duplicates,
                missing_count: s.missing_count,
                missing: s.missing.iter().take(1000).map(|(&a, &b)| [a, b]).collect(),
            })
            .collect();
        out.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_fills_and_counts_gaps() {
        let mut g = GapTracker::default();
        for s in [1, 2, 3, 7, 8] {
            g.observe("a", s);
        }
        g.observe("b", 1);
        assert_eq!(g.total_missing(), 3);
        let r = g.report(true, None);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].missing, vec![[4, 6]]);
        g.observe("a", 5); // late arrival splits the gap
        assert_eq!(g.report(true, Some("a"))[0].missing, vec![[4, 4], [6, 6]]);
        g.observe("a", 5); // repeat
        g.observe("a", 4);
        g.observe("a", 6);
        assert_eq!(g.total_missing(), 0);
        assert!(g.report(true, None).is_empty());
        let a = &g.report(false, Some("a"))[0];
        assert_eq!((a.max_seq, a.received, a.duplicates), (8, 9, 1));
    }

    #[test]
    fn first_event_after_one_means_earlier_ones_are_missing() {
        let mut g = GapTracker::default();
        g.observe("x", 4);
        assert_eq!(g.report(true, None)[0].missing, vec![[1, 3]]);
    }
}
