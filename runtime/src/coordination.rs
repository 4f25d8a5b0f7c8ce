//! The coordination of a network run: what `--coordination` asks for, what the analysis
//! chose (`auto`), and the seals, holds and sequencers that it comes to (`resolve`), for
//! the runtime and for the explorer's simulator alike.

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

/// The coordination a network run adds between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Coordination {
    /// None: messages land in the receiver's next tick, in whatever order they arrive.
    #[default]
    None,
    /// A sequencer in front of every replicated group: each replica processes the same
    /// batches of input in the same order (see `transport.rs`).
    Order,
    /// Every declared seal enforced: producers punctuate, consumers hold each seal key's
    /// facts until all its producers have sealed it (see `seal.rs`).
    Seal,
    /// Chosen per group (what the analysis chose): the replicated groups to sequence, the
    /// seals to enforce, as (sealed input, seal columns), and the reads to hold until the
    /// partition of their key is sealed.
    Chosen { order: BTreeSet<GroupId>, seal: Vec<(Endpoint, Vec<usize>)>, holds: Vec<ReadHold> },
}

/// `--coordination auto`: what the analysis chose, per group. A seal chosen at a group is
/// enforced on each of its wired inputs whose seal the analysis relies on (the producers
/// must copy a generated feed), and each read it protects is held: per key until that
/// partition is sealed when it carries the seal's key, else until every partition is; an
/// order chosen at a replicated group sequences it (a group of one instance already takes
/// its deliveries one at a time, in arrival order).
pub fn auto(p: &Program, analysis: Option<&Analysis>) -> Coordination {
    let none = Coordination::Chosen { order: BTreeSet::new(), seal: Vec::new(), holds: Vec::new() };
    let Some(s) = &p.system else { return none };
    let (mut order, mut seal, mut holds) = (BTreeSet::new(), Vec::new(), Vec::new());
    for choice in analysis.map(|a| a.choices.as_slice()).unwrap_or_default() {
        let Some(g) = s.groups.iter().find(|g| g.name == choice.component) else { continue };
        let input = |name: &str| -> Option<Endpoint> {
            let m = p.module(g.module)?;
            let c = m.collections.iter().copied().find(|&c| p.collection_name(c) == name)?;
            Some(Endpoint { group: g.id, collection: c })
        };
        let columns = |end: Endpoint, names: &mut dyn Iterator<Item = &String>| -> Option<Vec<usize>> {
            let coll = p.collection(end.collection)?;
            names.map(|k| coll.column_index(k)).collect::<Option<Vec<usize>>>().filter(|c| !c.is_empty())
        };
        match choice.strategy {
            Strategy::Seal => {
                let wired: BTreeSet<Endpoint> = s.wires.iter().map(|w| w.to).filter(|e| e.group == g.id).collect();
                for end in choice.sealed.iter().filter_map(|n| input(n)).filter(|e| wired.contains(e)) {
                    if let Some(cols) = columns(end, &mut choice.key.iter()) {
                        if !seal.contains(&(end, cols.clone())) {
                            seal.push((end, cols));
                        }
                    }
                }
                for (read, sealed, pairs) in &choice.holds {
                    let (Some(read), Some(sealed)) = (input(read), input(sealed)) else { continue };
                    // The read's columns in the order of the seal's key columns.
                    let ordered: Option<Vec<&String>> =
                        choice.key.iter().map(|k| pairs.iter().find(|(sk, _)| sk == k).map(|(_, rc)| rc)).collect();
                    let enforced = seal.iter().any(|(e, _)| *e == sealed);
                    // No pairs: the read waits for the whole sealed input (no columns).
                    let cols = match ordered {
                        _ if pairs.is_empty() => Some(Vec::new()),
                        Some(ordered) => columns(read, &mut ordered.into_iter()),
                        None => None,
                    };
                    if let (Some(cols), true) = (cols, enforced) {
                        let h = ReadHold { read, sealed, columns: cols };
                        if !holds.contains(&h) {
                            holds.push(h);
                        }
                    }
                }
            }
            Strategy::Order if g.replicated => {
                order.insert(g.id);
            }
            Strategy::Order => {}
        }
    }
    Coordination::Chosen { order, seal, holds }
}

/// The coordination of a run made concrete: the seals to enforce, as (sealed input, seal
/// columns), and the replicated groups to sequence, as (first plan, instances).
pub(crate) struct Resolved {
    pub(crate) seal: Vec<(Endpoint, Vec<usize>)>,
    pub(crate) sequenced: Vec<(usize, usize)>,
    pub(crate) holds: Vec<ReadHold>,
}

pub(crate) fn resolve(p: &Program, plans: &[NodePlan], coordination: &Coordination) -> Result<Resolved, String> {
    let groups: Vec<&bloomc_compiler::ir::NodeGroup> = p.system.iter().flat_map(|s| s.groups.iter()).collect();
    let sealed: Vec<(Endpoint, Vec<usize>)> =
        p.system.iter().flat_map(|s| s.seals.iter()).map(|x| (x.stream, x.columns.clone())).collect();
    let (order, seal, holds): (BTreeSet<GroupId>, Vec<SealAt>, Vec<ReadHold>) = match coordination {
        Coordination::None => (BTreeSet::new(), Vec::new(), Vec::new()),
        Coordination::Order => {
            let replicated: BTreeSet<GroupId> = groups.iter().filter(|g| g.replicated).map(|g| g.id).collect();
            if replicated.is_empty() {
                return Err("`--coordination order` sequences replicated groups, and this system has none".to_string());
            }
            (replicated, Vec::new(), Vec::new())
        }
        Coordination::Seal => {
            if sealed.is_empty() {
                return Err("`--coordination seal`: the system declares no seal".to_string());
            }
            (BTreeSet::new(), sealed, Vec::new())
        }
        Coordination::Chosen { order, seal, holds } => (order.clone(), seal.clone(), holds.clone()),
    };
    let sequenced: Vec<(usize, usize)> = groups
        .iter()
        .filter(|g| g.replicated && order.contains(&g.id))
        .filter_map(|g| plans.iter().position(|x| x.group == Some(g.id)).map(|at| (at, g.count as usize)))
        .collect();
    Ok(Resolved { seal, sequenced, holds })
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

/// Sets each plan's `sealed_feeds` to the seals the analysis assumes on its fed inputs, so
/// that `bloomc run` delivers each key's rows together as the analysis (and `explore`)
/// assumed: with `--seal` (which replaces a declared seal of the same stream) and for a
/// program without a system too.
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
