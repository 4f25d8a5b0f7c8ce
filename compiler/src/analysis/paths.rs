//! Module paths: for every (input interface, output interface) pair connected through rules,
//! the Blazes annotation CR, CW, OR_gate or OW_gate.
//!
//! Along a path from input `I`, a collection is *order-sensitive for I* when its contents can
//! depend on the order in which I's messages arrive: it is written by a nonmonotone rule fed
//! by I, or by a rule that reads a collection already order-sensitive for I, or by a rule
//! that rendezvouses with a nonmonotonically maintained collection not fed by I (the read
//! races with whatever maintains it). One refinement attributes read races to the stream
//! that triggers the read: a rule that joins I's transient order-sensitive data with a
//! transient collection fed by another input (a request, say) charges the race to that
//! other input's path, not to I's. Persistent state is never exempt: an order-sensitive
//! table stays corrupted. The path is O when its output is order-sensitive for I, and W when
//! it writes persistent state (a table, or a deferred `<+`/`<-`).

use super::gates::{extend, extend_negated, merge, nonmonotone_gates, Facts, Gate, Gates};
use super::lineage::InputCol;
use crate::ir::{CollectionId, Module, ModuleId, Program, RuleId};
use bloomc_grammar::ast::{CollectionKind, MergeOp};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
pub struct ModulePath {
    pub from: CollectionId,
    pub to: CollectionId,
    pub confluent: bool,
    pub stateful: bool,
    /// One gate per nonmonotone source; empty when confluent.
    pub gates: Vec<Gate>,
    /// The nonmonotone statements responsible (empty when confluent).
    pub sources: Vec<RuleId>,
    /// For seals through confluent paths: output column -> input columns it copies and
    /// for which it is partition-closed (lineage.rs).
    pub key_map: Vec<(usize, BTreeSet<InputCol>)>,
    /// A nonmonotone operator responsible reads the input's own per-tick facts (an
    /// aggregate or `notin` over the input or a scratch filled from it this tick), so the
    /// result depends on how the input's facts fall into ticks: only a compatible seal on
    /// the input itself protects it, whatever seals the other inputs carry.
    pub own_batch: bool,
    /// A read race on this path was charged to the path of the stream that triggers the
    /// read: that path, if its order-sensitivity is kept as state (OW) and excused by a seal
    /// on its own input, still races with this input, which must be sealed compatibly too.
    pub excused: bool,
}

/// Body-to-target edges of every rule, in both directions, for reachability.
struct Adjacency {
    forward: BTreeMap<CollectionId, Vec<CollectionId>>,
    backward: BTreeMap<CollectionId, Vec<CollectionId>>,
}

impl Adjacency {
    fn new(p: &Program, rules: &[RuleId]) -> Self {
        let mut adj = Adjacency { forward: BTreeMap::new(), backward: BTreeMap::new() };
        for r in rules.iter().filter_map(|&r| p.rule(r)) {
            let body = r.body.atoms.iter().map(|a| a.collection).chain(r.body.antijoins.iter().map(|a| a.collection));
            for b in body {
                adj.forward.entry(b).or_default().push(r.target);
                adj.backward.entry(r.target).or_default().push(b);
            }
        }
        adj
    }

    fn reachable(&self, start: CollectionId, forward: bool) -> BTreeSet<CollectionId> {
        let edges = if forward { &self.forward } else { &self.backward };
        let mut seen = BTreeSet::from([start]);
        let mut queue = vec![start];
        while let Some(c) = queue.pop() {
            for &n in edges.get(&c).into_iter().flatten() {
                if seen.insert(n) {
                    queue.push(n);
                }
            }
        }
        seen
    }
}

fn persistent(p: &Program, c: CollectionId) -> bool {
    p.collection(c).is_some_and(|c| c.kind == CollectionKind::Table)
}

fn transient(p: &Program, c: CollectionId) -> bool {
    p.collection(c).is_some_and(|c| matches!(c.kind, CollectionKind::Input | CollectionKind::Scratch))
}

/// For each collection, the rules (not deletions) that read it in their bindings, each
/// once, in module order: the index the worklists below follow instead of scanning every
/// rule per collection.
fn readers<'p>(rules: &[&'p crate::ir::Rule]) -> BTreeMap<CollectionId, Vec<&'p crate::ir::Rule>> {
    let mut out: BTreeMap<CollectionId, Vec<&crate::ir::Rule>> = BTreeMap::new();
    for &r in rules {
        let read: BTreeSet<CollectionId> = r.body.atoms.iter().map(|a| a.collection).collect();
        for c in read {
            out.entry(c).or_default().push(r);
        }
    }
    out
}

/// Collections whose contents in a tick exist only because an input's facts arrived in that
/// tick: inputs, and scratches every rule of which is an instantaneous merge reading at
/// least one such collection. A scratch filled from a table (`s <= t`) or by `<+` holds
/// state or last tick's facts, so reading it is not triggered by a fresh arrival.
///
/// A greatest fixpoint computed by a worklist: a scratch leaves the set when a writer no
/// longer reads anything in it, and only the readers of what just left are looked at
/// again, so the cost is linear in the module's rules (a module of 10,000 inputs used to
/// take seconds here, scanning every rule once per scratch and round).
pub(crate) fn fresh(p: &Program, m: &Module) -> BTreeSet<CollectionId> {
    let rules: Vec<_> = m.rules.iter().filter_map(|&r| p.rule(r)).filter(|r| r.op != MergeOp::Delete).collect();
    let scratch = |c: CollectionId| p.collection(c).is_some_and(|x| x.kind == CollectionKind::Scratch);
    let mut out: BTreeSet<CollectionId> = m.collections.iter().copied().filter(|&c| transient(p, c)).collect();
    let mut writers: BTreeMap<CollectionId, Vec<&crate::ir::Rule>> = BTreeMap::new();
    for &r in &rules {
        writers.entry(r.target).or_default().push(r);
    }
    let readers = readers(&rules);
    // A scratch stays while it has writers and each is instant and reads a fresh collection.
    let keeps = |c: CollectionId, out: &BTreeSet<CollectionId>| {
        let w = writers.get(&c).map_or(&[][..], Vec::as_slice);
        !w.is_empty()
            && w.iter().all(|r| r.op == MergeOp::Instant && r.body.atoms.iter().any(|a| out.contains(&a.collection)))
    };
    let mut gone: Vec<CollectionId> = out.iter().copied().filter(|&c| scratch(c) && !keeps(c, &out)).collect();
    for c in &gone {
        out.remove(c);
    }
    while let Some(c) = gone.pop() {
        for r in readers.get(&c).into_iter().flatten() {
            if out.contains(&r.target) && scratch(r.target) && !keeps(r.target, &out) {
                out.remove(&r.target);
                gone.push(r.target);
            }
        }
    }
    out
}

/// Scratches that hold facts of an earlier tick: written by `<+`, or filled from such a
/// scratch. Joined with another transient collection, their facts meet only the facts
/// that happen to arrive one tick later, so the result depends on timing. A least fixpoint
/// by a worklist over the readers of each scratch added, linear in the module's rules.
pub(crate) fn delayed(p: &Program, m: &Module) -> BTreeSet<CollectionId> {
    let rules: Vec<_> = m.rules.iter().filter_map(|&r| p.rule(r)).filter(|r| r.op != MergeOp::Delete).collect();
    let scratch = |c: CollectionId| p.collection(c).is_some_and(|x| x.kind == CollectionKind::Scratch);
    let mut out: BTreeSet<CollectionId> =
        rules.iter().filter(|r| r.op == MergeOp::Deferred && scratch(r.target)).map(|r| r.target).collect();
    let readers = readers(&rules);
    let mut added: Vec<CollectionId> = out.iter().copied().collect();
    while let Some(c) = added.pop() {
        for r in readers.get(&c).into_iter().flatten() {
            if scratch(r.target) && out.insert(r.target) {
                added.push(r.target);
            }
        }
    }
    out
}

/// A rule that joins a delayed scratch with another transient collection (or negates one):
/// which facts meet depends on the ticks they arrive in.
fn misaligned(p: &Program, delayed: &BTreeSet<CollectionId>, r: &crate::ir::Rule) -> bool {
    let read: Vec<CollectionId> =
        r.body.atoms.iter().map(|a| a.collection).chain(r.body.antijoins.iter().map(|a| a.collection)).collect();
    // Counted with repeats: a delayed scratch joined with itself may also hold facts of this
    // tick (`s <= a; s <+ b; from s x, s y`), and which of them meet depends on timing too.
    read.iter().any(|c| delayed.contains(c)) && read.iter().filter(|&&c| transient(p, c)).count() >= 2
}

/// Every path of the module, in (input, output) declaration order.
///
/// Each output's backward reach is computed once, not once per input, and a path's rules
/// are found from the readers of what its input reaches rather than by scanning every rule
/// of the module, so a module of many inputs costs what their reaches cost (10,000 inputs
/// into one output took two minutes when each pair scanned everything).
pub fn module_paths(p: &Program, module: ModuleId, facts: &Facts) -> Vec<ModulePath> {
    let Some(m) = p.module(module) else {
        return Vec::new();
    };
    let of_kind = |k: CollectionKind| -> Vec<CollectionId> {
        m.collections.iter().copied().filter(|&c| p.collection(c).is_some_and(|x| x.kind == k)).collect()
    };
    let adj = Adjacency::new(p, &m.rules);
    let fresh = fresh(p, m);
    let delayed = delayed(p, m);
    // Every rule that reads a collection (a binding or a `notin`), in module order.
    let position: BTreeMap<RuleId, usize> = m.rules.iter().enumerate().map(|(i, &r)| (r, i)).collect();
    let mut reading: BTreeMap<CollectionId, Vec<RuleId>> = BTreeMap::new();
    for r in m.rules.iter().filter_map(|&r| p.rule(r)) {
        let read: BTreeSet<CollectionId> =
            r.body.atoms.iter().map(|a| a.collection).chain(r.body.antijoins.iter().map(|a| a.collection)).collect();
        for c in read {
            reading.entry(c).or_default().push(r.id);
        }
    }
    // The outputs by declaration position, so each input visits only the outputs it reaches.
    let outputs: BTreeMap<CollectionId, usize> =
        of_kind(CollectionKind::Output).into_iter().enumerate().map(|(i, c)| (c, i)).collect();
    let mut backward: BTreeMap<CollectionId, BTreeSet<CollectionId>> = BTreeMap::new();
    let mut out = Vec::new();
    for input in of_kind(CollectionKind::Input) {
        let fwd = adj.reachable(input, true);
        let mut from_input: Vec<RuleId> =
            fwd.iter().flat_map(|c| reading.get(c).into_iter().flatten()).copied().collect();
        from_input.sort_by_key(|r| position.get(r).copied().unwrap_or(usize::MAX));
        from_input.dedup();
        let mut reached: Vec<(usize, CollectionId)> =
            fwd.iter().filter_map(|c| outputs.get(c).map(|&i| (i, *c))).collect();
        reached.sort_unstable();
        for (_, output) in reached {
            let bwd = backward.entry(output).or_insert_with(|| adj.reachable(output, false));
            let on_path: Vec<_> =
                from_input.iter().filter_map(|&r| p.rule(r)).filter(|r| bwd.contains(&r.target)).collect();
            out.push(path(p, facts, (&fresh, &delayed), (input, output), (&fwd, on_path)));
        }
    }
    out
}

/// What rule `r` on a path makes order-sensitive, and how: the gates its output gets
/// (from its own nonmonotone operator, a misaligned join, what it reads that the path made
/// order-sensitive in `nd`, or state maintained nonmonotonically elsewhere), and whether
/// all of it is transient (a view over fresh facts, not state that stays corrupted).
fn reached(
    p: &Program,
    facts: &Facts,
    (fwd, delayed): (&BTreeSet<CollectionId>, &BTreeSet<CollectionId>),
    r: &crate::ir::Rule,
    (nd, corrupted): (&BTreeMap<CollectionId, Gates>, &BTreeSet<CollectionId>),
) -> (Gates, bool) {
    let mut found: Gates = BTreeMap::new();
    let mut transient_only = true;
    // Does the rule's own operator consume I's data? (It is on the path, so yes.)
    if super::gates::own_nonmonotone(p, r) || (r.body.aggregates() && facts.nonmonotone.contains(&r.id)) {
        for g in nonmonotone_gates(p, &facts.lineage, r) {
            found.entry(g).or_default().insert(r.id);
        }
        // An aggregate or antijoin over state only makes a view order-sensitive; a
        // deletion changes the state itself.
        transient_only = r.op != MergeOp::Delete;
    }
    if misaligned(p, delayed, r) {
        // Which facts meet depends on timing alone: no seal partitions that.
        found.entry(Vec::new()).or_default().insert(r.id);
        transient_only = false;
    }
    for (i, a) in r.body.atoms.iter().enumerate() {
        if let (true, Some(g)) = (fwd.contains(&a.collection), nd.get(&a.collection)) {
            merge(&mut found, extend(&facts.lineage, r, i, g));
            transient_only &= transient(p, a.collection) && !corrupted.contains(&a.collection);
        } else if let Some(g) = facts.gates_of(a.collection) {
            // Also a collection I reaches, if what makes it nonmonotone is another
            // input's: I reads it as it stands when I's facts arrive.
            // A rendezvous with state maintained nonmonotonically elsewhere: a race.
            merge(&mut found, extend(&facts.lineage, r, i, g));
            transient_only = false;
        }
    }
    for a in &r.body.antijoins {
        let g = if fwd.contains(&a.collection) { nd.get(&a.collection) } else { facts.gates_of(a.collection) };
        if let Some(g) = g {
            merge(&mut found, extend_negated(g));
            transient_only &=
                fwd.contains(&a.collection) && transient(p, a.collection) && !corrupted.contains(&a.collection);
        }
    }
    (found, transient_only)
}

/// The path from `input` to `output`, given the rules on it (`on_path`: rules reading what
/// `input` reaches and writing what reaches `output`, in module order).
fn path(
    p: &Program,
    facts: &Facts,
    (fresh, delayed): (&BTreeSet<CollectionId>, &BTreeSet<CollectionId>),
    (input, output): (CollectionId, CollectionId),
    (fwd, on_path): (&BTreeSet<CollectionId>, Vec<&crate::ir::Rule>),
) -> ModulePath {
    let stateful =
        on_path.iter().any(|r| persistent(p, r.target) || matches!(r.op, MergeOp::Deferred | MergeOp::Delete));
    let mut nd: BTreeMap<CollectionId, Gates> = BTreeMap::new();
    // Collections whose order-sensitivity comes from corrupted state (a deletion, or a table
    // written order-sensitively): never exempt as a read race, however it is read later.
    let mut corrupted: BTreeSet<CollectionId> = BTreeSet::new();
    let mut excused = false;
    // Nonmonotone rules over the input's own fresh facts (see `ModulePath::own_batch`).
    let batched: BTreeSet<RuleId> = on_path
        .iter()
        .filter(|r| super::gates::own_nonmonotone(p, r) && r.op != MergeOp::Delete)
        .filter(|r| {
            let mine = |c: &CollectionId| fwd.contains(c) && fresh.contains(c);
            r.body.atoms.iter().any(|a| mine(&a.collection)) || r.body.antijoins.iter().any(|a| mine(&a.collection))
        })
        .map(|r| r.id)
        .collect();
    for _ in 0..=on_path.len() * 8 + 8 {
        let mut changed = false;
        for r in &on_path {
            let (found, transient_only) = reached(p, facts, (fwd, delayed), r, (&nd, &corrupted));
            if found.is_empty() {
                continue;
            }
            // Only a fresh arrival of another stream triggers the read; a scratch that holds
            // state races like the state it holds.
            let trigger = r.body.atoms.iter().any(|a| fresh.contains(&a.collection) && !fwd.contains(&a.collection));
            // A nonmonotone operator over the input's own fresh facts is never excused: how
            // those facts fall into ticks changes its result, whatever triggers it.
            if transient_only
                && trigger
                && !batched.contains(&r.id)
                && !persistent(p, r.target)
                && r.op == MergeOp::Instant
            {
                // A read race triggered by another stream: charged to that stream's path.
                excused = true;
                continue;
            }
            if !transient_only || persistent(p, r.target) || r.op != MergeOp::Instant {
                changed |= corrupted.insert(r.target);
            }
            changed |= merge(nd.entry(r.target).or_default(), found);
        }
        if !changed {
            break;
        }
    }
    let out_gates = nd.remove(&output).unwrap_or_default();
    let key_map = p
        .collection(output)
        .map(|c| (0..c.columns.len()).map(|i| (i, facts.lineage.closed(output, i))).collect())
        .unwrap_or_default();
    let sources: Vec<RuleId> =
        out_gates.values().flatten().copied().collect::<BTreeSet<RuleId>>().into_iter().collect();
    ModulePath {
        from: input,
        to: output,
        confluent: out_gates.is_empty(),
        stateful,
        own_batch: sources.iter().any(|r| batched.contains(r)),
        excused,
        sources,
        gates: out_gates.into_keys().collect(),
        key_map,
    }
}
