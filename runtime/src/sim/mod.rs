//! The explorer's simulator: a deterministic, seeded simulation of a whole program (one node
//! or a network, every node in this process) under the schedules a network can produce, to
//! check the analysis's labels against executions (`bloomc explore`).
//!
//! - `naive`: one node's ticks, by sets and nested loops (also the tests' reference).
//! - `choose`: where a schedule's choices come from (a seed, or a script).
//! - `world`: one schedule of every node, decided choice by choice.
//! - `explore`: many schedules, and what each output stream did over them.

pub mod choose;
pub mod explore;
pub mod naive;
mod sequencer;
pub mod world;

use crate::coordination::operators;
use crate::network::{routes, Route};
use crate::plan::NodePlan;
use crate::value::Row;
use bloomc_compiler::analysis::report::Analysis;
use bloomc_compiler::ir::{CollectionId, Program};
use std::collections::{BTreeMap, BTreeSet};

/// The simulated shape of a program run: the seals and sequencers its coordination
/// operators enforce between nodes (a rewritten program: `bloomc_compiler::rewrite`), and
/// its sealed feeds (a punctuated external stream: each key's facts arrive together).
pub fn setup<'p>(
    p: &'p Program,
    plans: Vec<NodePlan>,
    analysis: Option<&Analysis>,
    max_ticks: u64,
) -> Result<Setup<'p>, String> {
    let resolved = operators(p, &plans);
    let mut seals: Vec<(usize, CollectionId, Vec<usize>)> = Vec::new();
    for (end, cols) in &resolved.seal {
        for (i, _) in plans.iter().enumerate().filter(|(_, n)| n.group == Some(end.group)) {
            seals.push((i, end.collection, cols.clone()));
        }
    }
    let mut reads = Vec::new();
    for h in &resolved.holds {
        for (i, _) in plans.iter().enumerate().filter(|(_, n)| n.group == Some(h.read.group)) {
            if seals.iter().any(|(j, c, _)| *j == i && *c == h.sealed.collection) {
                reads.push((i, h.read.collection, h.sealed.collection, h.columns.clone()));
            }
        }
    }
    // Sealed feeds and the reads they protect, as at run time: the program's (a network's
    // rewritten program declares them), or on one node the analysis's (`seal_feeds`).
    let mut plans = plans;
    if bloomc_compiler::rewrite::is_network(p) {
        // Read from `p` itself, whatever program the plans were made from.
        for plan in plans.iter_mut() {
            let Some(g) = plan.group else { continue };
            plan.sealed_feeds = crate::fed::sealed_feeds(p, g, &plan.feeds);
            plan.fed_reads = crate::fed::fed_reads(p, g, &plan.sealed_feeds);
        }
    } else {
        crate::coordination::seal_feeds(p, &mut plans, analysis);
    }
    for (i, plan) in plans.iter().enumerate() {
        for (c, cols) in &plan.sealed_feeds {
            if !seals.iter().any(|(j, x, _)| *j == i && x == c) {
                seals.push((i, *c, cols.clone()));
            }
        }
    }
    for (i, plan) in plans.iter().enumerate() {
        for (read, sealed, cols) in &plan.fed_reads {
            let held = seals.iter().any(|(j, c, _)| *j == i && c == sealed);
            if held && !reads.iter().any(|(j, r, _, _)| *j == i && r == read) {
                reads.push((i, *read, *sealed, cols.clone()));
            }
        }
    }
    Ok(Setup::new(p, plans, &seals, &resolved.sequenced, &reads, max_ticks))
}

/// The fixed shape of the simulated program: its nodes, routes and coordination.
pub struct Setup<'p> {
    pub program: &'p Program,
    pub plans: Vec<NodePlan>,
    pub(crate) routes: BTreeMap<(usize, CollectionId), Vec<Route>>,
    /// Per node, the index of its group's first instance.
    pub(crate) first: Vec<usize>,
    /// Per node, every feed row in feed order.
    pub(crate) feed_rows: Vec<Vec<(CollectionId, Row)>>,
    /// Sealed inputs: (node, input) -> seal columns.
    pub(crate) seals: BTreeMap<(usize, CollectionId), Vec<usize>>,
    /// The nodes whose wires reach (node, input).
    pub(crate) producers: BTreeMap<(usize, CollectionId), BTreeSet<usize>>,
    /// Sequenced groups: first instance -> instances.
    pub(crate) sequenced: BTreeMap<usize, usize>,
    /// Held reads: (node, read input) -> (sealed input, the read's key columns).
    pub(crate) reads: BTreeMap<(usize, CollectionId), (CollectionId, Vec<usize>)>,
    pub max_ticks: u64,
}

impl<'p> Setup<'p> {
    /// `seals` are (node, input, columns) to enforce; `sequenced` the (first node,
    /// instances) of each replicated group to sequence; `reads` the (node, read input,
    /// sealed input, read's key columns) to hold until their partition is sealed.
    pub fn new(
        program: &'p Program,
        plans: Vec<NodePlan>,
        seals: &[(usize, CollectionId, Vec<usize>)],
        sequenced: &[(usize, usize)],
        reads: &[(usize, CollectionId, CollectionId, Vec<usize>)],
        max_ticks: u64,
    ) -> Setup<'p> {
        let routes = routes(program, &plans);
        let first: Vec<usize> = plans
            .iter()
            .enumerate()
            .map(|(i, n)| plans.iter().position(|m| m.group.is_some() && m.group == n.group).unwrap_or(i))
            .collect();
        let mut feed_rows = Vec::new();
        for n in &plans {
            let mut rows = Vec::new();
            let mut errors = 0;
            for f in &n.feeds {
                for t in 0..f.ticks() {
                    f.visit(t, n.instance, (0, 1), &mut errors, &mut |r| rows.push((f.input, r.clone())));
                }
            }
            feed_rows.push(rows);
        }
        let mut producers: BTreeMap<(usize, CollectionId), BTreeSet<usize>> = BTreeMap::new();
        for (&(from_first, _), rs) in &routes {
            let senders: Vec<usize> = (0..plans.len()).filter(|&i| first.get(i) == Some(&from_first)).collect();
            for r in rs {
                for to in r.first..r.first + r.count {
                    producers.entry((to, r.input)).or_default().extend(senders.iter().copied());
                }
            }
        }
        Setup {
            program,
            plans,
            routes,
            first,
            feed_rows,
            seals: seals.iter().map(|(n, c, cols)| ((*n, *c), cols.clone())).collect(),
            producers,
            sequenced: sequenced.iter().copied().collect(),
            reads: reads.iter().map(|(n, r, s, cols)| ((*n, *r), (*s, cols.clone()))).collect(),
            max_ticks,
        }
    }

    /// Does the group of `node` go through a sequencer?
    pub fn is_sequenced(&self, node: usize) -> bool {
        self.sequenced_first(node).is_some()
    }

    pub(crate) fn sequenced_first(&self, node: usize) -> Option<usize> {
        self.first.get(node).copied().filter(|f| self.sequenced.contains_key(f))
    }
}
