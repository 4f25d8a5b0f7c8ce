//! One schedule of a whole program, simulated deterministically: every node instance is a
//! naive evaluator (`sim::naive`), every fact in flight is an item in its receiver's
//! mailbox, and a [`Chooser`] decides each step: which node ticks, which of its waiting
//! facts it takes in that tick, when a sequencer cuts a batch. The same choices give the
//! same run, so a schedule is replayable from its choices (or from the seed that drew them).
//!
//! Two families of schedules are simulated:
//! - **general**: what a network can do. Facts of feeds and wires arrive in any order and
//!   any batching, nodes interleave freely, and a fact may wait any number of the receiver's
//!   ticks. The coordination of the run constrains it: a sealed input releases a key's facts
//!   in one tick once every producer of the stream is done (as late as a seal may come; a
//!   fed input's keys are complete from the start), and a sequenced replicated group takes
//!   the same batches in the same order on every replica.
//! - **complete-input**: every input's facts arrive together. A node takes an input's
//!   waiting facts only all at once, only when every producer of that input is done (a
//!   feed is complete from the start), and then with every other complete input: on one
//!   node, every feed in the first tick. Where a cycle makes waiting impossible, it takes
//!   what is there. Once everything has settled, every feed delivers its facts once more,
//!   so that what they trigger reads state that already holds every fact (state filled by
//!   `<+` lags a tick behind its input). Only the interleaving of nodes is left to choose.
//!   The facts these runs emit are the reference of "may miss facts, never a wrong one".

use super::choose::split;
pub use super::choose::{Chooser, Script, Seeded};
use super::naive::Node;
use super::sequencer::{Item, Sequencer};
pub use super::Setup;
use crate::network::destinations;
use crate::value::Row;
use bloomc_compiler::ir::CollectionId;
use std::collections::{BTreeMap, BTreeSet};

/// Which family a schedule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    General,
    CompleteInput,
}

/// One tick of one node, for traces.
#[derive(Debug, Clone)]
pub struct StepLog {
    pub node: usize,
    pub tick: u64,
    pub took: Vec<Item>,
    pub emitted: BTreeMap<CollectionId, BTreeSet<Row>>,
}

#[derive(Debug, Clone)]
struct NodeState {
    node: Node,
    /// Facts waiting, in arrival order, without repeats.
    pending: Vec<Item>,
    /// Facts of sealed inputs, per (input, seal key).
    held: BTreeMap<(CollectionId, Row), Vec<Row>>,
    /// Facts of held reads, per (read input, key), and the seal keys released here.
    parked: BTreeMap<(CollectionId, Row), Vec<Row>>,
    released: BTreeSet<(CollectionId, Row)>,
    /// Reads are held (general schedules; complete inputs need no hold).
    hold_reads: bool,
    /// The last tick changed the state carried into the next one.
    work: bool,
    /// Sequenced replicas: the next batch to take.
    cursor: usize,
    stopped: bool,
}

/// What one schedule did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Per (node, output), every fact it emitted over the run.
    pub emitted: BTreeMap<(usize, CollectionId), BTreeSet<Row>>,
    /// Per node, what each output held in each of its ticks (for replica agreement).
    pub per_tick: Vec<Vec<BTreeMap<CollectionId, BTreeSet<Row>>>>,
    /// Ticks over all nodes.
    pub ticks: u64,
    /// A node stopped at the tick bound with work left.
    pub truncated: bool,
    /// Seal keys released only because nothing else could move (a cycle through a seal).
    pub forced: u64,
    pub log: Vec<StepLog>,
}

enum Action {
    Tick(usize),
    Cut(usize),
    Force,
}

/// Runs one schedule to quiescence (or the tick bound), with `choose` deciding every step.
pub fn simulate(setup: &Setup<'_>, family: Family, choose: &mut dyn Chooser, trace: bool) -> Outcome {
    let mut nodes: Vec<NodeState> = setup
        .plans
        .iter()
        .map(|plan| NodeState {
            node: Node::new(plan.clone()),
            pending: Vec::new(),
            held: BTreeMap::new(),
            parked: BTreeMap::new(),
            released: BTreeSet::new(),
            hold_reads: family == Family::General,
            work: false,
            cursor: 0,
            stopped: false,
        })
        .collect();
    let mut seqs: BTreeMap<usize, Sequencer> = setup.sequenced.keys().map(|f| (*f, Sequencer::new(*f))).collect();
    if family == Family::CompleteInput {
        // Whole inputs arrive at once, so replicas see the same batches without a sequencer.
        seqs.clear();
    }
    let mut out = Outcome { per_tick: vec![Vec::new(); nodes.len()], ..Outcome::default() };
    for (i, rows) in setup.feed_rows.iter().enumerate() {
        for (input, row) in rows {
            // A sequenced replica's own feed goes through its group's sequencer too, so
            // every replica takes its feed's facts in the same batches.
            match setup.sequenced_first(i).and_then(|f| seqs.get_mut(&f).map(|s| (f, s))) {
                Some((f, s)) => s.stage(setup, i - f, (*input, row.clone())),
                None => arrive(setup, &mut nodes, i, *input, row.clone()),
            }
        }
    }
    let mut forced = false;
    let mut repeated = false;
    loop {
        let done = done_nodes(setup, &nodes, &seqs);
        for s in seqs.values_mut() {
            let first = s.first;
            s.release(setup, &|c| forced || complete(setup, &done, first, c));
        }
        let mut actions: Vec<Action> = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            if !n.stopped && can_tick(setup, family, &seqs, &done, forced, i, n) {
                actions.push(Action::Tick(i));
            }
        }
        if family == Family::General {
            actions.extend(seqs.iter().filter(|(_, s)| s.cuttable()).map(|(f, _)| Action::Cut(*f)));
        }
        if actions.is_empty() {
            let waiting = nodes
                .iter()
                .any(|n| !n.stopped && (!n.held.is_empty() || !n.pending.is_empty() || !n.parked.is_empty()))
                || seqs.values().any(Sequencer::holding);
            if waiting && !forced {
                actions.push(Action::Force);
            } else if family == Family::CompleteInput && !repeated {
                // Once settled, every feed delivers its facts again: a read they trigger now
                // sees state that already holds every fact (a `<+` lags a tick behind).
                repeated = true;
                for (i, rows) in setup.feed_rows.iter().enumerate() {
                    for (input, row) in rows {
                        arrive(setup, &mut nodes, i, *input, row.clone());
                    }
                }
                continue;
            } else {
                break;
            }
        }
        let pick = choose.pick(actions.len());
        match actions.get(pick) {
            Some(Action::Tick(i)) => {
                let i = *i;
                let took = take(setup, family, &mut nodes, &mut seqs, &done, forced, i, choose);
                run_tick(setup, &mut nodes, &mut seqs, i, took, &mut out, trace);
                forced = false;
            }
            Some(Action::Cut(f)) => {
                if let Some(s) = seqs.get_mut(f) {
                    s.cut(choose);
                }
            }
            Some(Action::Force) => {
                forced = true;
                out.forced += 1;
            }
            None => break,
        }
    }
    out.truncated = nodes.iter().any(|n| n.stopped);
    out
}

/// A fact arrives at node `to`'s input: held per key when the input is sealed, else waiting.
fn arrive(setup: &Setup<'_>, nodes: &mut [NodeState], to: usize, input: CollectionId, row: Row) {
    let Some(n) = nodes.get_mut(to) else { return };
    if let (Some((sealed, cols)), true) = (setup.reads.get(&(to, input)), n.hold_reads) {
        let key: Row = cols.iter().filter_map(|&c| row.get(c).cloned()).collect();
        if !n.released.contains(&(*sealed, key.clone())) {
            let slot = n.parked.entry((input, key)).or_default();
            if !slot.contains(&row) {
                slot.push(row);
            }
            return;
        }
    }
    if let Some(cols) = setup.seals.get(&(to, input)) {
        let key: Row = cols.iter().filter_map(|&c| row.get(c).cloned()).collect();
        let slot = n.held.entry((input, key)).or_default();
        if !slot.contains(&row) {
            slot.push(row);
        }
    } else if !n.pending.iter().any(|(i, r)| *i == input && *r == row) {
        n.pending.push((input, row));
    }
}

/// Nodes that will send nothing more: not downstream (by wires) of a node that still has
/// work, waiting facts, held facts or batches to take.
fn done_nodes(setup: &Setup<'_>, nodes: &[NodeState], seqs: &BTreeMap<usize, Sequencer>) -> Vec<bool> {
    let mut live: Vec<bool> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let seq = setup.sequenced_first(i).and_then(|f| seqs.get(&f));
            !n.stopped
                && (n.work
                    || !n.pending.is_empty()
                    || !n.held.is_empty()
                    || !n.parked.is_empty()
                    || seq.is_some_and(|s| s.cuttable() || s.holding() || n.cursor < s.batches.len()))
        })
        .collect();
    let mut queue: Vec<usize> = (0..nodes.len()).filter(|&i| live.get(i) == Some(&true)).collect();
    while let Some(i) = queue.pop() {
        let Some(&f) = setup.first.get(i) else { continue };
        for ((from, _), rs) in setup.routes.range((f, CollectionId(0))..) {
            if *from != f {
                break;
            }
            for r in rs {
                for to in r.first..r.first + r.count {
                    if let Some(l) = live.get_mut(to) {
                        if !*l {
                            *l = true;
                            queue.push(to);
                        }
                    }
                }
            }
        }
    }
    live.into_iter().map(|l| !l).collect()
}

/// Is every producer of (node, input) done? A fed input with no wire is complete at once.
fn complete(setup: &Setup<'_>, done: &[bool], node: usize, input: CollectionId) -> bool {
    setup.producers.get(&(node, input)).is_none_or(|ps| ps.iter().all(|&p| p != node && done.get(p) == Some(&true)))
}

fn can_tick(
    setup: &Setup<'_>,
    family: Family,
    seqs: &BTreeMap<usize, Sequencer>,
    done: &[bool],
    forced: bool,
    i: usize,
    n: &NodeState,
) -> bool {
    if n.work {
        return true;
    }
    if let (Family::General, Some(s)) = (family, setup.sequenced_first(i).and_then(|f| seqs.get(&f))) {
        return n.cursor < s.batches.len();
    }
    let releasable = n.held.keys().any(|(input, _)| forced || complete(setup, done, i, *input));
    let readable = n.parked.keys().any(|k| forced || read_ready(setup, done, i, n, k));
    match family {
        Family::General => !n.pending.is_empty() || releasable || readable,
        Family::CompleteInput => {
            releasable || n.pending.iter().any(|(input, _)| forced || complete(setup, done, i, *input))
        }
    }
}

/// The facts node `i` takes in the tick it is about to run.
#[allow(clippy::too_many_arguments)]
fn take(
    setup: &Setup<'_>,
    family: Family,
    nodes: &mut [NodeState],
    seqs: &mut BTreeMap<usize, Sequencer>,
    done: &[bool],
    forced: bool,
    i: usize,
    choose: &mut dyn Chooser,
) -> Vec<Item> {
    let Some(n) = nodes.get_mut(i) else { return Vec::new() };
    let nonempty = !n.work;
    if family == Family::General {
        if let Some(s) = setup.sequenced_first(i).and_then(|f| seqs.get(&f)) {
            // A replica takes the next batch only once it has settled.
            if n.work {
                return Vec::new();
            }
            let offset = i - setup.first.get(i).copied().unwrap_or(i);
            let batch = s.batches.get(n.cursor).cloned().unwrap_or_default();
            n.cursor += 1;
            return batch.into_iter().filter(|(_, to)| to.contains(&offset)).map(|(it, _)| it).collect();
        }
        let keys: Vec<(CollectionId, Row)> =
            n.held.keys().filter(|(input, _)| forced || complete(setup, done, i, *input)).cloned().collect();
        let reads: Vec<(CollectionId, Row)> =
            n.parked.keys().filter(|k| forced || read_ready(setup, done, i, n, k)).cloned().collect();
        // One unit per waiting fact, per releasable seal key and per ready read key.
        let units: Vec<Unit> = std::mem::take(&mut n.pending)
            .into_iter()
            .map(Unit::Fact)
            .chain(keys.into_iter().map(Unit::Key))
            .chain(reads.into_iter().map(Unit::Read))
            .collect();
        let (taken, left) = split(units, choose, nonempty);
        n.pending = left.into_iter().filter_map(|u| if let Unit::Fact(f) = u { Some(f) } else { None }).collect();
        let mut took: Vec<Item> = taken.into_iter().flat_map(|u| release(n, u)).collect();
        // A read whose partition was released in this tick is taken with it (a read without
        // the seal's key, with the last partition).
        let now: Vec<(CollectionId, Row)> = n
            .parked
            .keys()
            .filter(|(read, key)| {
                setup.reads.get(&(i, *read)).is_some_and(|(s, cols)| match cols.is_empty() {
                    true => all_taken(setup, done, i, n, *s),
                    false => n.released.contains(&(*s, key.clone())),
                })
            })
            .cloned()
            .collect();
        for k in now {
            took.extend(release(n, Unit::Read(k)));
        }
        return took;
    }
    // Complete-input: whole inputs, once complete.
    let mut inputs: BTreeSet<CollectionId> = n.pending.iter().map(|(c, _)| *c).collect();
    inputs.extend(n.held.keys().map(|(c, _)| *c));
    // Every complete input at once: the most a tick can know. (Where a cycle forces a
    // node to take what is there, it takes every input too.)
    let ready: Vec<CollectionId> = inputs.into_iter().filter(|&c| forced || complete(setup, done, i, c)).collect();
    let mut took = Vec::new();
    for c in ready {
        let (mine, rest): (Vec<Item>, Vec<Item>) =
            std::mem::take(&mut n.pending).into_iter().partition(|(x, _)| *x == c);
        n.pending = rest;
        took.extend(mine);
        let keys: Vec<(CollectionId, Row)> = n.held.keys().filter(|(x, _)| *x == c).cloned().collect();
        for k in keys {
            took.extend(release(n, Unit::Key(k)));
        }
    }
    took
}

/// What a node may take in a tick: a waiting fact, a seal key's facts, a read key's facts.
enum Unit {
    Fact(Item),
    Key((CollectionId, Row)),
    Read((CollectionId, Row)),
}

fn release(n: &mut NodeState, unit: Unit) -> Vec<Item> {
    match unit {
        Unit::Fact(item) => vec![item],
        Unit::Key(key) => {
            let input = key.0;
            let facts = n.held.remove(&key).unwrap_or_default();
            n.released.insert(key);
            facts.into_iter().map(|r| (input, r)).collect()
        }
        Unit::Read(key) => {
            let input = key.0;
            n.parked.remove(&key).unwrap_or_default().into_iter().map(|r| (input, r)).collect()
        }
    }
}

/// May the parked read key be taken: its partition released here, or the sealed input
/// complete with nothing held for the key (no producer sent it)?
fn read_ready(setup: &Setup<'_>, done: &[bool], i: usize, n: &NodeState, (read, key): &(CollectionId, Row)) -> bool {
    let Some((sealed, cols)) = setup.reads.get(&(i, *read)) else { return true };
    if cols.is_empty() {
        // A read without the seal's key waits for every partition.
        return all_taken(setup, done, i, n, *sealed);
    }
    let k = (*sealed, key.clone());
    n.released.contains(&k) || (!n.held.contains_key(&k) && complete(setup, done, i, *sealed))
}

/// Has node `i` taken every partition of sealed input `sealed`: its producers are done and
/// none of its keys is still held?
fn all_taken(setup: &Setup<'_>, done: &[bool], i: usize, n: &NodeState, sealed: CollectionId) -> bool {
    complete(setup, done, i, sealed) && !n.held.keys().any(|(c, _)| *c == sealed)
}

/// Runs node `i`'s tick on `took` and routes what it emits.
fn run_tick(
    setup: &Setup<'_>,
    nodes: &mut [NodeState],
    seqs: &mut BTreeMap<usize, Sequencer>,
    i: usize,
    took: Vec<Item>,
    out: &mut Outcome,
    trace: bool,
) {
    let Some(n) = nodes.get_mut(i) else { return };
    if n.node.ticks >= setup.max_ticks {
        n.stopped = true;
        return;
    }
    let tick = n.node.ticks;
    let result = n.node.tick(setup.program, &took);
    n.work = result.changed;
    out.ticks += 1;
    for (o, facts) in &result.outputs {
        out.emitted.entry((i, *o)).or_default().extend(facts.iter().cloned());
    }
    if let Some(v) = out.per_tick.get_mut(i) {
        v.push(result.outputs.clone());
    }
    let from = setup.first.get(i).copied().unwrap_or(i);
    let mut misrouted = 0;
    for (o, facts) in &result.outputs {
        for r in setup.routes.get(&(from, *o)).into_iter().flatten() {
            for fact in facts {
                for offset in destinations(r, fact, &mut misrouted) {
                    let to = r.first + offset;
                    if let Some(s) = seqs.get_mut(&r.first) {
                        s.stage(setup, offset, (r.input, fact.clone()));
                    } else {
                        arrive(setup, nodes, to, r.input, fact.clone());
                    }
                }
            }
        }
    }
    if trace {
        out.log.push(StepLog { node: i, tick, took, emitted: result.outputs });
    }
}
