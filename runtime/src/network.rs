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

pub(crate) use crate::coordination::resolve;
pub use crate::coordination::ReadHold;
use crate::coordination::Resolved;
use crate::plan::NodePlan;
use crate::run::{build, log_changes, Changes, RunResult};
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

/// What one node instance did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NodeReport {
    pub name: String,
    pub group: String,
    pub instance: u32,
    /// Ticks, facts in (feeds and messages), outputs per tick, evaluation errors.
    pub result: RunResult,
    pub messages_in: u64,
    pub messages_out: u64,
    /// Facts a `reply(c)` wire could not deliver: column `c` named no instance.
    pub misrouted: u64,
    /// Records processed over time: after each tick, (seconds since the network started,
    /// facts in so far).
    pub timeline: Vec<(f64, u64)>,
    /// With seals enforced: seal keys released, facts that arrived after their key was
    /// released (a broken promise), and facts still held at the end (never sealed).
    pub partitions_released: u64,
    pub late: u64,
    pub held: u64,
    /// Per released seal key, the seconds from its first fact's arrival to its release.
    pub seal_waits: Vec<f64>,
    /// Across processes: facts that reached this node after it stopped (`--max-ticks`).
    #[serde(default)]
    pub undelivered: u64,
    /// Across processes: the nodes this node received data frames from, each over its own
    /// connection, and how many (a node receives facts only from the node that sent them).
    #[serde(default)]
    pub frames_from: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default)]
pub struct NetworkResult {
    pub nodes: Vec<NodeReport>,
    /// Every node went idle with no message waiting.
    pub quiescent: bool,
    /// Facts sent to a node that had already stopped (it reached `max_ticks`).
    pub undelivered: u64,
    pub elapsed_s: f64,
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

/// Records processed over time by some nodes: their timelines (after each tick, seconds
/// and facts in so far) merged into one step function, starting at (0, 0).
pub fn records_over_time<'a>(nodes: impl IntoIterator<Item = &'a NodeReport>) -> Vec<(f64, u64)> {
    let mut events: Vec<(f64, usize, u64)> = Vec::new();
    let mut count = 0;
    for (i, n) in nodes.into_iter().enumerate() {
        events.extend(n.timeline.iter().map(|(t, facts)| (*t, i, *facts)));
        count += 1;
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut latest = vec![0u64; count];
    let mut out = vec![(0.0, 0)];
    for (t, i, facts) in events {
        if let Some(x) = latest.get_mut(i) {
            *x = facts;
        }
        out.push((t, latest.iter().sum()));
    }
    out
}

/// The latency of answers at one node: for every key (first column) that output `question`
/// emitted, the seconds from the end of the tick where it first emitted it to the end of
/// the tick where output `answer` first emitted a fact with the same key (by the node's
/// timeline). Returns those latencies and how many questions got no answer.
pub fn answer_latencies(node: &NodeReport, question: &str, answer: &str) -> (Vec<f64>, u64) {
    let first = |output: &str| -> BTreeMap<Value, u64> {
        let mut at = BTreeMap::new();
        for (tick, diffs) in node.result.changes.get(output).into_iter().flatten() {
            for (row, d) in diffs {
                if let (Some(k), true) = (row.first(), *d > 0) {
                    at.entry(k.clone()).or_insert(*tick);
                }
            }
        }
        at
    };
    let asked = first(question);
    let answered = first(answer);
    let time = |t: u64| node.timeline.get(t as usize).map(|(s, _)| *s);
    let mut latencies = Vec::new();
    let mut unanswered = 0;
    for (k, t0) in asked {
        match answered.get(&k).and_then(|t1| Some((time(t0)?, time(*t1)?))) {
            Some((a, b)) => latencies.push((b - a).max(0.0)),
            None => unanswered += 1,
        }
    }
    (latencies, unanswered)
}

/// The program's coordination operators, in words (for `bloomc dump plan`): the
/// sequencers, per enforced seal its producers, their keys and its consumers, and the reads
/// held until their partition is sealed.
pub fn describe_coordination(p: &Program, plans: &[NodePlan]) -> Result<String, String> {
    use std::fmt::Write;
    let Resolved { seal, sequenced, holds } = resolve(p, plans);
    let names = |first: usize, count: usize| -> String {
        plans.iter().skip(first).take(count).map(|x| x.node_name.as_str()).collect::<Vec<_>>().join(", ")
    };
    let mut out = String::new();
    if seal.is_empty() && sequenced.is_empty() {
        out.push_str("coordination: none inserted (messages land in the receiver's next tick, in arrival order)\n");
    }
    for (first, count) in &sequenced {
        let _ = writeln!(
            out,
            "coordination: a sequencer before {}: every replica takes the same batches of input, in the same order, one batch per settled tick",
            names(*first, *count)
        );
    }
    let punctuations = crate::seal::plan(p, plans, &seal)?.punctuations;
    for (end, cols) in &seal {
        let input = p.collection(end.collection);
        let col_names: Vec<&str> =
            cols.iter().filter_map(|&c| input.and_then(|i| i.columns.get(c)).map(|x| x.name.as_str())).collect();
        let mut producers: BTreeMap<Row, usize> = BTreeMap::new();
        let (mut who, mut at_end) = (Vec::new(), Vec::new());
        let mut consumers = String::new();
        for (me, list) in punctuations.iter().enumerate() {
            for pu in list.iter().filter(|pu| pu.input == end.collection) {
                let name = plans.get(me).map_or("?", |x| x.node_name.as_str());
                if pu.at_end.is_some() {
                    at_end.push(name);
                    consumers = names(pu.to_first, pu.to_count);
                    continue;
                }
                who.push(name);
                consumers = names(pu.to_first, pu.to_count);
                for k in &pu.announce {
                    *producers.entry(k.clone()).or_default() += 1;
                }
            }
        }
        who.dedup();
        let single = producers.values().filter(|n| **n == 1).count();
        let ahead = if who.is_empty() {
            String::new()
        } else {
            format!(
                "producers {} announce their keys and seal each after the tick of its last fact; {} keys have one producer (independent seal), {} several (shared seal); ",
                who.join(", "),
                single,
                producers.len() - single
            )
        };
        let ending = if at_end.is_empty() {
            String::new()
        } else {
            format!(
                "producers {} punctuate at the end of their stream (once their feeds are done, every node that sends to them has ended and they settled, they announce and seal every key they sent); ",
                at_end.join(", ")
            )
        };
        let _ = writeln!(
            out,
            "coordination: seal {}.{} on ({}): {ahead}{ending}{} hold each key's facts until all its producers sealed it, then release them in one tick",
            p.system.iter().flat_map(|s| s.groups.iter()).find(|g| g.id == end.group).map_or("?", |g| g.name.as_str()),
            p.collection_name(end.collection),
            col_names.join(", "),
            consumers,
        );
    }
    for h in &holds {
        let first = plans.iter().position(|x| x.group == Some(h.read.group)).unwrap_or(0);
        let count = plans.iter().filter(|x| x.group == Some(h.read.group)).count();
        let input = p.collection(h.read.collection);
        let cols: Vec<&str> =
            h.columns.iter().filter_map(|&c| input.and_then(|i| i.columns.get(c)).map(|x| x.name.as_str())).collect();
        let _ = if cols.is_empty() {
            writeln!(
                out,
                "coordination: {} hold each `{}` fact until every partition of `{}` is sealed (the read does not carry the seal's key)",
                names(first, count),
                p.collection_name(h.read.collection),
                p.collection_name(h.sealed.collection)
            )
        } else {
            writeln!(
                out,
                "coordination: {} hold each `{}` fact per ({}) until that partition of `{}` is sealed",
                names(first, count),
                p.collection_name(h.read.collection),
                cols.join(", "),
                p.collection_name(h.sealed.collection)
            )
        };
    }
    Ok(out)
}

/// Whether the (rewritten) program sequences any replicated group of the network (so that
/// it asks an ordering service).
pub fn sequences_any(p: &Program, plans: &[NodePlan]) -> Result<bool, String> {
    Ok(!resolve(p, plans).sequenced.is_empty())
}

/// Runs every node of `plans` (from `plan::plan_network`) until the network is quiescent.
pub fn network(p: &Program, plans: &[NodePlan], options: &NetworkOptions) -> Result<NetworkResult, String> {
    let start = Instant::now();
    let n = plans.len();
    let Resolved { seal, sequenced, holds } = resolve(p, plans);
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
    let Resolved { seal, holds, .. } = resolve(&p, &plans);
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
        let (mut inbound, batch) = net.take(me, tick, !changed)?;
        if !(tick < feed_ticks || !inbound.is_empty() || batch || changed) {
            // Done (feeds over, settled, nothing arriving) once every node that sends to it
            // is done: an end-of-stream producer announces and seals every key it sent, and
            // the node tells those it sends to that it is done, once.
            if seals.ends.as_ref().is_none_or(crate::ends::Ends::upstream_done) {
                let mut ends: Vec<_> = seals.punctuations.iter_mut().flat_map(|pu| pu.end_of_stream(me)).collect();
                ends.extend(seals.ends.as_mut().map(|e| e.end(me)).unwrap_or_default());
                if !ends.is_empty() {
                    net.send(ends)?;
                    continue;
                }
            }
            if net.wait(me)? {
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
        let mut arriving: BTreeMap<CollectionId, Vec<Row>> = BTreeMap::new();
        for (input, payload) in inbound.drain(..) {
            let hold = seals.holds.get_mut(&input);
            let read = seals.reads.iter_mut().find(|r| r.read == input);
            match (payload, hold) {
                (Payload::End { producer }, _) => {
                    if let Some(e) = seals.ends.as_mut() {
                        e.heard(producer);
                    }
                }
                (Payload::Facts(rows), None) => {
                    report.messages_in += rows.len() as u64;
                    let now = match read {
                        Some(r) => match seals.holds.get(&r.sealed) {
                            Some(sealed) => r.facts(rows, sealed),
                            None => rows,
                        },
                        None => rows,
                    };
                    arriving.entry(input).or_default().extend(now);
                }
                (Payload::Facts(rows), Some(hold)) => {
                    report.messages_in += rows.len() as u64;
                    arriving.entry(input).or_default().extend(hold.facts(rows));
                }
                (Payload::Announce { producer, keys }, Some(hold)) => hold.announce(producer, keys),
                (Payload::Seal { producer, keys }, Some(hold)) => hold.seal(producer, keys),
                // Punctuations for an input this node does not hold: nothing to release.
                (_, None) => {}
            }
        }
        for (input, hold) in seals.holds.iter_mut() {
            let released = hold.release();
            if !released.is_empty() {
                arriving.entry(*input).or_default().extend(released);
            }
        }
        // Reads whose partition became complete, in the tick that releases it (or later).
        for r in seals.reads.iter_mut() {
            let Some(sealed) = seals.holds.get(&r.sealed) else { continue };
            let released = r.release(sealed);
            if !released.is_empty() {
                arriving.entry(r.read).or_default().extend(released);
            }
        }
        let facts;
        (facts, changed) = w.tick(worker, plan, tick, arriving, (0, 1), &mut report.result.feed_errors);
        report.result.facts_in += facts;
        // This tick's output changes and contents, then what the wires carry (sent at once):
        // a producer's announcement comes before its first facts, its seals after them.
        let mut messages = Vec::new();
        if tick == 0 {
            for pu in seals.punctuations.iter().filter(|pu| pu.at_end.is_none()) {
                for to in pu.to_first..pu.to_first + pu.to_count {
                    let announce = Payload::Announce { producer: me, keys: pu.announce.clone() };
                    messages.push((to, pu.input, announce));
                }
            }
        }
        log_changes(&w.outputs, tick, &mut log);
        for &o in &outputs {
            let contents = current.entry(o).or_default();
            for (row, d) in log.get(&o).and_then(|m| m.get(&tick)).into_iter().flatten() {
                if *d > 0 {
                    contents.insert(row.clone());
                } else {
                    contents.remove(row);
                }
            }
            if contents.is_empty() {
                continue;
            }
            for route in routes.get(&(first, o)).into_iter().flatten() {
                let mut by_dest: BTreeMap<usize, Vec<Row>> = BTreeMap::new();
                for row in contents.iter() {
                    for d in destinations(route, row, &mut report.misrouted) {
                        by_dest.entry(d).or_default().push(row.clone());
                    }
                }
                for (d, rows) in by_dest {
                    report.messages_out += rows.len() as u64;
                    for pu in seals.punctuations.iter_mut().filter(|pu| pu.input == route.input) {
                        if let (Some(end), true) = (pu.at_end.as_mut(), pu.to_first == route.first) {
                            end.sending(&rows);
                        }
                    }
                    messages.push((route.first + d, route.input, Payload::Facts(rows)));
                }
            }
        }
        for pu in &seals.punctuations {
            if let Some(keys) = pu.at_tick.get(&tick) {
                for to in pu.to_first..pu.to_first + pu.to_count {
                    messages.push((to, pu.input, Payload::Seal { producer: me, keys: keys.clone() }));
                }
            }
        }
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
    for hold in seals.holds.values() {
        report.partitions_released += hold.partitions_released;
        report.late += hold.late;
        report.held += hold.still_held();
        report.seal_waits.extend(&hold.waits);
    }
    report.held += seals.reads.iter().map(ReadWait::still_held).sum::<u64>();
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
