//! What one measured window of `big_fleet` found, printed for people and as
//! one line of JSON.

use std::collections::BTreeMap;

use crate::load::{Rates, percentile};
use crate::options::Options;
use crate::world::{CALLS, FAILED, FLAPS, REFUSED};

/// The measured window.
#[derive(Debug)]
pub(crate) struct Measured {
    pub(crate) o: Options,
    pub(crate) secs: f64,
    /// Load average before and after the window.
    pub(crate) loads: (String, String),
    /// Calls, failed, refused, flaps in the window.
    pub(crate) counted: [u64; 4],
    pub(crate) per_node: Vec<Rates>,
    /// `used_memory` of every server summed, before the pods were built.
    pub(crate) idle_memory: f64,
    /// `PUBSUB NUMSUB` of the events and counts channels.
    pub(crate) subscribers: (u64, u64),
    /// Ms from `at_ms` to each receipt, sorted.
    pub(crate) delays: Vec<f64>,
    /// Ms from `at_ms` to the last pod's receipt, for each transition
    /// every pod heard, sorted.
    pub(crate) last: Vec<f64>,
    /// Distinct transitions heard in the window.
    pub(crate) transitions: usize,
    /// This process's CPU, share of one core.
    pub(crate) client: f64,
    /// Commands the pods sent in the window, by name (`INFO commandstats`
    /// deltas without the commands that ran inside the scripts).
    pub(crate) sent: BTreeMap<String, u64>,
    /// Store errors and entries into degraded mode in the window, summed
    /// over the pods; pods degraded at its end.
    pub(crate) store: [u64; 3],
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Measured {
    fn sum(&self, f: fn(&Rates) -> f64) -> f64 {
        self.per_node.iter().map(f).sum()
    }

    fn rate(&self, which: usize) -> f64 {
        self.counted[which] as f64 / self.secs
    }

    /// Messages Redis delivered a second: every publish reaches every
    /// subscriber of its channel, and every pod subscribes to both.
    fn deliveries(&self) -> f64 {
        self.sum(|r| r.publish) * self.subscribers.0.max(self.subscribers.1) as f64
    }

    pub(crate) fn print(&self) {
        let o = &self.o;
        println!(
            "{} pods x {} calls/s over {} agents (spread {} each, pool_size {}, max_staleness {} ms, \
             flush_interval {} ms), {} flaps/s of {} ms; {:.1} s window",
            o.pods,
            o.calls_per_sec,
            o.agents,
            o.spread,
            o.pool_size,
            o.staleness_ms,
            o.flush_ms,
            o.flaps_per_sec,
            o.dead_ms,
            self.secs
        );
        println!(
            "load average before {}, after {}",
            self.loads.0, self.loads.1
        );
        println!(
            "calls {:.0}/s, failed {:.0}/s, refused {:.0}/s, flaps {:.1}/s",
            self.rate(CALLS),
            self.rate(FAILED),
            self.rate(REFUSED),
            self.rate(FLAPS)
        );
        println!(
            "store errors (timeouts, lost connections) {}, entries into degraded mode {}, \
             pods degraded at the end {} (store timeout {} ms)",
            self.store[0], self.store[1], self.store[2], o.timeout_ms
        );
        for (i, r) in self.per_node.iter().enumerate() {
            println!(
                "server {i}: CPU {:.1}% of a core, {:.0} commands/s, {:.1} PUBLISH/s, {:.2} MB/s out, \
                 used_memory {:.1} MB, {} clients",
                r.cpu * 100.0,
                r.commands,
                r.publish,
                r.out_bytes / 1e6,
                r.memory / 1e6,
                r.clients
            );
        }
        let sent: Vec<String> = self.sent.iter().map(|(n, c)| format!("{n} {c}")).collect();
        println!(
            "fleet: {:.0} commands/s sent ({}) = {:.2} per pod per second; {:.0} commands/s \
             processed, those inside scripts included",
            self.client_commands(),
            sent.join(", "),
            self.client_commands() / o.pods as f64,
            self.sum(|r| r.commands)
        );
        println!(
            "used_memory {:.1} MB, of which clients' buffers {:.1} MB ({:.1} MB before the pods)",
            self.sum(|r| r.memory) / 1e6,
            self.sum(|r| r.client_memory) / 1e6,
            self.idle_memory / 1e6
        );
        println!(
            "pub/sub: {:.1} PUBLISH/s x {} subscribers (events; counts {}) = {:.0} messages \
             delivered/s; {:.1} transitions/s heard",
            self.sum(|r| r.publish),
            self.subscribers.0,
            self.subscribers.1,
            self.deliveries(),
            self.transitions as f64 / self.secs
        );
        let d = &self.delays;
        println!(
            "propagation, at_ms to each pod's subscribe(): {} receipts, p50 {:.2} ms, p99 {:.2} ms, \
             max {:.2} ms",
            d.len(),
            percentile(d, 50.0),
            percentile(d, 99.0),
            d.last().copied().unwrap_or(f64::NAN)
        );
        println!(
            "to the last of the {} pods: {} transitions heard by all ({} in all), p50 {:.2} ms, \
             p99 {:.2} ms",
            o.pods,
            self.last.len(),
            self.transitions,
            percentile(&self.last, 50.0),
            percentile(&self.last, 99.0)
        );
        println!(
            "this process (the {} pods): {:.1}% of a core",
            o.pods,
            self.client * 100.0
        );
        println!(
            "(at_ms is Redis TIME rounded down to the ms: propagation overstates by 0 to 1 ms)"
        );
    }

    /// Commands the pods sent a second.
    fn client_commands(&self) -> f64 {
        self.sent.values().sum::<u64>() as f64 / self.secs
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        let o = &self.o;
        serde_json::json!({
            "pods": o.pods,
            "agents": o.agents,
            "spread": o.spread,
            "calls_per_sec_per_pod": o.calls_per_sec,
            "flaps_per_sec": o.flaps_per_sec,
            "dead_ms": o.dead_ms,
            "pool_size": o.pool_size,
            "timeout_ms": o.timeout_ms,
            "max_staleness_ms": o.staleness_ms,
            "flush_interval_ms": o.flush_ms,
            "store_errors": self.store[0],
            "degraded_entered": self.store[1],
            "degraded_at_end": self.store[2],
            "window_secs": r3(self.secs),
            "load_before": self.loads.0,
            "load_after": self.loads.1,
            "calls_per_sec": r3(self.rate(CALLS)),
            "servers": self.per_node.iter().map(Rates::json).collect::<Vec<_>>(),
            "commands_sent_per_sec": r3(self.client_commands()),
            "commands_sent_per_pod_per_sec": r3(self.client_commands() / o.pods as f64),
            "commands_sent_by_name": self.sent,
            "commands_processed_per_sec": r3(self.sum(|r| r.commands)),
            "used_memory_bytes": self.sum(|r| r.memory),
            "used_memory_before_pods_bytes": self.idle_memory,
            "connected_clients": self.sum(|r| r.clients),
            "publish_per_sec": r3(self.sum(|r| r.publish)),
            "subscribers": self.subscribers.0,
            "deliveries_per_sec": r3(self.deliveries()),
            "transitions_per_sec": r3(self.transitions as f64 / self.secs),
            "propagation_p50_ms": r3(percentile(&self.delays, 50.0)),
            "propagation_p99_ms": r3(percentile(&self.delays, 99.0)),
            "propagation_samples": self.delays.len(),
            "all_pods_p50_ms": r3(percentile(&self.last, 50.0)),
            "all_pods_p99_ms": r3(percentile(&self.last, 99.0)),
            "all_pods_transitions": self.last.len(),
            "client_cpu_share_of_one_core": r3(self.client),
        })
    }
}
