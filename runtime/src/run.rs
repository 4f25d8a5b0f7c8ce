//! The driver: runs one node's dataflow on timely workers, tick by tick, until its feeds
//! are consumed and its state stops changing; gathers outputs, counts and timings.
//!
//! This is the crate's non-generic entry point: callers never see differential types.

use crate::dataflow;
use crate::feed::Source;
use crate::plan::NodePlan;
use crate::rules::Coll;
use crate::value::{Row, Value};
use bloomc_compiler::ir::{CollectionId, Program, RuleId};
use bloomc_grammar::ast::CollectionKind;
use differential_dataflow::input::{Input, InputSession};
use differential_dataflow::VecCollection;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

/// How many insert-only facts enter the dataflow between two steps of the worker.
const CHUNK: usize = 4096;
use std::time::Instant;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::Exchange;

/// Called by worker 0 after each tick with (ticks done, ticks the feeds need).
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

#[derive(Clone)]
pub struct RunOptions {
    /// Timely workers in this process.
    pub workers: usize,
    /// A bound on ticks, so a program whose state never settles still ends.
    pub max_ticks: u64,
    /// Timely's own cluster flags (`-n`, `-p`, `-h`) to span the node over processes.
    pub cluster: Vec<String>,
    pub progress: Option<Progress>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { workers: 1, max_ticks: 100_000, cluster: Vec::new(), progress: None }
    }
}

/// What a run produced. `changes` holds, per output interface, the consolidated changes of
/// each tick where it changed (a fact with +1 appeared, with -1 left): memory grows with the
/// changes, not with the contents times the ticks.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RunResult {
    pub ticks: u64,
    pub quiescent: bool,
    pub facts_in: u64,
    pub changes: BTreeMap<String, Changes>,
    /// Bindings dropped because an expression failed, as distinct (rule, binding) pairs.
    pub eval_errors: u64,
    /// Those pairs: the rule's number, then the binding's values.
    pub error_rows: BTreeSet<Row>,
    /// Generated rows dropped because a field failed to evaluate.
    pub feed_errors: u64,
    pub elapsed_s: f64,
    /// Per keyed input (`key (..)`), the facts rejected because an earlier fact of the run
    /// had their key (`keys.rs`); inputs without rejections are absent.
    #[serde(default)]
    pub rejected: BTreeMap<String, Rejected>,
    /// Whether this process gathered the outputs (it hosts worker 0). In a cluster, the other
    /// processes run their share and report only their own counts.
    pub gathered: bool,
}

/// Facts of one keyed input rejected for a repeated key: how many, and the first of them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rejected {
    /// The key's column names.
    pub key: Vec<String>,
    pub facts: u64,
    pub first: Row,
}

/// One output's changes, tick by tick (ticks without changes are absent).
pub type Changes = BTreeMap<u64, Vec<(Row, isize)>>;

impl RunResult {
    /// The contents of `output` at every tick where they changed (materialized: for tests and
    /// `--per-tick`).
    pub fn by_tick(&self, output: &str) -> BTreeMap<u64, BTreeSet<Row>> {
        let mut current: BTreeSet<Row> = BTreeSet::new();
        let mut out = BTreeMap::new();
        for (t, diffs) in self.changes.get(output).into_iter().flatten() {
            for (row, d) in diffs {
                if *d > 0 {
                    current.insert(row.clone());
                } else {
                    current.remove(row);
                }
            }
            out.insert(*t, current.clone());
        }
        out
    }
    /// Every output's contents per changed tick, for comparing runs.
    pub fn all_by_tick(&self) -> BTreeMap<String, BTreeMap<u64, BTreeSet<Row>>> {
        self.changes.keys().map(|o| (o.clone(), self.by_tick(o))).collect()
    }
    /// The contents of `output` at the last tick.
    pub fn final_contents(&self, output: &str) -> BTreeSet<Row> {
        let mut current = BTreeSet::new();
        for diffs in self.changes.get(output).into_iter().flat_map(|m| m.values()) {
            for (row, d) in diffs {
                if *d > 0 {
                    current.insert(row.clone());
                } else {
                    current.remove(row);
                }
            }
        }
        current
    }
    /// Every distinct fact `output` held at any tick.
    pub fn all_facts(&self, output: &str) -> BTreeSet<Row> {
        self.changes
            .get(output)
            .into_iter()
            .flat_map(|m| m.values().flatten())
            .filter(|(_, d)| *d > 0)
            .map(|(r, _)| r.clone())
            .collect()
    }
}

/// Moves the output updates of ticks up to `tick` into `log`, consolidated per tick (a fact
/// whose updates cancel within a tick did not change). Later updates stay in `updates`.
pub(crate) fn log_changes(updates: &Updates, tick: u64, log: &mut BTreeMap<CollectionId, Changes>) {
    let mut now = std::mem::take(&mut *updates.borrow_mut());
    if now.iter().any(|u| u.2 > tick) {
        let (ready, later): (Vec<_>, Vec<_>) = now.into_iter().partition(|u| u.2 <= tick);
        *updates.borrow_mut() = later;
        now = ready;
    }
    // `FxHasher` has no random keys: the order is the same in every run.
    let fingerprint = |row: &Row| {
        let mut h = rustc_hash::FxHasher::default();
        std::hash::Hash::hash(row, &mut h);
        std::hash::Hasher::finish(&h)
    };
    for (c, t, mut list) in consolidate(&mut now, fingerprint) {
        match log.entry(c).or_default().entry(t) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(list);
            }
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().append(&mut list),
        }
    }
    // The buffer goes back, so that the next tick's updates need not grow a new one.
    now.clear();
    let mut buffer = updates.borrow_mut();
    if buffer.is_empty() {
        *buffer = now;
    }
}

/// One collection's changes in one tick: each row with its summed update.
type Consolidated = Vec<(Row, isize)>;

/// The changes of `updates` per collection and tick: each distinct row once, with its
/// updates summed, and none whose sum is zero. The rows are taken out of `updates`.
///
/// Consolidated by sorting (faster than a map per row) a small record per update, not the
/// updates themselves: its collection, tick, the `fingerprint` of its row and its place, all
/// integers, so the sort never looks at a row. Updates whose fingerprints are equal are then
/// told apart by their rows.
fn consolidate(
    updates: &mut [(CollectionId, Row, u64, isize)],
    fingerprint: impl Fn(&Row) -> u64,
) -> Vec<(CollectionId, u64, Consolidated)> {
    let mut order: Vec<(CollectionId, u64, u64, usize)> =
        updates.iter().enumerate().map(|(i, u)| (u.0, u.2, fingerprint(&u.1), i)).collect();
    order.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(&(c, t, _, _)) = order.get(at) {
        // One run of a collection and tick: its changes go to one list.
        let run = order.get(at..).unwrap_or(&[]).iter().take_while(|x| x.0 == c && x.1 == t).count();
        let same = order.get(at..at + run).unwrap_or(&[]);
        let mut list = Vec::with_capacity(run);
        let mut k = 0;
        while let Some(&(_, _, f, _)) = same.get(k) {
            // The rows are taken in the order of their fingerprints, at random in `updates`:
            // the ones a few places ahead are asked for first, so that their misses overlap.
            if let Some(&(_, _, _, ahead)) = same.get(k + 8) {
                crate::groups::prefetch(updates.as_ptr().wrapping_add(ahead));
                crate::groups::prefetch(updates.as_ptr().wrapping_add(ahead).cast::<u8>().wrapping_add(64));
            }
            let equal = same.get(k..).unwrap_or(&[]).iter().take_while(|x| x.2 == f).count();
            let places: smallvec::SmallVec<[usize; 2]> =
                same.get(k..k + equal).unwrap_or(&[]).iter().map(|x| x.3).collect();
            k += equal;
            if let [i] = places[..] {
                if let Some(u) = updates.get_mut(i).filter(|u| u.3 != 0) {
                    list.push((std::mem::take(&mut u.1), u.3));
                }
                continue;
            }
            // Rows with one fingerprint (mostly one row, inserted and retracted): each
            // distinct row once, with its updates summed.
            let mut taken = vec![false; places.len()];
            for (a, &i) in places.iter().enumerate() {
                if taken.get(a).copied().unwrap_or(true) {
                    continue;
                }
                let Some(row) = updates.get(i).map(|u| u.1.clone()) else { continue };
                let mut d = 0;
                for (b, &j) in places.iter().enumerate().skip(a) {
                    if let (Some(u), Some(seen)) = (updates.get(j).filter(|u| u.1 == row), taken.get_mut(b)) {
                        d += u.3;
                        *seen = true;
                    }
                }
                if d != 0 {
                    list.push((row, d));
                }
            }
        }
        if !list.is_empty() {
            out.push((c, t, list));
        }
        at += run;
    }
    out
}

pub(crate) type Updates = Rc<RefCell<Vec<(CollectionId, Row, u64, isize)>>>;

/// One timely worker's handle on a node's dataflow, shared by the one-node driver and the
/// network's nodes.
pub(crate) struct Worker {
    sessions: BTreeMap<CollectionId, InputSession<u64, Row, isize>>,
    /// On one worker, the driver's folds (`prefold.rs`): their output sessions, and one
    /// for the errors of the rules that fill their tables.
    prefold: Option<(crate::prefold::Prefold, Prefolded)>,
    /// The keyed inputs' checks (`keys.rs`).
    keys: BTreeMap<CollectionId, crate::keys::KeyCheck>,
    probe: timely::dataflow::ProbeHandle<u64>,
    pub(crate) outputs: Updates,
    pub(crate) errors: Updates,
    activity: Rc<RefCell<BTreeMap<u64, usize>>>,
    /// Inputs read only into accumulating tables keep their facts: never retracted.
    insert_only: BTreeSet<CollectionId>,
    /// The facts each other input received last tick, retracted this tick.
    previous: BTreeMap<CollectionId, Vec<Row>>,
    /// When the node started: feeds with a `rate` are paced from it.
    started: std::time::Instant,
    /// Sealed fed inputs (each key's rows held until the tick of its last row) and the reads
    /// they protect (`fed.rs`).
    fed: crate::fed::Feeds,
}

impl Worker {
    /// Runs tick `tick`: retracts last tick's facts of the transient inputs, inserts this
    /// tick's (the `arriving` messages, then this worker's share `(index, peers)` of the
    /// feeds), and steps until the tick is complete. Returns the facts inserted and whether
    /// the node's state changed.
    pub(crate) fn tick(
        &mut self,
        worker: &mut timely::worker::Worker,
        plan: &NodePlan,
        tick: u64,
        mut arriving: BTreeMap<CollectionId, Vec<Row>>,
        (index, peers): (usize, usize),
        feed_errors: &mut u64,
    ) -> (u64, bool) {
        // A feed with a rate: its batch of this tick is not taken before it is due.
        if let Some(due) = plan.due(tick) {
            let wait = (self.started + due).saturating_duration_since(std::time::Instant::now());
            std::thread::sleep(wait);
        }
        let mut facts_in = 0;
        for (c, session) in self.sessions.iter_mut() {
            for row in self.previous.remove(c).unwrap_or_default() {
                session.update(row, -1);
            }
            // A keyed input's feeds are read whole by worker 0, so that each fact is checked
            // against every earlier one (`keys.rs`); the other workers read none of them.
            let mut keyed = self.keys.get_mut(c);
            let share = match keyed {
                Some(_) => (index == 0).then_some((0, 1)),
                None => Some((index, peers)),
            };
            let prefolded = self.prefold.as_mut().and_then(|(f, _)| Some((f.input(*c)?, f)));
            if let Some((input, prefold)) = prefolded.filter(|(i, f)| f.columnar(*i) && !self.fed.handles(*c)) {
                // Folded by the driver a column at a time (`colfold.rs`): the facts of a
                // file's columns are read in place, any other's gathered into columns first.
                let rows = arriving.remove(c).unwrap_or_default();
                facts_in += fold_input(prefold, (input, *c), (plan, tick), (rows, share), (keyed, feed_errors));
                session.advance_to(tick + 1);
                session.flush();
                continue;
            }
            let mut admit = |row: &Row| keyed.as_mut().is_none_or(|k| k.admit(row));
            let prefolded = self.prefold.as_mut().and_then(|(f, _)| Some((f.input(*c)?, f)));
            if let Some((input, prefold)) = prefolded {
                // Folded by the driver: the facts never enter the dataflow.
                let mut each = |row: &Row| {
                    if admit(row) {
                        prefold.add(input, row);
                        facts_in += 1;
                    }
                };
                if self.fed.handles(*c) {
                    let mut rows = arriving.remove(c).unwrap_or_default();
                    rows.extend(share.map(|s| feed_rows(plan, *c, tick, s, feed_errors)).unwrap_or_default());
                    for row in self.fed.take(*c, tick, rows) {
                        each(&row);
                    }
                } else {
                    for row in arriving.remove(c).unwrap_or_default() {
                        each(&row);
                    }
                    for f in plan.feeds.iter().filter(|f| f.input == *c) {
                        if let Some(share) = share {
                            f.visit(tick, plan.instance, share, feed_errors, &mut each);
                        }
                    }
                }
                session.advance_to(tick + 1);
                session.flush();
                continue;
            }
            let mut rows = arriving.remove(c).unwrap_or_default();
            rows.extend(share.map(|s| feed_rows(plan, *c, tick, s, feed_errors)).unwrap_or_default());
            if self.fed.handles(*c) {
                rows = self.fed.take(*c, tick, rows);
            }
            rows.retain(|row| admit(row));
            facts_in += rows.len() as u64;
            if self.insert_only.contains(c) {
                // Insert-only facts flow through in chunks, each folded while in cache,
                // rather than queueing a whole batch in the dataflow's channels first.
                for (i, row) in rows.into_iter().enumerate() {
                    session.update(row, 1);
                    if (i + 1) % CHUNK == 0 {
                        session.flush();
                        worker.step();
                    }
                }
            } else {
                for row in &rows {
                    session.update(row.clone(), 1);
                }
                self.previous.insert(*c, rows);
            }
            session.advance_to(tick + 1);
            session.flush();
        }
        self.finish_prefolds(tick);
        let probe = self.probe.clone();
        worker.step_while(|| probe.less_than(&(tick + 1)));
        let changed = self.activity.borrow().get(&tick).copied().unwrap_or(0) > 0;
        (facts_in, changed)
    }

    /// The end of the driver's folds for `tick`: their changes and errors enter the
    /// dataflow in place of the folds' operators.
    fn finish_prefolds(&mut self, tick: u64) {
        let Some((prefold, sessions)) = self.prefold.as_mut() else { return };
        let (changes, errors) = prefold.finish();
        for (r, changes) in changes {
            let Some(session) = sessions.folds.get_mut(&r) else { continue };
            for (row, d) in changes {
                session.update(row, d);
            }
        }
        for row in errors {
            sessions.errors.update(row, 1);
        }
        for session in sessions.folds.values_mut() {
            session.advance_to(tick + 1);
            session.flush();
        }
        sessions.errors.advance_to(tick + 1);
        sessions.errors.flush();
    }

    /// The facts each keyed input rejected so far, by input name.
    pub(crate) fn rejected(&self, p: &Program) -> BTreeMap<String, Rejected> {
        self.keys
            .iter()
            .filter_map(|(c, k)| {
                let first = k.first.clone()?;
                let x = p.collection(*c)?;
                let key =
                    x.key.iter().flatten().filter_map(|&i| x.columns.get(i)).map(|col| col.name.clone()).collect();
                Some((x.name.clone(), Rejected { key, facts: k.rejected, first }))
            })
            .collect()
    }

    /// Ends the run: results up to the last tick are complete (the probe passed it), and a
    /// node stopped by `max_ticks` may still be producing, so the dataflow is dropped rather
    /// than drained.
    pub(crate) fn close(&mut self, worker: &mut timely::worker::Worker) {
        drop(std::mem::take(&mut self.sessions));
        drop(self.prefold.take());
        for id in worker.installed_dataflows() {
            worker.drop_dataflow(id);
        }
    }
}

/// One tick's facts of a column-folded input folded by the driver a column at a time
/// (`colfold.rs`): those that arrived, then its feeds' batch (`share` of it, if any), a file's
/// columns read in place and any other feed's rows gathered into columns first, each fact's
/// key checked (`keyed`). Returns how many facts were folded.
fn fold_input(
    prefold: &mut crate::prefold::Prefold,
    (input, c): (usize, CollectionId),
    (plan, tick): (&NodePlan, u64),
    (arrived, share): (Vec<Row>, Option<(usize, usize)>),
    (mut key, feed_errors): (Option<&mut crate::keys::KeyCheck>, &mut u64),
) -> u64 {
    let arity = prefold.arity(input);
    let mut facts_in = fold_rows(prefold, input, arity, arrived.iter(), &mut key);
    for f in plan.feeds.iter().filter(|f| f.input == c) {
        let Some(share) = share else { continue };
        if let Source::Columns { columns, batch } = &f.source {
            let start = (tick as usize).saturating_mul(*batch).min(columns.len());
            if let Some(cols) = columns.ints(start..start.saturating_add(*batch).min(columns.len())) {
                facts_in += fold_columns(prefold, input, &cols, &mut key);
                continue;
            }
        }
        let mut rows = Vec::new();
        f.visit(tick, plan.instance, share, feed_errors, &mut |row| rows.push(row.clone()));
        facts_in += fold_rows(prefold, input, arity, rows.iter(), &mut key);
    }
    facts_in
}

/// Checks the key of facts of a column-folded input given as its columns, in order, and
/// folds the admitted (`colfold.rs`); returns how many were admitted.
fn fold_columns(
    prefold: &mut crate::prefold::Prefold,
    input: usize,
    columns: &[&[i64]],
    key: &mut Option<&mut crate::keys::KeyCheck>,
) -> u64 {
    let n = columns.first().map_or(0, |c| c.len());
    let row = |i: usize| -> Row { columns.iter().filter_map(|c| c.get(i)).map(|x| Value::Int(*x)).collect() };
    let keep = match key {
        None => None,
        Some(k) => match k.int_column().and_then(|c| columns.get(c)) {
            Some(col) => k.admit_ints(col, row),
            None => Some((0..n).map(|i| k.admit(&row(i))).collect()),
        },
    };
    let Some(keep) = keep else {
        prefold.add_columns(input, columns);
        return n as u64;
    };
    let kept: Vec<Vec<i64>> =
        columns.iter().map(|c| c.iter().zip(&keep).filter(|(_, k)| **k).map(|(x, _)| *x).collect()).collect();
    let kept: Vec<&[i64]> = kept.iter().map(Vec::as_slice).collect();
    prefold.add_columns(input, &kept);
    keep.iter().filter(|k| **k).count() as u64
}

/// Facts of a column-folded input given as rows: gathered into columns and folded by
/// [`fold_columns`], in order; a row that does not fit the input's `int` columns (which its
/// schema rules out) goes through [`crate::prefold::Prefold::add`] on its own, which counts
/// it as an error. Returns how many were admitted.
fn fold_rows<'r>(
    prefold: &mut crate::prefold::Prefold,
    input: usize,
    arity: usize,
    rows: impl Iterator<Item = &'r Row>,
    key: &mut Option<&mut crate::keys::KeyCheck>,
) -> u64 {
    let types = vec![bloomc_compiler::ir::Type::Int; arity];
    let mut buffer = crate::columns::Columns::new(&types, 0);
    let mut admitted = 0;
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        // The rows up to the first that does not fit, as columns.
        let misfit = rows.by_ref().find(|row| !buffer.push(row));
        if let Some(cols) = buffer.ints(0..buffer.len()) {
            admitted += fold_columns(prefold, input, &cols, key);
        }
        buffer = crate::columns::Columns::new(&types, 0);
        if let Some(row) = misfit.filter(|row| key.as_mut().is_none_or(|k| k.admit(row))) {
            prefold.add(input, row);
            admitted += 1;
        }
    }
    admitted
}

/// The rows the feeds of `input` deliver in tick `tick` to worker `share` of the node.
fn feed_rows(plan: &NodePlan, input: CollectionId, tick: u64, (i, n): (usize, usize), errors: &mut u64) -> Vec<Row> {
    plan.feeds.iter().filter(|f| f.input == input).flat_map(|f| f.batch(tick, plan.instance, i, n, errors)).collect()
}

/// The dataflow's inputs for the driver's folds: each fold's changes, and the errors.
struct Prefolded {
    folds: BTreeMap<RuleId, InputSession<u64, (bool, Row), isize>>,
    errors: InputSession<u64, Row, isize>,
}

pub(crate) fn build(worker: &mut timely::worker::Worker, p: &Program, plan: &NodePlan) -> Result<Worker, String> {
    let paths = crate::paths::paths(p, plan);
    let prefold = if worker.peers() == 1 { crate::prefold::Prefold::new(p, plan, &paths) } else { None };
    let prefold_rules = prefold.as_ref().map(|f| f.rules()).unwrap_or_default();
    let outputs: Updates = Rc::default();
    let errors: Updates = Rc::default();
    let activity: Rc<RefCell<BTreeMap<u64, usize>>> = Rc::default();
    let probe = timely::dataflow::ProbeHandle::new();
    let (o, e, a, pr) = (outputs.clone(), errors.clone(), activity.clone(), probe.clone());
    let (sessions, prefolded) = worker.dataflow::<u64, _, _>(move |scope| -> Result<_, String> {
        let mut sessions = BTreeMap::new();
        let mut inputs: BTreeMap<CollectionId, Coll<'_, u64>> = BTreeMap::new();
        for c in plan.collections(p, CollectionKind::Input) {
            let (session, coll) = scope.new_collection::<Row, isize>();
            sessions.insert(c, session);
            inputs.insert(c, coll);
        }
        let mut fold_sessions = BTreeMap::new();
        let mut fold_outputs = BTreeMap::new();
        for r in prefold_rules {
            let (session, coll) = scope.new_collection::<(bool, Row), isize>();
            fold_sessions.insert(r, session);
            fold_outputs.insert(r, coll);
        }
        let (error_session, driver_errors) = scope.new_collection::<Row, isize>();
        let mut df = dataflow::node(p, plan, scope, inputs, fold_outputs)?;
        df.errors = df.errors.concat(driver_errors);
        for (c, coll) in df.outputs {
            let sink = o.clone();
            VecCollection::new(coll.inner.exchange(|_| 0))
                .inspect(move |(row, t, d)| sink.borrow_mut().push((c, row.clone(), *t, *d)))
                .probe_with(&pr);
        }
        let sink = e.clone();
        VecCollection::new(df.errors.inner.exchange(|_| 0))
            .inspect(move |(row, t, d)| sink.borrow_mut().push((CollectionId(0), row.clone(), *t, *d)))
            .probe_with(&pr);
        // Changes are consolidated first (a recursive component can emit and cancel the same
        // fact within a tick), then each becomes one unit record; consolidated again, a tick
        // with changes leaves one record, which every worker sees (they stop together).
        let counts = a.clone();
        let units =
            timely::dataflow::operators::vec::Map::map(df.activity.consolidate().inner, |(_, t, _)| ((), t, 1isize));
        let changed = VecCollection::new(units).consolidate().inner.broadcast();
        VecCollection::new(changed)
            .inspect(move |(_, t, _)| *counts.borrow_mut().entry(*t).or_default() += 1)
            .probe_with(&pr);
        Ok((sessions, Prefolded { folds: fold_sessions, errors: error_session }))
    })?;
    let insert_only = paths.insert_only_inputs;
    let keys = plan
        .collections(p, CollectionKind::Input)
        .into_iter()
        .filter_map(|c| {
            let x = p.collection(c)?;
            let cols = x.key.clone()?;
            let types = cols.iter().filter_map(|&i| x.columns.get(i).map(|col| col.ty)).collect();
            Some((c, crate::keys::KeyCheck::new(cols, types)))
        })
        .collect();
    Ok(Worker {
        sessions,
        keys,
        prefold: prefold.map(|f| (f, prefolded)),
        probe,
        outputs,
        errors,
        activity,
        insert_only,
        previous: BTreeMap::new(),
        started: std::time::Instant::now(),
        fed: crate::fed::Feeds::new(&plan.sealed_feeds, &plan.fed_reads, plan.instance, &plan.feeds),
    })
}

struct WorkerResult {
    index: usize,
    ticks: u64,
    quiescent: bool,
    facts_in: u64,
    feed_errors: u64,
    outputs: BTreeMap<CollectionId, Changes>,
    errors: Vec<(CollectionId, Row, u64, isize)>,
    rejected: BTreeMap<String, Rejected>,
}

/// Runs the node described by `plan` and returns what it produced.
pub fn run(p: &Program, plan: &NodePlan, options: &RunOptions) -> Result<RunResult, String> {
    let start = Instant::now();
    let shared = Arc::new((p.clone(), plan.clone(), options.clone()));
    let config = if options.cluster.is_empty() {
        timely::Config::process(options.workers.max(1))
    } else {
        let mut args = vec!["-w".to_string(), options.workers.max(1).to_string()];
        args.extend(options.cluster.iter().cloned());
        timely::Config::from_args(args.into_iter()).map_err(|e| format!("bad cluster flags: {e}"))?
    };
    let guards = timely::execute(config, move |worker| -> Result<WorkerResult, String> {
        let (p, plan, options) = &*shared;
        let index = worker.index();
        let peers = worker.peers();
        let mut w = build(worker, p, plan)?;
        let feed_ticks = plan.feed_ticks();
        let (mut facts_in, mut feed_errors) = (0u64, 0u64);
        let mut quiescent = false;
        let mut log: BTreeMap<CollectionId, Changes> = BTreeMap::new();
        let mut tick = 0;
        while tick < options.max_ticks {
            let (facts, changed) = w.tick(worker, plan, tick, BTreeMap::new(), (index, peers), &mut feed_errors);
            facts_in += facts;
            log_changes(&w.outputs, tick, &mut log);
            tick += 1;
            if let (0, Some(progress)) = (index, &options.progress) {
                progress(tick, feed_ticks);
            }
            // Past the feeds, a tick without inputs whose state did not change repeats forever.
            if tick > feed_ticks && !changed {
                quiescent = true;
                break;
            }
        }
        let rejected = w.rejected(p);
        w.close(worker);
        let errors = std::mem::take(&mut *w.errors.borrow_mut());
        Ok(WorkerResult { index, ticks: tick, quiescent, facts_in, feed_errors, outputs: log, errors, rejected })
    })?;
    let mut result = RunResult::default();
    let mut error_updates = Vec::new();
    for r in guards.join() {
        let r = r.map_err(|e| format!("a worker failed: {e}"))??;
        result.facts_in += r.facts_in;
        result.feed_errors += r.feed_errors;
        // Every worker runs the same ticks; in a cluster, process 0 holds worker 0.
        result.ticks = r.ticks;
        result.quiescent = r.quiescent;
        result.gathered |= r.index == 0;
        // Only worker 0 receives outputs (they are exchanged to it).
        for (c, changes) in r.outputs {
            result.changes.entry(p.collection_name(c).to_string()).or_default().extend(changes);
        }
        error_updates.extend(r.errors);
        // Only worker 0 reads keyed feeds, so only it rejects.
        result.rejected.extend(r.rejected);
    }
    for c in plan.collections(p, CollectionKind::Output) {
        result.changes.entry(p.collection_name(c).to_string()).or_default();
    }
    let distinct: BTreeSet<Row> =
        error_updates.into_iter().filter(|(_, _, t, d)| *d > 0 && *t < result.ticks).map(|(_, r, _, _)| r).collect();
    result.eval_errors = distinct.len() as u64;
    result.error_rows = distinct;
    result.elapsed_s = start.elapsed().as_secs_f64();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::consolidate;
    use crate::value::{Row, Value};
    use bloomc_compiler::ir::CollectionId;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Consolidation agrees with summing each (collection, tick, row) in a map, with a
        /// real fingerprint and with fingerprints that collide (a row's length, or one for
        /// all), so that rows of one fingerprint must be told apart by their values.
        #[test]
        fn consolidation_sums_each_row_once(
            updates in prop::collection::vec((0u32..3, prop::collection::vec(0i64..4, 0..3), 0u64..3, -2isize..3), 0..60),
            collide in 0usize..3,
        ) {
            let mut naive: BTreeMap<(CollectionId, u64, Row), isize> = BTreeMap::new();
            let mut input = Vec::new();
            for (c, values, t, d) in updates {
                let row: Row = values.into_iter().map(Value::Int).collect();
                *naive.entry((CollectionId(c), t, row.clone())).or_default() += d;
                input.push((CollectionId(c), row, t, d));
            }
            naive.retain(|_, d| *d != 0);
            let fingerprint = |row: &Row| match collide {
                0 => row.iter().map(|v| if let Value::Int(i) = v { *i as u64 } else { 9 }).fold(7, |h, x| h * 31 + x),
                1 => row.len() as u64,
                _ => 0,
            };
            let mut got: BTreeMap<(CollectionId, u64, Row), isize> = BTreeMap::new();
            for (c, t, list) in consolidate(&mut input, fingerprint) {
                prop_assert!(!list.is_empty(), "an empty list for {c:?} at {t}");
                for (row, d) in list {
                    prop_assert!(d != 0);
                    prop_assert!(got.insert((c, t, row), d).is_none(), "a row listed twice");
                }
            }
            prop_assert_eq!(got, naive);
        }
    }
}
