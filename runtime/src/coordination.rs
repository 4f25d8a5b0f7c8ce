//! The coordination of a network run: the seals, holds and sequencers that the program's
//! explicit operators (`order`, `punctuate`, `hold`; see `bloomc_compiler::rewrite`) come
//! to (`operators`), for the runtime and for the explorer's simulator alike; and, for a run on
//! one node (which has no operators: they coordinate nodes), the seals on fed inputs that
//! the analysis assumed (`seal_feeds`), which the feeds keep. A network's sealed feeds and
//! the reads they protect are the program's declarations and `hold` items (`plan.rs`).

use crate::plan::NodePlan;
use bloomc_compiler::analysis::coordination::Strategy;
use bloomc_compiler::analysis::model::Producer;
use bloomc_compiler::analysis::report::Analysis;
use bloomc_compiler::ir::{CollectionId, Endpoint, GroupId, Program};
use std::collections::BTreeSet;

/// A sealed input and its seal columns.
pub type SealAt = (Endpoint, Vec<usize>);

/// A read held until its key's partition of a sealed input is sealed: each fact of `read`
/// waits, keyed by its `columns` (in the order of the seal's key columns), until every
/// producer of `sealed` has sealed that key, or announced that it will send none of it.
/// With no columns (the read does not carry the seal's key) each fact waits until every
/// partition of `sealed` is sealed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadHold {
    pub read: Endpoint,
    pub sealed: Endpoint,
    pub columns: Vec<usize>,
}

/// The coordination of a run, read from the program's explicit operators (written, or
/// inserted by `bloomc_compiler::rewrite`): the seals to enforce, as (held input, seal
/// columns), the replicated groups to sequence, as (first plan, instances), and the reads
/// held until their partition is sealed. Nothing else decides a run's coordination.
pub(crate) struct Operators {
    pub(crate) seal: Vec<(Endpoint, Vec<usize>)>,
    pub(crate) sequenced: Vec<(usize, usize)>,
    pub(crate) holds: Vec<ReadHold>,
}

pub(crate) fn operators(p: &Program, plans: &[NodePlan]) -> Operators {
    let Some(s) = &p.system else {
        return Operators { seal: Vec::new(), sequenced: Vec::new(), holds: Vec::new() };
    };
    let ops = &s.coordination;
    let seal: Vec<SealAt> =
        ops.holds.iter().filter(|h| h.until.is_none()).map(|h| (h.stream, h.columns.clone())).collect();
    let holds = ops
        .holds
        .iter()
        .filter_map(|h| Some(ReadHold { read: h.stream, sealed: h.until?, columns: h.columns.clone() }))
        .collect();
    let order: BTreeSet<GroupId> = ops.orders.iter().map(|o| o.group).collect();
    let sequenced: Vec<(usize, usize)> = s
        .groups
        .iter()
        .filter(|g| g.replicated && order.contains(&g.id))
        .filter_map(|g| plans.iter().position(|x| x.group == Some(g.id)).map(|at| (at, g.count as usize)))
        .collect();
    Operators { seal, sequenced, holds }
}

/// The seals the analysis assumes on inputs fed from outside the system (every producer of
/// the stream external: a feed, or nothing), declared or given with `--seal`: per node of
/// `plans`, (node, input, seal columns).
pub fn external_seals(p: &Program, plans: &[NodePlan], a: &Analysis) -> Vec<(usize, CollectionId, Vec<usize>)> {
    let mut out: Vec<(usize, CollectionId, Vec<usize>)> = Vec::new();
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
            let module = p.module(n.module).into_iter().flat_map(|m| m.collections.iter()).copied();
            let Some(c) = module.clone().find(|&c| p.collection_name(c) == input) else { continue };
            let cols: Option<Vec<usize>> =
                s.key.iter().map(|k| p.collection(c).and_then(|x| x.column_index(k))).collect();
            if let Some(cols) = cols.filter(|c| !c.is_empty()) {
                if !out.iter().any(|(j, x, _)| *j == i && *x == c) {
                    out.push((i, c, cols));
                }
            }
        }
    }
    out
}

/// For a run on one node: sets each plan's `sealed_feeds` to the seals the analysis assumes
/// on its fed inputs, so that `bloomc run` delivers each key's rows together as the analysis
/// (and `explore`) assumed: with `--seal` (which replaces a declared seal of the same
/// stream) and for a program without a system too. (A network's come from its rewritten
/// program: `bloomc_compiler::rewrite::with_seals` declares the `--seal` seals and inserts
/// the read holds.)
///
/// A read the analysis protects with such a seal is held too (`fed_reads`): each of its
/// facts waits until its partition of the feed is complete (or every partition, when it
/// does not carry the seal's key).
pub fn seal_feeds(p: &Program, plans: &mut [NodePlan], analysis: Option<&Analysis>) {
    let Some(a) = analysis else { return };
    for (i, c, cols) in external_seals(p, plans, a) {
        let Some(plan) = plans.get_mut(i) else { continue };
        if plan.feeds.iter().any(|f| f.input == c) {
            plan.sealed_feeds.retain(|(x, _)| *x != c);
            plan.sealed_feeds.push((c, cols));
        }
    }
    for plan in plans.iter_mut() {
        let group = p.system.iter().flat_map(|s| s.groups.iter()).find(|g| Some(g.id) == plan.group);
        let component = group.map_or_else(|| plan.node_name.clone(), |g| g.name.clone());
        let collection =
            |name: &str| p.module(plan.module)?.collections.iter().copied().find(|&c| p.collection_name(c) == name);
        let mut reads = Vec::new();
        for choice in a.choices.iter().filter(|x| x.strategy == Strategy::Seal && x.component == component) {
            for (read, sealed, pairs) in &choice.holds {
                let (Some(r), Some(s)) = (collection(read), collection(sealed)) else { continue };
                let Some((_, seal_cols)) = plan.sealed_feeds.iter().find(|(x, _)| *x == s) else { continue };
                // The read's column for each seal column, in the seal's order; a read that
                // does not carry every one waits for the whole feed.
                let names = |c: &usize| p.collection(s).and_then(|x| x.columns.get(*c)).map(|x| x.name.clone());
                let cols: Option<Vec<usize>> = seal_cols
                    .iter()
                    .map(|c| {
                        let name = names(c)?;
                        let (_, rc) = pairs.iter().find(|(sk, _)| *sk == name)?;
                        p.collection(r)?.column_index(rc)
                    })
                    .collect();
                let h = (r, s, cols.filter(|_| !pairs.is_empty()).unwrap_or_default());
                if !reads.contains(&h) {
                    reads.push(h);
                }
            }
        }
        plan.fed_reads = reads;
    }
}

/// Whether the (rewritten) program sequences any replicated group of the network (so that
/// it asks an ordering service).
pub fn sequences_any(p: &Program, plans: &[NodePlan]) -> Result<bool, String> {
    Ok(!operators(p, plans).sequenced.is_empty())
}
