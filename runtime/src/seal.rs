//! Seals enforced at run time: for every `hold G.I until sealed on (cols)` of the system,
//! the producers that `punctuate` the wires into `I` announce and seal their keys, and every
//! instance of `G` holds the facts of `I` per seal key until every producer of that key has
//! sealed it, then releases the key's facts in one tick.
//!
//! Producers. A producer that copies a generated feed onto the wired output (one `<=` rule
//! `O <= from X ...` whose sealed columns are plain columns of `X`, and `X` fed by a
//! generator) punctuates each key as soon as it is done: before the run, it evaluates its
//! feed and learns which seal keys it will send and the last tick of each (rows its filters
//! drop count too, so the promise is conservative, never early). It announces its keys
//! before it sends anything, and after the tick holding a key's last row it seals that key.
//! Any other producer that no cycle of wires reaches punctuates at the end of its stream:
//! once its feeds are done, a tick changed nothing and every node that sends to it has sent
//! its last message (`ends.rs`), it can send nothing more, so it announces every key it sent
//! and seals them all. A producer on a cycle of wires, or downstream of one, cannot tell when
//! it is done, and is refused unless it copies a generated feed. A key one producer alone
//! sends needs only that producer's seal (the paper's independent seal); a key every
//! producer sends needs all of them.
//!
//! Consumers hold nothing else: other inputs are delivered as they come. A fact arriving
//! for a key already released breaks a producer's promise; it is delivered and counted as
//! late. Facts still held when the run ends are counted and reported, never dropped silently.

use crate::feed::Source;
use crate::plan::NodePlan;
use crate::value::Row;
use bloomc_compiler::ir::{CollectionId, Endpoint, ExprKind, Program};
use bloomc_grammar::ast::MergeOp;
use std::collections::{BTreeMap, BTreeSet};

/// What one producer node sends to one sealed input.
#[derive(Debug, Clone)]
pub(crate) struct Punctuations {
    /// The consumer group's first node and its instance count.
    pub to_first: usize,
    pub to_count: usize,
    pub input: CollectionId,
    pub announce: Vec<Row>,
    /// The keys to seal after each tick.
    pub at_tick: BTreeMap<u64, Vec<Row>>,
    /// End-of-stream punctuation: nothing announced ahead; the seal columns of the rows sent
    /// are collected in `sent`, then announced and sealed once the producer is done.
    pub at_end: Option<EndOfStream>,
}

/// What an end-of-stream producer collects: its seal columns (positions in the wire's
/// stream), the keys it sent, and whether it has punctuated.
#[derive(Debug, Clone, Default)]
pub(crate) struct EndOfStream {
    pub cols: Vec<usize>,
    pub sent: BTreeSet<Row>,
    pub done: bool,
}

impl Punctuations {
    /// For an end-of-stream producer not yet done: its announcement of every key it sent,
    /// then their seals, to every consumer instance; marks it done.
    pub(crate) fn end_of_stream(&mut self, me: usize) -> Vec<(usize, CollectionId, crate::transport::Payload)> {
        use crate::transport::Payload;
        let Some(end) = self.at_end.as_mut().filter(|e| !e.done) else { return Vec::new() };
        end.done = true;
        let keys: Vec<Row> = end.sent.iter().cloned().collect();
        let mut out = Vec::new();
        for to in self.to_first..self.to_first + self.to_count {
            out.push((to, self.input, Payload::Announce { producer: me, keys: keys.clone() }));
            out.push((to, self.input, Payload::Seal { producer: me, keys: keys.clone() }));
        }
        out
    }
}

impl EndOfStream {
    /// Notes the keys of rows sent on the wire.
    pub(crate) fn sending(&mut self, rows: &[Row]) {
        for row in rows {
            self.sent.insert(self.cols.iter().filter_map(|&c| row.get(c).cloned()).collect());
        }
    }
}

/// One consumer node's hold on one sealed input.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hold {
    cols: Vec<usize>,
    /// Every producer node of the input (all must announce before anything is released).
    producers: BTreeSet<usize>,
    announced: BTreeMap<usize, BTreeSet<Row>>,
    sealed: BTreeMap<Row, BTreeSet<usize>>,
    held: BTreeMap<Row, Vec<Row>>,
    released: BTreeSet<Row>,
    /// Keys sealed by some producer since the last release check: the only ones that can
    /// have become releasable.
    pending: BTreeSet<Row>,
    pub late: u64,
    pub partitions_released: u64,
    /// When each held key's first fact arrived, and how long each released key waited from
    /// then to its release (seconds): what a seal costs in latency.
    first: BTreeMap<Row, std::time::Instant>,
    pub waits: Vec<f64>,
}

impl Hold {
    fn key(&self, row: &Row) -> Row {
        self.cols.iter().filter_map(|&c| row.get(c).cloned()).collect()
    }

    /// Facts arriving: held per key, or delivered at once (returned) if the key is released.
    pub(crate) fn facts(&mut self, rows: Vec<Row>) -> Vec<Row> {
        let mut now = Vec::new();
        for row in rows {
            let key = self.key(&row);
            if self.released.contains(&key) {
                self.late += 1;
                now.push(row);
            } else {
                self.first.entry(key.clone()).or_insert_with(std::time::Instant::now);
                self.held.entry(key).or_default().push(row);
            }
        }
        now
    }

    pub(crate) fn announce(&mut self, producer: usize, keys: Vec<Row>) {
        self.announced.entry(producer).or_default().extend(keys);
    }

    pub(crate) fn seal(&mut self, producer: usize, keys: Vec<Row>) {
        for k in keys {
            self.sealed.entry(k.clone()).or_default().insert(producer);
            self.pending.insert(k);
        }
    }

    /// The facts of every key that all its producers have sealed, released once.
    pub(crate) fn release(&mut self) -> Vec<Row> {
        if !self.producers.iter().all(|p| self.announced.contains_key(p)) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for key in std::mem::take(&mut self.pending) {
            if self.released.contains(&key) {
                continue;
            }
            let sealed = self.sealed.get(&key);
            let done = self
                .announced
                .iter()
                .filter(|(_, keys)| keys.contains(&key))
                .all(|(p, _)| sealed.is_some_and(|s| s.contains(p)));
            if done {
                out.extend(self.held.remove(&key).unwrap_or_default());
                if let Some(t) = self.first.remove(&key) {
                    self.waits.push(t.elapsed().as_secs_f64());
                }
                self.released.insert(key);
                self.partitions_released += 1;
            }
        }
        out
    }

    /// Facts still held (their keys were never sealed by every producer).
    pub(crate) fn still_held(&self) -> u64 {
        self.held.values().map(|v| v.len() as u64).sum()
    }

    /// Is the partition of `key` complete here: every producer has announced its keys, and
    /// the key has been released or no producer will send it?
    pub(crate) fn complete(&self, key: &Row) -> bool {
        self.producers.iter().all(|p| self.announced.contains_key(p))
            && (self.released.contains(key) || !self.announced.values().any(|keys| keys.contains(key)))
    }

    /// Is every partition complete here: every producer has announced its keys, and every
    /// announced key has been released?
    pub(crate) fn all_complete(&self) -> bool {
        self.producers.iter().all(|p| self.announced.contains_key(p))
            && self.announced.values().flatten().all(|k| self.released.contains(k))
    }
}

/// One consumer node's hold on a read protected by a seal (`coordination::ReadHold`): the
/// read's facts wait per key until the sealed input's partition of that key is complete,
/// so that what they read holds every fact of it. With no key columns (a read that does
/// not carry the seal's key) they wait until every partition is complete.
#[derive(Debug, Clone)]
pub(crate) struct ReadWait {
    pub(crate) read: CollectionId,
    pub(crate) sealed: CollectionId,
    cols: Vec<usize>,
    waiting: BTreeMap<Row, Vec<Row>>,
}

impl ReadWait {
    pub(crate) fn new(read: CollectionId, sealed: CollectionId, cols: Vec<usize>) -> ReadWait {
        ReadWait { read, sealed, cols, waiting: BTreeMap::new() }
    }

    /// Facts of the read arriving: those whose partition is complete, to deliver now.
    fn ready(&self, key: &Row, hold: &Hold) -> bool {
        if self.cols.is_empty() {
            hold.all_complete()
        } else {
            hold.complete(key)
        }
    }

    pub(crate) fn facts(&mut self, rows: Vec<Row>, hold: &Hold) -> Vec<Row> {
        let mut now = Vec::new();
        for row in rows {
            let key: Row = self.cols.iter().filter_map(|&c| row.get(c).cloned()).collect();
            if self.ready(&key, hold) {
                now.push(row);
            } else {
                self.waiting.entry(key).or_default().push(row);
            }
        }
        now
    }

    /// The waiting facts whose partition has become complete.
    pub(crate) fn release(&mut self, hold: &Hold) -> Vec<Row> {
        let ready: Vec<Row> = self.waiting.keys().filter(|k| self.ready(k, hold)).cloned().collect();
        ready.into_iter().flat_map(|k| self.waiting.remove(&k).unwrap_or_default()).collect()
    }

    /// Facts still waiting (their partition was never completed).
    pub(crate) fn still_held(&self) -> u64 {
        self.waiting.values().map(|v| v.len() as u64).sum()
    }
}

/// For every node: the punctuations it sends, the holds it keeps per sealed input, and its
/// part in the ends of streams that end-of-stream producers wait for.
#[derive(Default)]
pub(crate) struct SealPlan {
    pub punctuations: Vec<Vec<Punctuations>>,
    pub holds: Vec<BTreeMap<CollectionId, Hold>>,
    pub ends: Vec<Option<crate::ends::Ends>>,
}

/// Plans the enforcement of `seals`: (sealed input, its seal columns). Errors name the seal
/// a producer cannot punctuate, and why.
pub(crate) fn plan(p: &Program, plans: &[NodePlan], seals: &[(Endpoint, Vec<usize>)]) -> Result<SealPlan, String> {
    let mut out: Vec<Vec<Punctuations>> = vec![Vec::new(); plans.len()];
    let mut holds: Vec<BTreeMap<CollectionId, Hold>> = vec![BTreeMap::new(); plans.len()];
    let Some(s) = &p.system else { return Ok(SealPlan { punctuations: out, holds, ends: Vec::new() }) };
    let finite = crate::ends::finite_groups(s);
    let mut ending = BTreeSet::new();
    let nodes_of =
        |g| -> Vec<usize> { (0..plans.len()).filter(|&i| plans.get(i).is_some_and(|n| n.group == Some(g))).collect() };
    let name_of = |g| s.groups.iter().find(|x| x.id == g).map_or("?", |x| x.name.as_str());
    for (stream_end, columns) in seals {
        let seal =
            bloomc_compiler::ir::Seal { stream: *stream_end, columns: columns.clone(), span: Default::default() };
        let consumers = nodes_of(seal.stream.group);
        let (Some(&to_first), to_count) = (consumers.first(), consumers.len()) else { continue };
        let stream = format!("{}.{}", name_of(seal.stream.group), p.collection_name(seal.stream.collection));
        let mut producers = BTreeSet::new();
        for w in s.coordination.punctuations.iter().filter(|w| w.to == seal.stream) {
            let output = w.from.collection;
            let group = s.groups.iter().find(|g| g.id == w.from.group).ok_or("unknown group")?;
            // A group no cycle of wires reaches receives finitely many messages: it can
            // punctuate at the end of its stream whatever its rules compute.
            let closed = finite.contains(&w.from.group);
            let copy = copies_a_generated_feed(p, plans, &nodes_of(w.from.group), w.from.collection, &seal.columns);
            let end = || Punctuations {
                to_first,
                to_count,
                input: seal.stream.collection,
                announce: Vec::new(),
                at_tick: BTreeMap::new(),
                at_end: Some(EndOfStream { cols: seal.columns.clone(), ..EndOfStream::default() }),
            };
            if closed && !copy {
                ending.insert(w.from.group);
                for node in nodes_of(w.from.group) {
                    if let Some(v) = out.get_mut(node) {
                        v.push(end());
                    }
                    producers.insert(node);
                }
                continue;
            }
            let why = |reason: &str| {
                format!(
                    "cannot enforce the seal on `{stream}`: producer `{}.{}` {reason} (and is on a cycle of wires or downstream of one, so it cannot tell when its stream ends and punctuate then)",
                    name_of(w.from.group),
                    p.collection_name(output)
                )
            };
            let (input, source_cols) = copied_columns(p, group, output, &seal.columns, &why)?;
            for (node, announce, at_tick) in ahead(plans, &nodes_of(w.from.group), input, &source_cols, &why)? {
                if let Some(v) = out.get_mut(node) {
                    v.push(Punctuations {
                        to_first,
                        to_count,
                        input: seal.stream.collection,
                        announce,
                        at_tick,
                        at_end: None,
                    });
                }
                producers.insert(node);
            }
        }
        for &c in &consumers {
            if let Some(h) = holds.get_mut(c) {
                h.insert(
                    seal.stream.collection,
                    Hold { cols: seal.columns.clone(), producers: producers.clone(), ..Hold::default() },
                );
            }
        }
    }
    let ends = crate::ends::plan(s, plans, &ending);
    Ok(SealPlan { punctuations: out, holds, ends })
}

/// The input a producer group copies onto `output` by one plain `<=` rule, and the
/// positions in it of the sealed columns `cols` (which the rule copies, not computes); or
/// why not (`why` words the reason).
fn copied_columns(
    p: &Program,
    group: &bloomc_compiler::ir::NodeGroup,
    output: CollectionId,
    cols: &[usize],
    why: &dyn Fn(&str) -> String,
) -> Result<(CollectionId, Vec<usize>), String> {
    let module = p.module(group.module).ok_or("unknown module")?;
    let rules: Vec<_> = module.rules.iter().filter_map(|&r| p.rule(r)).filter(|r| r.target == output).collect();
    let [rule] = rules.as_slice() else {
        return Err(why("is not written by exactly one rule (a producer must copy a generated feed)"));
    };
    let [atom] = rule.body.atoms.as_slice() else { return Err(why("joins collections")) };
    if rule.op != MergeOp::Instant || rule.body.group_by.is_some() || !rule.body.antijoins.is_empty() {
        return Err(why("is not a plain `<=` copy of its input"));
    }
    let mut source_cols = Vec::new();
    for &c in cols {
        match rule.body.head.get(c).map(|e| &e.kind) {
            Some(ExprKind::Col(col)) if col.atom == 0 => source_cols.push(col.column),
            _ => return Err(why("computes a sealed column instead of copying it from its feed")),
        }
    }
    Ok((atom.collection, source_cols))
}

/// For each producer node of `nodes`, which copies its generated feed of `input`: the keys
/// (its feed's `source_cols`) it announces, and the keys to seal after each tick (the tick of
/// each key's last row).
#[allow(clippy::type_complexity)]
fn ahead(
    plans: &[NodePlan],
    nodes: &[usize],
    input: CollectionId,
    source_cols: &[usize],
    why: &dyn Fn(&str) -> String,
) -> Result<Vec<(usize, Vec<Row>, BTreeMap<u64, Vec<Row>>)>, String> {
    let mut out = Vec::new();
    for &node in nodes {
        let Some(plan) = plans.get(node) else { continue };
        let feed = plan.feeds.iter().find(|f| f.input == input);
        let Some(feed @ crate::feed::Feed { source: Source::Generate { .. }, .. }) = feed else {
            return Err(why("does not copy a generated feed"));
        };
        let last = crate::fed::last_ticks(std::iter::once(feed), plan.instance, source_cols);
        let mut at_tick: BTreeMap<u64, Vec<Row>> = BTreeMap::new();
        for (key, t) in &last {
            at_tick.entry(*t).or_default().push(key.clone());
        }
        out.push((node, last.keys().cloned().collect(), at_tick));
    }
    Ok(out)
}

/// Whether every node of the producer group copies a generated feed onto `output`, keeping
/// the seal columns (the producers that punctuate each key as soon as it is done).
fn copies_a_generated_feed(
    p: &Program,
    plans: &[NodePlan],
    nodes: &[usize],
    output: CollectionId,
    cols: &[usize],
) -> bool {
    let Some(group) = nodes.first().and_then(|&n| plans.get(n)) else { return false };
    let Some(module) = p.module(group.module) else { return false };
    let rules: Vec<_> = module.rules.iter().filter_map(|&r| p.rule(r)).filter(|r| r.target == output).collect();
    let [rule] = rules.as_slice() else { return false };
    let [atom] = rule.body.atoms.as_slice() else { return false };
    if rule.op != MergeOp::Instant || rule.body.group_by.is_some() || !rule.body.antijoins.is_empty() {
        return false;
    }
    let plain = cols
        .iter()
        .all(|&c| matches!(rule.body.head.get(c).map(|e| &e.kind), Some(ExprKind::Col(col)) if col.atom == 0));
    plain
        && nodes.iter().filter_map(|&n| plans.get(n)).all(|plan| {
            plan.feeds.iter().any(|f| f.input == atom.collection && matches!(f.source, Source::Generate { .. }))
        })
}
