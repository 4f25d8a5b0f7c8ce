//! `bloomc run` on a system of several nodes: every node instance runs as its own timely
//! computation in this process, and the wires carry facts between them. Prints the facts of
//! the outputs no wire carries (the system's results), per node, and a summary per node.

use super::common::emit;
use super::run::{CoordinationArg, Run};
use bloomc_compiler::ir::{CollectionId, Program};
use bloomc_grammar::ast::CollectionKind;
use bloomc_runtime::network::{network, Coordination, NetworkOptions};
use bloomc_runtime::value::{show, Row};
use std::collections::BTreeSet;
use std::process::ExitCode;

/// Whether the program's system runs as a network (more than one node instance).
pub fn is_network(p: &Program) -> bool {
    p.system.as_ref().is_some_and(|s| s.groups.len() > 1 || s.groups.iter().any(|g| g.count > 1))
}

pub fn run_network(
    run: &Run,
    p: &Program,
    files: &[(CollectionId, Vec<Row>, usize)],
    skipped: usize,
) -> Result<ExitCode, String> {
    let plans = bloomc_runtime::plan::plan_network(p, files)?;
    let coordination = match run.coordination {
        CoordinationArg::None => Coordination::None,
        CoordinationArg::Order => {
            if !p.system.iter().flat_map(|s| s.groups.iter()).any(|g| g.replicated) {
                return Err("`--coordination order` sequences replicated groups, and this system has none".to_string());
            }
            Coordination::Order
        }
        CoordinationArg::Seal => Coordination::Seal,
    };
    let result = network(p, &plans, &NetworkOptions { max_ticks: run.max_ticks, coordination })?;
    let wired: BTreeSet<CollectionId> =
        p.system.iter().flat_map(|s| s.wires.iter()).map(|w| w.from.collection).collect();
    for (plan, node) in plans.iter().zip(&result.nodes) {
        for o in plan.collections(p, CollectionKind::Output).into_iter().filter(|o| !wired.contains(o)) {
            let name = p.collection_name(o);
            if !node.result.changes.contains_key(name) {
                continue;
            }
            if run.per_tick {
                for (t, rows) in node.result.by_tick(name) {
                    emit(&format!("-- {}.{name} at tick {t}: {} facts\n", node.name, rows.len()));
                    for row in &rows {
                        emit(&format!("{}.{name}({})\n", node.name, show(row)));
                    }
                }
            } else {
                let rows = node.result.all_facts(name);
                emit(&format!("-- {}.{name}: {} facts emitted\n", node.name, rows.len()));
                for row in rows {
                    emit(&format!("{}.{name}({})\n", node.name, show(&row)));
                }
            }
        }
    }
    if let Some(path) = &run.summary_json {
        let nodes: Vec<super::summary::NodeSummary<'_>> = plans
            .iter()
            .zip(&result.nodes)
            .map(|(plan, node)| super::summary::NodeSummary {
                name: &node.name,
                result: &node.result,
                messages_in: node.messages_in,
                messages_out: node.messages_out,
                outputs: plan
                    .collections(p, CollectionKind::Output)
                    .into_iter()
                    .filter(|o| !wired.contains(o))
                    .map(|o| p.collection_name(o).to_string())
                    .collect(),
            })
            .collect();
        let strategy = match coordination {
            Coordination::None => "none",
            Coordination::Order => "order",
            Coordination::Seal => "seal",
        };
        super::summary::write(path, p, strategy, &nodes, result.elapsed_s, result.quiescent)?;
    }
    if coordination == Coordination::Seal {
        let (released, late, held) =
            result.nodes.iter().fold((0, 0, 0), |(r, l, h), n| (r + n.partitions_released, l + n.late, h + n.held));
        eprintln!("seals: {released} seal keys released, {late} facts late (after their key was sealed), {held} facts still held at the end");
    }
    let (mut facts_in, mut errors, mut misrouted) = (0, 0, 0);
    for node in &result.nodes {
        let r = &node.result;
        eprintln!(
            "{}: {} ticks, {} facts in ({} by message), {} facts sent, {} evaluation errors, {} generator errors",
            node.name, r.ticks, r.facts_in, node.messages_in, node.messages_out, r.eval_errors, r.feed_errors
        );
        facts_in += r.facts_in;
        errors += r.eval_errors;
        misrouted += node.misrouted;
    }
    eprintln!(
        "{} nodes, coordination {}: {}, {facts_in} facts in, {:.3} s, {errors} evaluation errors, {misrouted} replies to no instance, {} facts undelivered, {skipped} bad input rows skipped",
        result.nodes.len(),
        match coordination {
            Coordination::None => "none",
            Coordination::Order => "order (replicated groups sequenced)",
            Coordination::Seal => "seal (declared seals enforced)",
        },
        if result.quiescent { "quiescent" } else { "stopped at --max-ticks" },
        result.elapsed_s,
        result.undelivered,
    );
    Ok(if result.quiescent { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
