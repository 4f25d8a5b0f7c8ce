//! Runs a whole system as a network of asynchronous nodes in one process. Every node
//! instance is its own timely computation on its own thread, with its own clock (its ticks).
//! Nodes exchange facts over in-process channels, routed by the wires' delivery patterns;
//! what a node receives lands in its next tick.
//!
//! A node ticks while it has work: a feed batch, messages, or state that changed in its last
//! tick. Otherwise it is idle and waits for messages. The run ends when every node is idle
//! and no message is waiting (quiescence), or when a node reaches `max_ticks`. Each tick, a
//! node sends the facts each wired output holds in that tick, as `bloomc run` delivers a
//! loopback wire on one node.

use crate::coordination::operators;
use crate::coordination::Operators;
pub use crate::coordination::ReadHold;
use crate::plan::NodePlan;
use crate::report::{NetworkResult, NodeReport};
use crate::run::{build, log_changes, Changes};
use crate::seal::{Hold, Punctuations, ReadWait};
use crate::transport::{Net, Payload, Transport};
use crate::value::{Row, Value};
use bloomc_compiler::ir::{CollectionId, Delivery, Program};
use bloomc_grammar::ast::CollectionKind;
use differential_dataflow::hashable::Hashable;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// A bound on every node's ticks, so a network that never settles still ends.
    pub max_ticks: u64,
}

/// Where the facts of one output of one group go.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) input: CollectionId,
    /// Index of the destination group's first instance among the plans, and its count.
    pub(crate) first: usize,
    pub(crate) count: usize,
    pub(crate) delivery: Delivery,
}

/// The routes of every output of every group, keyed by (first instance of the group, output).
pub(crate) fn routes(p: &Program, plans: &[NodePlan]) -> BTreeMap<(usize, CollectionId), Vec<Route>> {
    let mut out: BTreeMap<(usize, CollectionId), Vec<Route>> = BTreeMap::new();
    let Some(s) = &p.system else { return out };
    let first = |g: bloomc_compiler::ir::GroupId| -> Option<(usize, usize)> {
        let group = s.groups.iter().find(|x| x.id == g)?;
        let at = plans.iter().position(|n| n.group == Some(g))?;
        Some((at, group.count as usize))
    };
    for w in &s.wires {
        if let (Some((from, _)), Some((to, count))) = (first(w.from.group), first(w.to.group)) {
            out.entry((from, w.from.collection)).or_default().push(Route {
                input: w.to.collection,
                first: to,
                count,
                delivery: w.delivery.clone(),
            });
        }
    }
    out
}

/// The instances (offsets within the destination group) a fact goes to.
pub(crate) fn destinations(route: &Route, row: &Row, misrouted: &mut u64) -> Vec<usize> {
    let n = route.count.max(1);
    match &route.delivery {
        Delivery::Broadcast => (0..n).collect(),
        Delivery::Partition(cols) => {
            let key: Row = cols.iter().filter_map(|&c| row.get(c).cloned()).collect();
            vec![(key.hashed() % n as u64) as usize]
        }
        Delivery::Any => vec![(row.hashed() % n as u64) as usize],
        Delivery::Reply(col) => match row.get(*col) {
            Some(Value::Int(i)) if *i >= 0 && (*i as usize) < n => vec![*i as usize],
            _ => {
                *misrouted += 1;
                Vec::new()
            }
        },
    }
}

/// Runs every node of `plans` (from `plan::plan_network`) until the network is quiescent.
pub fn network(p: &Program, plans: &[NodePlan], options: &NetworkOptions) -> Result<NetworkResult, String> {
    let start = Instant::now();
    let n = plans.len();
    let Operators { seal, sequenced, holds } = operators(p, plans);
    let net = Arc::new(Net::new(n, &sequenced));
    let mut seal_plan = crate::seal::plan(p, plans, &seal)?;
    let routes = Arc::new(routes(p, plans));
    let program = Arc::new(p.clone());
    let mut handles = Vec::new();
    for (me, plan) in plans.iter().enumerate() {
        let (net, routes, program, plan) = (net.clone(), routes.clone(), program.clone(), plan.clone());
        let (first, seals) = share(plans, me, &mut seal_plan, &holds);
        let max_ticks = options.max_ticks;
        let name = plan.node_name.clone();
        let handle = std::thread::Builder::new()
            .name(format!("node {name}"))
            .spawn(move || {
                timely::execute_directly(move |worker| {
                    node(worker, &program, &plan, me, first, &*net, &routes, max_ticks, start, seals)
                })
            })
            .map_err(|e| format!("cannot start node `{name}`: {e}"))?;
        handles.push((me, handle));
    }
    let mut result = NetworkResult::default();
    let mut failures = Vec::new();
    for (me, h) in handles {
        let name = plans.get(me).map_or("?", |x| x.node_name.as_str());
        match h.join() {
            Ok(Ok(report)) => result.nodes.push(report),
            Ok(Err(e)) => failures.push(format!("node `{name}` failed: {e}")),
            Err(_) => failures.push(format!("node `{name}` panicked (an internal error)")),
        }
    }
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    let (done, undelivered) = net.outcome();
    result.quiescent = done && result.nodes.iter().all(|r| r.result.quiescent);
    result.undelivered = undelivered;
    result.elapsed_s = start.elapsed().as_secs_f64();
    Ok(result)
}

/// Runs node `me` of `plans` in this thread, reaching the rest of the network through
/// `transport` (a node in its own process: see `remote.rs`).
pub fn run_node(
    p: Program,
    plans: Vec<NodePlan>,
    me: usize,
    transport: Arc<dyn Transport + Send + Sync>,
    options: &NetworkOptions,
) -> Result<NodeReport, String> {
    let start = Instant::now();
    let Operators { seal, holds, .. } = operators(&p, &plans);
    let mut seal_plan = crate::seal::plan(&p, &plans, &seal)?;
    let routes = routes(&p, &plans);
    let plan = plans.get(me).cloned().ok_or("internal error: no such node")?;
    let (first, seals) = share(&plans, me, &mut seal_plan, &holds);
    let max_ticks = options.max_ticks;
    timely::execute_directly(move |worker| {
        node(worker, &p, &plan, me, first, &*transport, &routes, max_ticks, start, seals)
    })
}

/// Node `me`'s share of a network's plan: the first plan of its group, and its part of the
/// seal plan (taken out of it), with the reads it holds for a sealed input it holds.
fn share(plans: &[NodePlan], me: usize, plan: &mut crate::seal::SealPlan, reads: &[ReadHold]) -> (usize, Seals) {
    let crate::seal::SealPlan { punctuations, holds, ends } = plan;
    let group = plans.get(me).and_then(|x| x.group);
    let first = plans.iter().position(|x| x.group == group).unwrap_or(me);
    let holds: BTreeMap<CollectionId, Hold> = holds.get_mut(me).map(std::mem::take).unwrap_or_default();
    let reads = reads
        .iter()
        .filter(|r| Some(r.read.group) == group && holds.contains_key(&r.sealed.collection))
        .map(|r| ReadWait::new(r.read.collection, r.sealed.collection, r.columns.clone()))
        .collect();
    let seals = Seals {
        punctuations: punctuations.get_mut(me).map(std::mem::take).unwrap_or_default(),
        holds,
        reads,
        ends: ends.get_mut(me).and_then(Option::take),
    };
    (first, seals)
}

/// What one node does for enforced seals: punctuate as a producer, hold as a consumer, and
/// hold the reads that a seal protects.
struct Seals {
    punctuations: Vec<Punctuations>,
    holds: BTreeMap<CollectionId, Hold>,
    reads: Vec<ReadWait>,
    /// Whose ends this node waits for before it is done, and whom it tells its own.
    ends: Option<crate::ends::Ends>,
}

/// A message to send: the destination node, its input, what it carries.
type Message = (usize, CollectionId, Payload);

impl Seals {
    /// What arrived, sorted: ends heard, facts (held until their key is sealed, or until
    /// the partition a held read waits for is), punctuations; then what the holds and the
    /// reads release this tick. Counts the facts that arrived in `messages_in`.
    fn arriving(
        &mut self,
        inbound: Vec<(CollectionId, Payload)>,
        messages_in: &mut u64,
    ) -> BTreeMap<CollectionId, Vec<Row>> {
        let mut arriving: BTreeMap<CollectionId, Vec<Row>> = BTreeMap::new();
        for (input, payload) in inbound {
            let hold = self.holds.get_mut(&input);
            let read = self.reads.iter_mut().find(|r| r.read == input);
            match (payload, hold) {
                (Payload::End { producer }, _) => {
                    if let Some(e) = self.ends.as_mut() {
                        e.heard(producer);
                    }
                }
                (Payload::Facts(rows), None) => {
                    *messages_in += rows.len() as u64;
                    let now = match read {
                        Some(r) => match self.holds.get(&r.sealed) {
                            Some(sealed) => r.facts(rows, sealed),
                            None => rows,
                        },
                        None => rows,
                    };
                    arriving.entry(input).or_default().extend(now);
                }
                (Payload::Facts(rows), Some(hold)) => {
                    *messages_in += rows.len() as u64;
                    arriving.entry(input).or_default().extend(hold.facts(rows));
                }
                (Payload::Announce { producer, keys }, Some(hold)) => hold.announce(producer, keys),
                (Payload::Seal { producer, keys }, Some(hold)) => hold.seal(producer, keys),
                // Punctuations for an input this node does not hold: nothing to release.
                (_, None) => {}
            }
        }
        for (input, hold) in self.holds.iter_mut() {
            let released = hold.release();
            if !released.is_empty() {
                arriving.entry(*input).or_default().extend(released);
            }
        }
        // Reads whose partition became complete, in the tick that releases it (or later).
        for r in self.reads.iter_mut() {
            let Some(sealed) = self.holds.get(&r.sealed) else { continue };
            let released = r.release(sealed);
            if !released.is_empty() {
                arriving.entry(r.read).or_default().extend(released);
            }
        }
        arriving
    }

    /// An idle node (feeds over, settled, nothing arriving) is done once every node that
    /// sends to it is done: an end-of-stream producer then announces and seals every key it
    /// sent, and the node tells those it sends to that it is done, once. Otherwise it waits
    /// for messages. Returns whether the network is done.
    fn idle(&mut self, net: &dyn Transport, me: usize) -> Result<bool, String> {
        if self.ends.as_ref().is_none_or(crate::ends::Ends::upstream_done) {
            let mut ends: Vec<_> = self.punctuations.iter_mut().flat_map(|pu| pu.end_of_stream(me)).collect();
            ends.extend(self.ends.as_mut().map(|e| e.end(me)).unwrap_or_default());
            if !ends.is_empty() {
                net.send(ends)?;
                return Ok(false);
            }
        }
        net.wait(me)
    }

    /// A producer's announcements of its keys, sent before its first facts.
    fn announcements(&self, me: usize) -> Vec<Message> {
        let mut messages = Vec::new();
        for pu in self.punctuations.iter().filter(|pu| pu.at_end.is_none()) {
            for to in pu.to_first..pu.to_first + pu.to_count {
                messages.push((to, pu.input, Payload::Announce { producer: me, keys: pu.announce.clone() }));
            }
        }
        messages
    }

    /// The facts an output holds this tick, along one route: one message per destination
    /// (an end-of-stream producer notes what it sends, to seal it at the end).
    fn route(&mut self, route: &Route, contents: &BTreeSet<Row>, report: &mut NodeReport) -> Vec<Message> {
        let mut by_dest: BTreeMap<usize, Vec<Row>> = BTreeMap::new();
        for row in contents {
            for d in destinations(route, row, &mut report.misrouted) {
                by_dest.entry(d).or_default().push(row.clone());
            }
        }
        let mut messages = Vec::new();
        for (d, rows) in by_dest {
            report.messages_out += rows.len() as u64;
            for pu in self.punctuations.iter_mut().filter(|pu| pu.input == route.input) {
                if let (Some(end), true) = (pu.at_end.as_mut(), pu.to_first == route.first) {
                    end.sending(&rows);
                }
            }
            messages.push((route.first + d, route.input, Payload::Facts(rows)));
        }
        messages
    }

    /// The seals a producer sends after the tick of its keys' last facts.
    fn sealed_at(&self, tick: u64, me: usize) -> Vec<Message> {
        let mut messages = Vec::new();
        for pu in &self.punctuations {
            if let Some(keys) = pu.at_tick.get(&tick) {
                for to in pu.to_first..pu.to_first + pu.to_count {
                    messages.push((to, pu.input, Payload::Seal { producer: me, keys: keys.clone() }));
                }
            }
        }
        messages
    }

    /// What the holds did, into the node's report.
    fn count(&self, report: &mut NodeReport) {
        for hold in self.holds.values() {
            report.partitions_released += hold.partitions_released;
            report.late += hold.late;
            report.held += hold.still_held();
            report.seal_waits.extend(&hold.waits);
        }
        report.held += self.reads.iter().map(ReadWait::still_held).sum::<u64>();
    }
}

/// One node's life: tick while there is work, wait while idle, stop when the network is done.
#[allow(clippy::too_many_arguments)]
fn node(
    worker: &mut timely::worker::Worker,
    p: &Program,
    plan: &NodePlan,
    me: usize,
    first: usize,
    net: &dyn Transport,
    routes: &BTreeMap<(usize, CollectionId), Vec<Route>>,
    max_ticks: u64,
    start: Instant,
    mut seals: Seals,
) -> Result<NodeReport, String> {
    let mut w = match build(worker, p, plan) {
        Ok(w) => w,
        Err(e) => {
            // The build's error is the one to report, whatever stopping says.
            let _ = net.stop(me, 0);
            return Err(e);
        }
    };
    let group = p.system.as_ref().and_then(|s| s.groups.iter().find(|g| Some(g.id) == plan.group));
    let mut report = NodeReport {
        name: plan.node_name.clone(),
        group: group.map(|g| g.name.clone()).unwrap_or_default(),
        instance: plan.instance,
        ..NodeReport::default()
    };
    let feed_ticks = plan.feed_ticks();
    let outputs = plan.collections(p, CollectionKind::Output);
    let mut current: BTreeMap<CollectionId, BTreeSet<Row>> = BTreeMap::new();
    let mut log: BTreeMap<CollectionId, Changes> = BTreeMap::new();
    let mut errors: BTreeSet<Row> = BTreeSet::new();
    let (mut tick, mut changed, mut stopped_early) = (0u64, false, false);
    loop {
        let (inbound, batch) = net.take(me, tick, !changed)?;
        if !(tick < feed_ticks || !inbound.is_empty() || batch || changed) {
            if seals.idle(net, me)? {
                break;
            }
            continue;
        }
        if tick >= max_ticks {
            stopped_early = true;
            // What it had just taken is never processed: counted as undelivered.
            let taken: u64 = inbound.iter().map(|(_, m)| m.facts()).sum();
            net.stop(me, taken)?;
            break;
        }
        let arriving = seals.arriving(inbound, &mut report.messages_in);
        let facts;
        (facts, changed) = w.tick(worker, plan, tick, arriving, (0, 1), &mut report.result.feed_errors);
        report.result.facts_in += facts;
        // This tick's output changes and contents, then what the wires carry (sent at once):
        // a producer's announcement comes before its first facts, its seals after them.
        log_changes(&w.outputs, tick, &mut log);
        let mut messages = if tick == 0 { seals.announcements(me) } else { Vec::new() };
        for &o in &outputs {
            let contents = current.entry(o).or_default();
            for (row, d) in log.get(&o).and_then(|m| m.get(&tick)).into_iter().flatten() {
                if *d > 0 {
                    contents.insert(row.clone());
                } else {
                    contents.remove(row);
                }
            }
            for route in routes.get(&(first, o)).into_iter().flatten() {
                messages.extend(seals.route(route, contents, &mut report));
            }
        }
        messages.extend(seals.sealed_at(tick, me));
        if !messages.is_empty() {
            net.send(std::mem::take(&mut messages))?;
        }
        let errs = std::mem::take(&mut *w.errors.borrow_mut());
        errors.extend(errs.into_iter().filter(|(_, _, t, d)| *d > 0 && *t <= tick).map(|(_, r, _, _)| r));
        report.timeline.push((start.elapsed().as_secs_f64(), report.result.facts_in));
        tick += 1;
    }
    report.result.rejected = w.rejected(p);
    w.close(worker);
    seals.count(&mut report);
    report.result.ticks = tick;
    report.result.quiescent = !stopped_early;
    report.result.gathered = true;
    report.result.eval_errors = errors.len() as u64;
    report.result.error_rows = errors;
    for &o in &outputs {
        report.result.changes.insert(p.collection_name(o).to_string(), log.remove(&o).unwrap_or_default());
    }
    Ok(report)
}
