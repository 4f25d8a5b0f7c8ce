//! What a network run reports: per node instance its ticks, facts, messages, seals and
//! timeline ([`NodeReport`]), for the run as a whole ([`NetworkResult`]), and the figures
//! read from them (records processed over time, answer latencies). Plain data, shared by
//! the in-process network, the nodes of a network across processes and their wire frames.

use crate::run::RunResult;
use crate::value::Value;
use std::collections::BTreeMap;

/// What one node instance did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NodeReport {
    pub name: String,
    pub group: String,
    pub instance: u32,
    /// Ticks, facts in (feeds and messages), outputs per tick, evaluation errors.
    pub result: RunResult,
    pub messages_in: u64,
    pub messages_out: u64,
    /// Facts a `reply(c)` wire could not deliver: column `c` named no instance.
    pub misrouted: u64,
    /// Records processed over time: after each tick, (seconds since the network started,
    /// facts in so far).
    pub timeline: Vec<(f64, u64)>,
    /// With seals enforced: seal keys released, facts that arrived after their key was
    /// released (a broken promise), and facts still held at the end (never sealed).
    pub partitions_released: u64,
    pub late: u64,
    pub held: u64,
    /// Per released seal key, the seconds from its first fact's arrival to its release.
    pub seal_waits: Vec<f64>,
    /// Across processes: facts that reached this node after it stopped (`--max-ticks`).
    #[serde(default)]
    pub undelivered: u64,
    /// Across processes: the nodes this node received data frames from, each over its own
    /// connection, and how many (a node receives facts only from the node that sent them).
    #[serde(default)]
    pub frames_from: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default)]
pub struct NetworkResult {
    pub nodes: Vec<NodeReport>,
    /// Every node went idle with no message waiting.
    pub quiescent: bool,
    /// Facts sent to a node that had already stopped (it reached `max_ticks`).
    pub undelivered: u64,
    pub elapsed_s: f64,
}

/// Records processed over time by some nodes: their timelines (after each tick, seconds
/// and facts in so far) merged into one step function, starting at (0, 0).
pub fn records_over_time<'a>(nodes: impl IntoIterator<Item = &'a NodeReport>) -> Vec<(f64, u64)> {
    let mut events: Vec<(f64, usize, u64)> = Vec::new();
    let mut count = 0;
    for (i, n) in nodes.into_iter().enumerate() {
        events.extend(n.timeline.iter().map(|(t, facts)| (*t, i, *facts)));
        count += 1;
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut latest = vec![0u64; count];
    let mut out = vec![(0.0, 0)];
    for (t, i, facts) in events {
        if let Some(x) = latest.get_mut(i) {
            *x = facts;
        }
        out.push((t, latest.iter().sum()));
    }
    out
}

/// The latency of answers at one node: for every key (first column) that output `question`
/// emitted, the seconds from the end of the tick where it first emitted it to the end of
/// the tick where output `answer` first emitted a fact with the same key (by the node's
/// timeline). Returns those latencies and how many questions got no answer.
pub fn answer_latencies(node: &NodeReport, question: &str, answer: &str) -> (Vec<f64>, u64) {
    let first = |output: &str| -> BTreeMap<Value, u64> {
        let mut at = BTreeMap::new();
        for (tick, diffs) in node.result.changes.get(output).into_iter().flatten() {
            for (row, d) in diffs {
                if let (Some(k), true) = (row.first(), *d > 0) {
                    at.entry(k.clone()).or_insert(*tick);
                }
            }
        }
        at
    };
    let asked = first(question);
    let answered = first(answer);
    let time = |t: u64| node.timeline.get(t as usize).map(|(s, _)| *s);
    let mut latencies = Vec::new();
    let mut unanswered = 0;
    for (k, t0) in asked {
        match answered.get(&k).and_then(|t1| Some((time(t0)?, time(*t1)?))) {
            Some((a, b)) => latencies.push((b - a).max(0.0)),
            None => unanswered += 1,
        }
    }
    (latencies, unanswered)
}
