//! The explorer's simulator: a deterministic, seeded simulation of a whole program (one node
//! or a network, every node in this process) under the schedules a network can produce, to
//! check the analysis's labels against executions (`bloomc explore`).
//!
//! - `naive`: one node's ticks, by sets and nested loops (also the tests' reference).
//! - `world`: one schedule of every node, decided choice by choice.
//! - `explore`: many schedules, and what each output stream did over them.

pub mod explore;
pub mod naive;
pub mod world;

use crate::network::{resolve, Coordination};
use crate::plan::NodePlan;
use bloomc_compiler::analysis::model::Producer;
use bloomc_compiler::analysis::report::Analysis;
use bloomc_compiler::ir::{CollectionId, Program};
use world::Setup;

/// The simulated shape of a program run with `coordination`: the seals and sequencers it
/// enforces between nodes, and the seals the analysis assumed on inputs fed from outside
/// (a punctuated external stream: each key's facts arrive together).
pub fn setup<'p>(
    p: &'p Program,
    plans: Vec<NodePlan>,
    coordination: &Coordination,
    analysis: Option<&Analysis>,
    max_ticks: u64,
) -> Result<Setup<'p>, String> {
    let resolved = resolve(p, &plans, coordination)?;
    let mut seals: Vec<(usize, CollectionId, Vec<usize>)> = Vec::new();
    for (end, cols) in &resolved.seal {
        for (i, n) in plans.iter().enumerate().filter(|(_, n)| n.group == Some(end.group)) {
            let _ = n;
            seals.push((i, end.collection, cols.clone()));
        }
    }
    if let Some(a) = analysis {
        for s in &a.graph.seals {
            let external = a
                .graph
                .edges
                .iter()
                .filter(|e| e.component == s.component && e.input == s.input)
                .all(|e| e.producer == Producer::External);
            let (Some(comp), true) = (a.graph.components.get(s.component), external) else { continue };
            let Some(input) = comp.inputs.get(s.input) else { continue };
            for (i, n) in plans.iter().enumerate() {
                let group = p.system.iter().flat_map(|x| x.groups.iter()).find(|g| Some(g.id) == n.group);
                let name = group.map_or_else(|| n.node_name.as_str(), |g| g.name.as_str());
                if name != comp.name {
                    continue;
                }
                let Some(c) = p.module(n.module).into_iter().flat_map(|m| m.collections.iter()).copied().find(|&c| p.collection_name(c) == input) else {
                    continue;
                };
                let cols: Option<Vec<usize>> =
                    s.key.iter().map(|k| p.collection(c).and_then(|x| x.column_index(k))).collect();
                if let Some(cols) = cols.filter(|c| !c.is_empty()) {
                    if !seals.iter().any(|(j, x, _)| *j == i && *x == c) {
                        seals.push((i, c, cols));
                    }
                }
            }
        }
    }
    Ok(Setup::new(p, plans, &seals, &resolved.sequenced, max_ticks))
}
