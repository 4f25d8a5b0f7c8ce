//! `--summary-json PATH`: the run report of `bloomc run` as one JSON object, for scripts
//! and experiments. Fields:
//! `strategy` (`none`, `order`, `seal`, or `auto: ` and what the analysis chose), `query` (the program's `query` parameter, or null),
//! `records_processed` (facts in over all nodes), `records_per_s`, `records_over_time` (in a
//! network: `[seconds, records so far]` after every node's tick), `records_over_time_by_group`
//! (the same per node group, by name), `elapsed_s`, `quiescent`, `answers` (facts
//! emitted on the outputs no wire carries, except `disagreement`), `replica_disagreements`
//! (the final facts of outputs named `disagreement`, such as adtrack's analyst keeps; null
//! when the program has none), `seal_wait_ms` (with seals enforced: over the released seal
//! keys, the milliseconds from a key's first fact reaching its consumer to its release, as
//! `keys`, `mean`, `p50`, `p95` and `max`; null without seals), `answer_latency_ms` (with
//! `--latency Q=A`: the same statistics over the questions answered, `keys` counting them,
//! and `unanswered`; null without), and `per_node` (ticks, facts in, messages in and out,
//! evaluation errors, facts per printed output, and across processes `frames_from`: the
//! nodes it received data frames from, with how many; null otherwise).

use bloomc_compiler::ir::{Program, Value};
use bloomc_runtime::run::RunResult;
use serde_json::{json, Map};

/// What one node contributes: its name, its result, messages in and out, and the outputs
/// that leave the system.
pub struct NodeSummary<'a> {
    pub name: &'a str,
    pub result: &'a RunResult,
    pub messages_in: u64,
    pub messages_out: u64,
    pub outputs: Vec<String>,
    /// Across processes: the nodes it received data frames from, with how many.
    pub frames_from: Option<&'a std::collections::BTreeMap<String, u64>>,
}

/// What a network run measured over time: the records processed after every tick of every
/// node, each seal key's wait (with seals enforced), and each answered question's wait with
/// the unanswered count (with `--latency`). One node measures none of them.
#[derive(Default)]
pub struct Measured<'a> {
    pub over_time: Option<&'a [(f64, u64)]>,
    pub by_group: Option<&'a std::collections::BTreeMap<String, Vec<(f64, u64)>>>,
    pub seal: Option<&'a [f64]>,
    pub answers: Option<(&'a [f64], u64)>,
}

pub fn write(
    path: &str,
    p: &Program,
    strategy: &str,
    nodes: &[NodeSummary<'_>],
    elapsed_s: f64,
    quiescent: bool,
    measured: Measured<'_>,
) -> Result<(), String> {
    let Measured { over_time, by_group, seal: seal_waits, answers: latency } = measured;
    let query = p.params.iter().find(|x| x.name == "query").map(|x| match &x.value {
        Value::Str(s) => json!(s),
        Value::Int(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::Bool(b) => json!(b),
    });
    let (mut answers, mut disagreements, mut has_disagreement) = (0usize, 0usize, false);
    let mut per_node = Map::new();
    for n in nodes {
        let mut outputs = Map::new();
        for o in &n.outputs {
            let facts = n.result.all_facts(o).len();
            if o == "disagreement" {
                has_disagreement = true;
                disagreements += n.result.final_contents(o).len();
            } else {
                answers += facts;
            }
            outputs.insert(o.clone(), json!(facts));
        }
        per_node.insert(
            n.name.to_string(),
            json!({
                "ticks": n.result.ticks,
                "facts_in": n.result.facts_in,
                "messages_in": n.messages_in,
                "messages_out": n.messages_out,
                "eval_errors": n.result.eval_errors,
                "rejected_keys": n.result.rejected.values().map(|r| r.facts).sum::<u64>(),
                "outputs": outputs,
                "frames_from": n.frames_from,
            }),
        );
    }
    let records: u64 = nodes.iter().map(|n| n.result.facts_in).sum();
    let report = json!({
        "strategy": strategy,
        "query": query,
        "records_processed": records,
        "records_per_s": if elapsed_s > 0.0 { records as f64 / elapsed_s } else { 0.0 },
        "records_over_time": over_time,
        "records_over_time_by_group": by_group,
        "elapsed_s": elapsed_s,
        "quiescent": quiescent,
        "answers": answers,
        "replica_disagreements": if has_disagreement { json!(disagreements) } else { json!(null) },
        "seal_wait_ms": seal_waits.map(waits_ms),
        "answer_latency_ms": latency.map(|(l, unanswered)| {
            let mut v = waits_ms(l);
            if let Some(o) = v.as_object_mut() {
                o.insert("unanswered".to_string(), json!(unanswered));
            }
            v
        }),
        "per_node": per_node,
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| format!("cannot encode the summary: {e}"))?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write `{path}`: {e}"))
}

/// Summary statistics, in milliseconds, of waits given in seconds.
pub fn waits_ms(waits: &[f64]) -> serde_json::Value {
    let mut ms: Vec<f64> = waits.iter().map(|w| w * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms.get(((ms.len() as f64 - 1.0) * q).round().max(0.0) as usize).copied().unwrap_or(0.0);
    let mean = if ms.is_empty() { 0.0 } else { ms.iter().sum::<f64>() / ms.len() as f64 };
    json!({ "keys": ms.len(), "mean": mean, "p50": at(0.5), "p95": at(0.95), "max": at(1.0) })
}

/// Prints, on stderr, a line per keyed input of `node` that rejected facts: how many, on
/// which key, and the first of them (`runtime/src/keys.rs`).
pub(crate) fn report_rejected(node: &str, result: &RunResult) {
    for (input, r) in &result.rejected {
        eprintln!(
            "{node}: input `{input}` rejected {} facts whose key ({}) an earlier fact of the run had; the first: ({})",
            r.facts,
            r.key.join(", "),
            bloomc_runtime::value::show(&r.first)
        );
    }
}
