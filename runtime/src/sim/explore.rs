//! Exploring a program's schedules: runs many schedules (`sim::world`), and for every output
//! stream says what it observed: the same facts in every schedule, facts that some schedules
//! miss but none gets wrong, or facts that differ. A fact is *wrong* when no complete-input
//! run emits it (see `world.rs`): it is not merely late or missing, it should not be there.
//! With a sequencer, it also checks that the replicas of each sequenced group agree.

use super::world::{simulate, Chooser, Family, Outcome, Script, Seeded};
use super::Setup;
use crate::value::Row;
use bloomc_compiler::ir::{Builtin, CollectionId, Expr, ExprKind, Program};
use bloomc_grammar::ast::CollectionKind;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// A replayable schedule: its family and the seed or the script of its choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleId {
    Seeded(Family, u64),
    Script(Family, Vec<usize>),
}

impl fmt::Display for ScheduleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fam = |x: &Family| if *x == Family::General { 'g' } else { 'c' };
        match self {
            ScheduleId::Seeded(x, s) => write!(f, "{}r{s:x}", fam(x)),
            ScheduleId::Script(x, c) => {
                let c: Vec<String> = c.iter().map(usize::to_string).collect();
                write!(f, "{}s{}", fam(x), c.join("."))
            }
        }
    }
}

impl FromStr for ScheduleId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("`{s}` is not a schedule id: expected `gr` or `cr` and a hex seed (`gr1f`), or `gs` or `cs` and dot-separated choices (`gs0.1.1`), as `explore` prints them")
        };
        let family = match s.get(..1) {
            Some("g") => Family::General,
            Some("c") => Family::CompleteInput,
            _ => return Err(bad()),
        };
        let rest = s.get(2..).unwrap_or("");
        match s.get(1..2) {
            Some("r") => u64::from_str_radix(rest, 16).map(|n| ScheduleId::Seeded(family, n)).map_err(|_| bad()),
            Some("s") if rest.is_empty() => Ok(ScheduleId::Script(family, Vec::new())),
            Some("s") => rest
                .split('.')
                .map(|c| c.parse::<usize>().map_err(|_| bad()))
                .collect::<Result<Vec<_>, _>>()
                .map(|c| ScheduleId::Script(family, c)),
            _ => Err(bad()),
        }
    }
}

/// Runs one schedule by its id; `trace` keeps every tick's log.
pub fn replay(setup: &Setup<'_>, id: &ScheduleId, trace: bool) -> Outcome {
    match id {
        ScheduleId::Seeded(f, s) => simulate(setup, *f, &mut Seeded(*s), trace),
        ScheduleId::Script(f, c) => simulate(setup, *f, &mut Script { choices: c.clone(), made: Vec::new() }, trace),
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Random schedules of the general family.
    pub schedules: u64,
    pub seed: u64,
    /// Enumerate every schedule instead, up to this many per family.
    pub exhaustive: Option<u64>,
}

/// An output stream: a group's output over all its instances (or a module's output).
#[derive(Debug, Clone)]
pub struct Stream {
    pub name: String,
    pub nodes: Vec<usize>,
    pub output: CollectionId,
}

/// Every output stream of the setup, group by group.
pub fn streams(setup: &Setup<'_>) -> Vec<Stream> {
    let p = setup.program;
    let mut out: Vec<Stream> = Vec::new();
    for (i, plan) in setup.plans.iter().enumerate() {
        let group = p
            .system
            .iter()
            .flat_map(|s| s.groups.iter())
            .find(|g| Some(g.id) == plan.group)
            .map_or_else(|| plan.node_name.clone(), |g| g.name.clone());
        for o in plan.collections(p, CollectionKind::Output) {
            let name = format!("{group}.{}", p.collection_name(o));
            match out.iter_mut().find(|s| s.name == name) {
                Some(s) => s.nodes.push(i),
                None => out.push(Stream { name, nodes: vec![i], output: o }),
            }
        }
    }
    out
}

/// What one stream did over the schedules.
#[derive(Debug, Clone)]
pub enum Observed {
    /// The same facts in every schedule.
    Same,
    /// Not the same in every schedule, but every schedule's facts were emitted by some
    /// complete-input run: `a` emitted `missing`, which `b` did not.
    Misses { a: ScheduleId, b: ScheduleId, missing: Vec<Row> },
    /// Schedule `wrong` emitted `facts`, which no complete-input run emits (`reference` is
    /// the shortest complete-input run, for comparison).
    Differs { wrong: ScheduleId, reference: ScheduleId, facts: Vec<Row> },
}

impl Observed {
    pub fn word(&self) -> &'static str {
        match self {
            Observed::Same => "same in every schedule",
            Observed::Misses { .. } => "may miss facts, never a wrong one",
            Observed::Differs { .. } => "differs",
        }
    }
}

/// Replicas of a sequenced group that did not agree tick by tick in a schedule.
#[derive(Debug, Clone)]
pub struct Disagreement {
    pub group: String,
    pub schedule: ScheduleId,
    pub tick: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Exploration {
    pub general: u64,
    pub complete: u64,
    /// Schedules left out because a node reached the tick bound.
    pub truncated: u64,
    /// Every schedule of each family was tried (with `exhaustive`, within its bound).
    pub exhausted: bool,
    pub streams: Vec<(Stream, Option<Observed>)>,
    pub disagreements: Vec<Disagreement>,
}

/// Per stream while exploring: the first facts seen, and the evidence so far.
#[derive(Default)]
struct Watch {
    first: Option<(ScheduleId, u64, BTreeSet<Row>)>,
    differ: Option<(ScheduleId, u64, BTreeSet<Row>)>,
    wrong: Option<(ScheduleId, u64, Vec<Row>)>,
}

fn facts_of(o: &Outcome, s: &Stream) -> BTreeSet<Row> {
    let mut out = BTreeSet::new();
    for n in &s.nodes {
        if let Some(f) = o.emitted.get(&(*n, s.output)) {
            out.extend(f.iter().cloned());
        }
    }
    out
}

/// The schedules of one family: every script within `bound` (depth-first), or `n` seeded.
fn schedules(
    setup: &Setup<'_>,
    family: Family,
    n: u64,
    seed: u64,
    exhaustive: Option<u64>,
    f: &mut dyn FnMut(ScheduleId, Outcome),
) -> bool {
    match exhaustive {
        Some(bound) => {
            let mut next = Some(Vec::new());
            let mut count = 0;
            while let Some(choices) = next {
                if count >= bound {
                    return false;
                }
                let mut script = Script { choices: choices.clone(), made: Vec::new() };
                let o = simulate(setup, family, &mut script, false);
                next = script.successor();
                count += 1;
                f(ScheduleId::Script(family, script.made.iter().map(|(c, _)| *c).collect()), o);
            }
            true
        }
        None => {
            // The all-first-choices script first: a short, canonical schedule.
            let mut script = Script::default();
            let o = simulate(setup, family, &mut script, false);
            f(ScheduleId::Script(family, script.made.iter().map(|(c, _)| *c).collect()), o);
            let mut draw = Seeded(seed);
            for _ in 1..n {
                let s = draw.pick(usize::MAX) as u64;
                f(ScheduleId::Seeded(family, s), simulate(setup, family, &mut Seeded(s), false));
            }
            false
        }
    }
}

/// Explores `setup`: complete-input runs first (the reference), then general schedules.
pub fn explore(setup: &Setup<'_>, options: &Options) -> Exploration {
    let streams = streams(setup);
    let mut result = Exploration::default();
    let mut reference: Vec<BTreeSet<Row>> = vec![BTreeSet::new(); streams.len()];
    let mut shortest_complete: Option<(ScheduleId, u64)> = None;
    let mut watches: Vec<Watch> = streams.iter().map(|_| Watch::default()).collect();
    let complete_n = (options.schedules / 8).clamp(8, 200);
    let mut truncated = 0;
    let mut seen_complete = 0;
    let exhausted_c =
        schedules(setup, Family::CompleteInput, complete_n, options.seed ^ 0xc0, options.exhaustive, &mut |id, o| {
            if o.truncated {
                truncated += 1;
                return;
            }
            seen_complete += 1;
            for (i, s) in streams.iter().enumerate() {
                let facts = facts_of(&o, s);
                if let (Some(r), Some(w)) = (reference.get_mut(i), watches.get_mut(i)) {
                    r.extend(facts.iter().cloned());
                    observe(w, &id, o.ticks, facts);
                }
            }
            if shortest_complete.as_ref().is_none_or(|(_, t)| o.ticks < *t) {
                shortest_complete = Some((id, o.ticks));
            }
        });
    let sequenced = sequenced_groups(setup);
    let mut seen_general = 0;
    let mut disagreements = Vec::new();
    let exhausted_g =
        schedules(setup, Family::General, options.schedules, options.seed, options.exhaustive, &mut |id, o| {
            if o.truncated {
                truncated += 1;
                return;
            }
            seen_general += 1;
            for (i, s) in streams.iter().enumerate() {
                let facts = facts_of(&o, s);
                let (Some(r), Some(w)) = (reference.get(i), watches.get_mut(i)) else { continue };
                let wrong: Vec<Row> = facts.difference(r).cloned().collect();
                if !wrong.is_empty() && w.wrong.as_ref().is_none_or(|(_, t, _)| o.ticks < *t) {
                    w.wrong = Some((id.clone(), o.ticks, wrong));
                }
                observe(w, &id, o.ticks, facts);
            }
            for (group, nodes) in &sequenced {
                if disagreements.iter().any(|d: &Disagreement| d.group == *group) {
                    continue;
                }
                if let Some(tick) = replicas_disagree(setup.program, &o, nodes) {
                    disagreements.push(Disagreement { group: group.clone(), schedule: id.clone(), tick });
                }
            }
        });
    let reference_id = shortest_complete.map(|(id, _)| id);
    result.streams = streams
        .into_iter()
        .zip(watches)
        .map(|(s, w)| {
            let verdict = verdict(w, reference_id.as_ref());
            (s, verdict)
        })
        .collect();
    result.general = seen_general;
    result.complete = seen_complete;
    result.truncated = truncated;
    result.exhausted = options.exhaustive.is_some() && exhausted_c && exhausted_g;
    result.disagreements = disagreements;
    result
}

fn observe(w: &mut Watch, id: &ScheduleId, ticks: u64, facts: BTreeSet<Row>) {
    match &w.first {
        None => w.first = Some((id.clone(), ticks, facts)),
        Some((_, _, first)) if *first != facts => {
            if w.differ.as_ref().is_none_or(|(_, t, _)| ticks < *t) {
                w.differ = Some((id.clone(), ticks, facts));
            }
        }
        Some(_) => {}
    }
}

/// `None` when no schedule ran to the end.
fn verdict(w: Watch, reference: Option<&ScheduleId>) -> Option<Observed> {
    let (first_id, _, first) = w.first?;
    if let (Some((wrong, _, facts)), Some(r)) = (w.wrong, reference) {
        return Some(Observed::Differs { wrong, reference: r.clone(), facts });
    }
    match w.differ {
        None => Some(Observed::Same),
        Some((id, _, facts)) => {
            let (a, b, missing) = if first.is_superset(&facts) {
                (first_id, id, first.difference(&facts).cloned().collect())
            } else {
                (id, first_id, facts.difference(&first).cloned().collect())
            };
            Some(Observed::Misses { a, b, missing })
        }
    }
}

/// The replicated groups the setup sequences, with their nodes: those whose every wire in
/// is a `broadcast` (a `partition`, `any` or `reply` wire gives each replica other facts by
/// design, so agreement is not promised there).
fn sequenced_groups(setup: &Setup<'_>) -> Vec<(String, Vec<usize>)> {
    let p = setup.program;
    let mut out = Vec::new();
    let wires: Vec<&bloomc_compiler::ir::Wire> = p.system.iter().flat_map(|s| s.wires.iter()).collect();
    for g in p.system.iter().flat_map(|s| s.groups.iter()) {
        if wires.iter().any(|w| w.to.group == g.id && w.delivery != bloomc_compiler::ir::Delivery::Broadcast) {
            continue;
        }
        let nodes: Vec<usize> =
            (0..setup.plans.len()).filter(|&i| setup.plans.get(i).is_some_and(|n| n.group == Some(g.id))).collect();
        if nodes.first().is_some_and(|&f| setup.is_sequenced(f)) && nodes.len() > 1 {
            out.push((g.name.clone(), nodes));
        }
    }
    out
}

/// The first tick at which two replicas' outputs differ (ignoring columns computed from
/// `instance()`, which differ by design), or `None` when they agree tick by tick.
fn replicas_disagree(p: &Program, o: &Outcome, nodes: &[usize]) -> Option<usize> {
    let normal = |n: usize| -> Vec<BTreeMap<CollectionId, BTreeSet<Row>>> {
        o.per_tick
            .get(n)
            .into_iter()
            .flatten()
            .map(|tick| {
                tick.iter()
                    .map(|(c, facts)| {
                        let skip = instance_columns(p, *c);
                        let facts = facts
                            .iter()
                            .map(|r| {
                                r.iter()
                                    .enumerate()
                                    .filter(|(i, _)| !skip.contains(i))
                                    .map(|(_, v)| v.clone())
                                    .collect()
                            })
                            .collect();
                        (*c, facts)
                    })
                    .collect()
            })
            .collect()
    };
    let first = normal(*nodes.first()?);
    for &n in nodes.iter().skip(1) {
        let other = normal(n);
        if other != first {
            let at = first.iter().zip(&other).position(|(a, b)| a != b).unwrap_or(first.len().min(other.len()));
            return Some(at);
        }
    }
    None
}

/// Columns of `c` that some rule fills with an expression reading `instance()`.
fn instance_columns(p: &Program, c: CollectionId) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for r in p.rules.iter().filter(|r| r.target == c) {
        for (i, e) in r.body.head.iter().enumerate() {
            if reads_instance(e) {
                out.insert(i);
            }
        }
    }
    out
}

fn reads_instance(e: &Expr) -> bool {
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Call(Builtin::Instance, _) => return true,
            ExprKind::Call(_, args) => stack.extend(args.iter()),
            ExprKind::Unary(_, x) => stack.push(x),
            ExprKind::Binary(_, a, b) => {
                stack.push(a);
                stack.push(b);
            }
            ExprKind::Agg(_, Some(x)) => stack.push(x),
            ExprKind::Agg(_, None) | ExprKind::Lit(_) | ExprKind::Col(_) => {}
        }
    }
    false
}

/// The streams whose Seal or Async label a schedule contradicted: a label promises no wrong
/// fact, so a stream that `Differs` under such a label is an analysis error.
pub fn unsound<'e>(
    labels: &[(String, bloomc_compiler::analysis::labels::Label)],
    e: &'e Exploration,
) -> Vec<(&'e Stream, bloomc_compiler::analysis::labels::Label, &'e Observed)> {
    let mut out = Vec::new();
    for (s, o) in &e.streams {
        let (Some(o), Some((_, l))) = (o, labels.iter().find(|(n, _)| *n == s.name)) else { continue };
        if l.deterministic() && matches!(o, Observed::Differs { .. }) {
            out.push((s, l.clone(), o));
        }
    }
    out
}
