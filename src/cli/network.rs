//! `bloomc run` on a system of several nodes: every node instance runs as its own timely
//! computation in this process, and the wires carry facts between them. Prints the facts of
//! the outputs no wire carries (the system's results), per node, and a summary per node.

use super::args::CoordinationArg;
use super::coordination::{describe, rewritten, strategy};
use super::settings::NetworkRun;
use bloomc_compiler::analysis::report::Analysis;
use bloomc_compiler::ir::{CollectionId, Program};
use bloomc_grammar::ast::CollectionKind;
use bloomc_runtime::network::{network, NetworkOptions};
use bloomc_runtime::plan::NodePlan;
use bloomc_runtime::report::NetworkResult;
use bloomc_runtime::value::Row;
use std::collections::BTreeSet;
use std::process::ExitCode;

pub fn run_network(
    run: &NetworkRun,
    p: &Program,
    analysis: Option<&Analysis>,
    files: &[(CollectionId, Vec<Row>, usize)],
    skipped: usize,
    digest: u64,
) -> Result<ExitCode, String> {
    let (inserted, rewritten) = rewritten(p, analysis, run.coordination)?;
    let label = describe(p, run.coordination, &inserted);
    let p = &rewritten;
    let plans = bloomc_runtime::plan::plan_network(p, files)?;
    let options = NetworkOptions { max_ticks: run.max_ticks };
    let across = run.across();
    // Whether a replicated group is sequenced (so the run needs an ordering service).
    let ordered = bloomc_runtime::coordination::sequences_any(p, &plans)?;
    check_options(run, p, &plans, (across, ordered), &label)?;
    let result = if across {
        super::cluster::run_coordinator(run, &plans, &options, digest, ordered)?
    } else {
        network(p, &plans, &options)?
    };
    let printed = print_outputs(run, p, &plans, &result)?;
    let sealing = p.system.as_ref().is_some_and(|s| s.coordination.holds.iter().any(|h| h.until.is_none()))
        || run.coordination == CoordinationArg::Seal;
    let waits: Vec<f64> = result.nodes.iter().flat_map(|n| n.seal_waits.iter().copied()).collect();
    let latency = latency(run, &result)?;
    if let Some(path) = &run.shown.summary_json {
        let strategy = match run.coordination {
            CoordinationArg::Auto => format!("auto: {label}"),
            arg => strategy(arg).as_str().to_string(),
        };
        let waits = sealing.then_some(waits.as_slice());
        let answers = latency.as_ref().map(|(l, u)| (l.as_slice(), *u));
        write_summary(path, p, (&strategy, across), (&printed, &result), waits, answers)?;
    }
    if sealing {
        print_seals(&result, &waits);
    }
    if let (Some((l, u)), Some((q, a))) = (&latency, &run.shown.latency) {
        print_latency((q, a), l, *u);
    }
    // What the analysis chose, and why (what `auto` inserted).
    if let (CoordinationArg::Auto, Some(a)) = (run.coordination, analysis) {
        eprint!("{}", a.coordination());
    }
    print_nodes(&result, &label, skipped);
    Ok(if result.quiescent { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The options that only a run across processes takes, and `--output` names, checked
/// before anything runs.
fn check_options(
    run: &NetworkRun,
    p: &Program,
    plans: &[NodePlan],
    (across, ordered): (bool, bool),
    label: &str,
) -> Result<(), String> {
    if let Some(service) = &run.order_service {
        if !across {
            return Err("`--order-service` orders the replicated groups of a run across processes: add `--processes` (in one process the transport sequences them)".to_string());
        }
        if !ordered {
            return Err(format!(
                "`--order-service {}` has nothing to order: this run sequences no replicated group (coordination {label})",
                match service {
                    super::args::OrderServiceArg::Embedded => "embedded".to_string(),
                    super::args::OrderServiceArg::ZooKeeper(a) => format!("zookeeper://{a}"),
                },
            ));
        }
    }
    if run.restart && !across {
        return Err(
            "`--restart` brings back the node processes of a run across processes: add `--processes` (or `--cluster`)"
                .to_string(),
        );
    }
    if run.link_delay_ms.is_some() && !run.processes {
        return Err("`--link-delay-ms` is applied by node processes that the launcher starts: add `--processes` (nodes started by hand take it themselves)".to_string());
    }
    // `--output NODE.OUTPUT=PATH`: an output a node prints (no wire carries it).
    for (name, _) in &run.shown.outputs {
        let known = plans.iter().any(|plan| {
            plan.collections(p, CollectionKind::Output).into_iter().any(|o| {
                format!("{}.{}", plan.node_name, p.collection_name(o)) == *name
                    && !p.system.iter().flat_map(|s| s.wires.iter()).any(|w| w.from.collection == o)
            })
        });
        if !known {
            return Err(format!(
                "`--output {name}`: no node prints an output `{name}`; name a node and an output no wire carries, as `bloomc run` prints them (`analyst.result`)"
            ));
        }
    }
    Ok(())
}

/// Prints (or, with `--output`, writes) each node's outputs that no wire carries; returns
/// their names per node.
fn print_outputs(
    run: &NetworkRun,
    p: &Program,
    plans: &[NodePlan],
    result: &NetworkResult,
) -> Result<Vec<Vec<String>>, String> {
    let wired: BTreeSet<CollectionId> =
        p.system.iter().flat_map(|s| s.wires.iter()).map(|w| w.from.collection).collect();
    // Per node, the outputs no wire carries: printed, and counted in the summary.
    let printed: Vec<Vec<String>> = plans
        .iter()
        .map(|plan| {
            plan.collections(p, CollectionKind::Output)
                .into_iter()
                .filter(|o| !wired.contains(o))
                .map(|o| p.collection_name(o).to_string())
                .collect()
        })
        .collect();
    for (names, node) in printed.iter().zip(&result.nodes) {
        for name in names.iter().filter(|n| node.result.changes.contains_key(*n)) {
            let label = format!("{}.{name}", node.name);
            if let Some((_, path)) = run.shown.outputs.iter().find(|(n, _)| *n == label) {
                super::io::write_csv(path, &node.result, name)?;
                continue;
            }
            super::io::print_output(&label, &node.result, name, run.shown.per_tick, run.shown.limit);
        }
    }
    Ok(printed)
}

/// `--latency QUESTION=ANSWER`: over the nodes that have both outputs, the seconds from each
/// question to its first answer, and how many got none.
fn latency(run: &NetworkRun, result: &NetworkResult) -> Result<Option<(Vec<f64>, u64)>, String> {
    Ok(match &run.shown.latency {
        None => None,
        Some((q, a)) => {
            let nodes: Vec<_> = result
                .nodes
                .iter()
                .filter(|n| n.result.changes.contains_key(q) && n.result.changes.contains_key(a))
                .collect();
            if nodes.is_empty() {
                return Err(format!("`--latency {q}={a}`: no node has both an output `{q}` and an output `{a}`"));
            }
            let (mut all, mut unanswered) = (Vec::new(), 0);
            for n in nodes {
                let (l, u) = bloomc_runtime::report::answer_latencies(n, q, a);
                all.extend(l);
                unanswered += u;
            }
            Some((all, unanswered))
        }
    })
}

/// `--summary-json`: the run's summary, per node and over time.
fn write_summary(
    path: &str,
    p: &Program,
    (strategy, across): (&str, bool),
    (printed, result): (&[Vec<String>], &NetworkResult),
    waits: Option<&[f64]>,
    answers: Option<(&[f64], u64)>,
) -> Result<(), String> {
    let nodes: Vec<super::summary::NodeSummary<'_>> = printed
        .iter()
        .zip(&result.nodes)
        .map(|(names, node)| super::summary::NodeSummary {
            name: &node.name,
            result: &node.result,
            messages_in: node.messages_in,
            messages_out: node.messages_out,
            outputs: names.clone(),
            frames_from: across.then_some(&node.frames_from),
        })
        .collect();
    let over_time = bloomc_runtime::report::records_over_time(&result.nodes);
    let mut by_group = std::collections::BTreeMap::new();
    for n in &result.nodes {
        by_group.entry(n.group.clone()).or_insert_with(|| {
            bloomc_runtime::report::records_over_time(result.nodes.iter().filter(|m| m.group == n.group))
        });
    }
    let measured =
        super::summary::Measured { over_time: Some(&over_time), by_group: Some(&by_group), seal: waits, answers };
    super::summary::write(path, p, strategy, &nodes, result.elapsed_s, result.quiescent, measured)
}

/// What the seals did: keys released, facts late and still held, and the wait for a seal.
fn print_seals(result: &NetworkResult, waits: &[f64]) {
    let (released, late, held) =
        result.nodes.iter().fold((0, 0, 0), |(r, l, h), n| (r + n.partitions_released, l + n.late, h + n.held));
    let w = super::summary::waits_ms(waits);
    eprintln!(
        "seals: {released} seal keys released, {late} facts late (after their key was sealed), {held} facts still held at the end; a key waited {:.1} ms on average from its first fact to its release (p95 {:.1} ms)",
        w.get("mean").and_then(serde_json::Value::as_f64).unwrap_or(0.0),
        w.get("p95").and_then(serde_json::Value::as_f64).unwrap_or(0.0)
    );
}

/// The answer latency `--latency` measured.
fn print_latency((q, a): (&str, &str), l: &[f64], u: u64) {
    let w = super::summary::waits_ms(l);
    eprintln!(
        "latency {q} -> {a}: {} questions answered, {u} unanswered; {:.1} ms on average from a question to its first answer (p50 {:.1} ms, p95 {:.1} ms)",
        l.len(),
        w.get("mean").and_then(serde_json::Value::as_f64).unwrap_or(0.0),
        w.get("p50").and_then(serde_json::Value::as_f64).unwrap_or(0.0),
        w.get("p95").and_then(serde_json::Value::as_f64).unwrap_or(0.0)
    );
}

/// A line per node, then one for the run.
fn print_nodes(result: &NetworkResult, label: &str, skipped: usize) {
    let (mut facts_in, mut errors, mut misrouted) = (0, 0, 0);
    for node in &result.nodes {
        let r = &node.result;
        eprintln!(
            "{}: {} ticks, {} facts in ({} by message), {} facts sent, {} evaluation errors, {} generator errors",
            node.name, r.ticks, r.facts_in, node.messages_in, node.messages_out, r.eval_errors, r.feed_errors
        );
        super::summary::report_rejected(&node.name, r);
        facts_in += r.facts_in;
        errors += r.eval_errors;
        misrouted += node.misrouted;
    }
    eprintln!(
        "{} nodes, coordination {}: {}, {facts_in} facts in, {:.3} s, {errors} evaluation errors, {misrouted} replies to no instance, {} facts undelivered, {skipped} bad input rows skipped",
        result.nodes.len(),
        label,
        if result.quiescent { "quiescent" } else { "stopped at --max-ticks" },
        result.elapsed_s,
        result.undelivered,
    );
}
