//! Renders one node's rules into a differential dataflow over `Row`s.
//!
//! Ticks are timely epochs. Input interfaces hold each tick's facts for that tick only (the
//! driver inserts them at t and retracts them at t+1). A table is a `Variable` fed from tick
//! t to t+1 with `(T \ deleted) ∪ inserted`, so deletions apply before inserts, as in Bud. A
//! scratch is a derived collection; a deferred `<+` into a scratch is a one-tick delay. `<~`
//! sends into outputs, and loopback wires deliver them to inputs in the next tick. `<=` rules
//! are rendered in dependency order of the strongly connected components of the `<=` graph;
//! a recursive component is an `iterative` scope whose collections are `Variable`s that
//! evolve together to their fixpoint. Every collection is `distinct`.

use crate::eval::{aggregate, collect_aggs, counts_only, eval, truthy, Ctx, Flat, Grouped};
use crate::paths::Paths;
use crate::plan::NodePlan;
use crate::value::{Row, Value};
use bloomc_compiler::ir::{Body, ColRef, CollectionId, Expr, Program, Rule, RuleId};
use bloomc_grammar::ast::CollectionKind;
use differential_dataflow::lattice::Lattice;
use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::operators::iterate::Variable;
use differential_dataflow::trace::implementations::ValSpine;
use differential_dataflow::VecCollection;
use std::collections::BTreeMap;
use timely::dataflow::operators::core::OkErr;
use timely::dataflow::Scope;
use timely::progress::Timestamp;

pub type Coll<'s, T> = VecCollection<'s, T, Row, isize>;

/// A collection arranged by some of its columns, as a join's right side reads it.
type ByKey<'s, T> = Arranged<'s, TraceAgent<ValSpine<Row, Row, T, isize>>>;

/// The arrangements of one scope that joins read, by collection and key columns: rules that
/// join the same collection on the same columns share one arrangement (one copy of the
/// collection's index, maintained once) instead of each arranging it again.
pub type Shared<'s, T> = BTreeMap<(CollectionId, Vec<usize>), ByKey<'s, T>>;

/// A rule's output rows and what failed to evaluate, tagged with the rule: the binding, or
/// for a group-level failure (an aggregate, `having`, or the head of an aggregating rule)
/// the group's key, so both aggregation paths count a failing group once per key.
pub struct Rendered<'s, T: Timestamp + Lattice> {
    pub rows: Coll<'s, T>,
    pub errors: Coll<'s, T>,
}

fn key(row: &Row, cols: &[usize]) -> Row {
    cols.iter().filter_map(|&c| row.get(c).cloned()).collect()
}

/// What an aggregating rule does with a group once its aggregates are known: check `having`
/// and evaluate the head from the group's key (the resolver guarantees that a head refers to
/// nothing but grouping keys, aggregates and constants). Shared by both aggregation paths.
pub(crate) struct Group {
    /// The head and `having`, compiled to evaluate from the key (see `eval::Grouped`).
    head: Vec<Grouped>,
    having: Option<Grouped>,
    ctx: Ctx,
    /// The aggregate nodes of the head, then of `having`, in evaluation order.
    pub(crate) aggregates: Vec<Expr>,
    /// How many of `aggregates` belong to the head, and to each head expression.
    head_aggs: usize,
    per_head: Vec<usize>,
}

impl Group {
    pub(crate) fn new(keys: Vec<Expr>, head: Vec<Expr>, having: Option<Expr>, ctx: Ctx) -> Group {
        let mut in_head = Vec::new();
        let mut per_head = Vec::new();
        for e in &head {
            let before = in_head.len();
            collect_aggs(e, &mut in_head);
            per_head.push(in_head.len() - before);
        }
        let head_aggs = in_head.len();
        let mut aggregates: Vec<Expr> = in_head.into_iter().cloned().collect();
        let mut in_having = Vec::new();
        if let Some(h) = &having {
            collect_aggs(h, &mut in_having);
        }
        aggregates.extend(in_having.into_iter().cloned());
        let head = head.iter().map(|e| Grouped::compile(e, &keys)).collect();
        let having = having.as_ref().map(|h| Grouped::compile(h, &keys));
        Group { head, having, ctx, aggregates, head_aggs, per_head }
    }

    /// Whether a group's row is known from its key and its [`Outcome`] alone: the head reads
    /// no aggregate, so only `having`'s verdict can change it.
    pub(crate) fn outcome_decides(&self) -> bool {
        self.head_aggs == 0
    }

    /// Whether `having` reads a grouping key (else [`Group::outcome`] can take an empty key).
    pub(crate) fn having_reads_key(&self) -> bool {
        self.having.as_ref().is_some_and(Grouped::reads_key)
    }

    /// What `having` makes of a group whose aggregate values are `aggs` (the values of
    /// `collect_aggs` over the head, then the having clause; `None` when one failed).
    pub(crate) fn outcome(&self, key: &Row, aggs: Option<&[Value]>) -> Outcome {
        let Some(values) = aggs else { return Outcome::Failed };
        let Some(h) = &self.having else { return Outcome::Pass };
        match h.eval(key, &self.ctx, values.get(self.head_aggs..).unwrap_or(&[])) {
            Ok(v) if truthy(&v) => Outcome::Pass,
            Ok(_) => Outcome::Reject,
            Err(_) => Outcome::Failed,
        }
    }

    /// `(true, head row)`, `(false, key)` when something failed to evaluate, or `None` when
    /// `having` rejects the group. `aggs` as for [`Group::outcome`].
    pub(crate) fn finish(&self, key: &Row, aggs: Option<&[Value]>) -> Option<(bool, Row)> {
        let head_vals = aggs.map_or(&[][..], |v| v.get(..self.head_aggs).unwrap_or(v));
        self.row(key, self.outcome(key, aggs), head_vals)
    }

    /// The group's row for its outcome, the head evaluated from the key and the head's
    /// aggregate values `head_vals` (none when [`Group::outcome_decides`]).
    pub(crate) fn row(&self, key: &Row, outcome: Outcome, head_vals: &[Value]) -> Option<(bool, Row)> {
        match outcome {
            Outcome::Failed => return Some((false, key.clone())),
            Outcome::Reject => return None,
            Outcome::Pass => {}
        }
        let mut out = Row::new();
        let mut used = 0;
        for (e, n) in self.head.iter().zip(&self.per_head) {
            let slice = head_vals.get(used..used + n).unwrap_or(&[]);
            used += n;
            match e.eval(key, &self.ctx, slice) {
                Ok(x) => out.push(x),
                Err(_) => return Some((false, key.clone())),
            }
        }
        Some((true, out))
    }
}

/// What `having` makes of a group: its row is shown, it is rejected, or something failed to
/// evaluate (an aggregate, or `having` itself), so the group's key is an error.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Outcome {
    Pass,
    Reject,
    Failed,
}

/// The equalities that key the join of atom `i` with the atoms before it, in body order:
/// each one's position among the equalities, its column of an earlier atom, and its column
/// of atom `i` (the right side's key, by which the right side is arranged).
pub fn join_on(b: &Body, i: usize) -> Vec<(usize, ColRef, usize)> {
    let mut on = Vec::new();
    for (k, e) in b.equalities.iter().enumerate() {
        if e.right.atom == i && e.left.atom < i {
            on.push((k, e.left, e.right.column));
        } else if e.left.atom == i && e.right.atom < i {
            on.push((k, e.right, e.left.column));
        }
    }
    on
}

/// Renders one rule against the collections it reads.
pub fn rule<'s, T: CountKeys>(
    p: &Program,
    r: &Rule,
    colls: &BTreeMap<CollectionId, Coll<'s, T>>,
    shared: &mut Shared<'s, T>,
    instance: u32,
) -> Option<Rendered<'s, T>> {
    let b = &r.body;
    let arity = |c: CollectionId| p.collection(c).map_or(0, |c| c.columns.len());
    let mut offsets = Vec::with_capacity(b.atoms.len());
    let mut width = 0;
    for a in &b.atoms {
        offsets.push(width);
        width += arity(a.collection);
    }
    let flat = |atom: usize, col: usize| offsets.get(atom).map_or(0, |o| o + col);
    let first = b.atoms.first()?;
    let mut bound = colls.get(&first.collection)?.clone();
    let mut used = vec![false; b.equalities.len()];
    for (i, atom) in b.atoms.iter().enumerate().skip(1) {
        let mut left_cols = Vec::new();
        let mut right_cols = Vec::new();
        for (k, outer, column) in join_on(b, i) {
            if let Some(u) = used.get_mut(k) {
                *u = true;
            }
            left_cols.push(flat(outer.atom, outer.column));
            right_cols.push(column);
        }
        let right = match shared.entry((atom.collection, right_cols.clone())) {
            std::collections::btree_map::Entry::Occupied(e) => e.get().clone(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let rc = right_cols.clone();
                let arranged =
                    colls.get(&atom.collection)?.clone().map(move |row| (key(&row, &rc), row)).arrange_by_key();
                e.insert(arranged).clone()
            }
        };
        let lc = left_cols.clone();
        bound = bound.map(move |row| (key(&row, &lc), row)).join_core(right, |_k, l, r| {
            let mut out = l.clone();
            out.extend(r.iter().cloned());
            Some(out)
        });
    }
    // Equalities not used as join keys, and the `where` filters.
    let leftover: Vec<_> = b
        .equalities
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(e, _)| (flat(e.left.atom, e.left.column), flat(e.right.atom, e.right.column)))
        .collect();
    let ctx = Ctx { instance, row: 0, seed: 0 };
    let check = Check { leftover, filters: b.filters.clone(), offsets: offsets.clone(), ctx };
    let head = b.head.clone();
    let tag = Value::Int(i64::from(r.id.0));
    if b.antijoins.is_empty() && b.group_by.is_none() {
        // Neither negation nor aggregation: check and project each binding in one pass.
        if crate::paths::copies(p, r) {
            // The rule copies a collection: no operator at all.
            let errors = differential_dataflow::collection::concatenate(bound.scope(), Vec::new());
            return Some(Rendered { rows: bound, errors });
        }
        let produced = bound.flat_map(move |row| {
            Some(match check.project(&head, &row)? {
                Some(out) => (true, out),
                None => (false, row),
            })
        });
        return Some(split(produced, Vec::new(), tag));
    }
    // Bindings whose filter failed to evaluate are errors, split off here.
    let offs = offsets.clone();
    let (mut bound, failed) = split_ok(bound.flat_map(move |row| check.run(&row).map(|ok| (ok, row))));
    let errors = vec![failed];
    for anti in &b.antijoins {
        let outer: Vec<usize> = anti.pairs.iter().map(|(o, _)| flat(o.atom, o.column)).collect();
        let inner: Vec<usize> = anti.pairs.iter().map(|(_, i)| *i).collect();
        let negated = colls.get(&anti.collection)?.clone().map(move |row| key(&row, &inner)).distinct();
        bound = bound.map(move |row| (key(&row, &outer), row)).antijoin(negated).map(|(_, row)| row);
    }
    let produced = match &b.group_by {
        None => bound.map(move |row| {
            let flat = Flat { row: &row, offsets: &offs };
            let out: Result<Row, _> = head.iter().map(|e| eval(e, &flat, &ctx, &[])).collect();
            match out {
                Ok(out) => (true, out),
                Err(_) => (false, row),
            }
        }),
        Some(keys) => {
            // Evaluate each binding's group key; a key that fails to evaluate is an error.
            let key_exprs = keys.clone();
            let offs2 = offs.clone();
            let (keyed, bad_keys) = bound.inner.ok_err::<Vec<_>, _, Vec<_>, _, _>(move |(row, t, d)| {
                let flat = Flat { row: &row, offsets: &offs2 };
                match key_exprs.iter().map(|e| eval(e, &flat, &ctx, &[])).collect::<Result<Row, _>>() {
                    Ok(k) => Ok(((k, row), t, d)),
                    Err(_) => Err(((false, row), t, d)),
                }
            });
            let (keyed, bad_keys) = (VecCollection::new(keyed), VecCollection::new(bad_keys));
            let finish = Group::new(keys.clone(), head, b.having.clone(), ctx);
            let grouped = if counts_only(b.head.iter().chain(b.having.iter())) && !keys.is_empty() {
                // Count path: bindings are distinct, so counting the group keys gives each
                // group's count without keeping its bindings in an arrangement.
                T::count_keys(keyed.map(|(k, _)| k)).flat_map(move |(key, n)| {
                    let aggs = vec![Value::Int(n as i64); finish.aggregates.len()];
                    finish.finish(&key, Some(&aggs))
                })
            } else {
                keyed
                    .reduce(move |key, input: &[(&Row, isize)], output: &mut Vec<((bool, Row), isize)>| {
                        let group: Vec<Flat<'_>> =
                            input.iter().filter(|(_, d)| *d > 0).map(|(row, _)| Flat { row, offsets: &offs }).collect();
                        if group.is_empty() {
                            return;
                        }
                        let aggs: Result<Vec<Value>, _> =
                            finish.aggregates.iter().map(|a| aggregate(a, &group, &ctx)).collect();
                        if let Some(out) = finish.finish(key, aggs.as_deref().ok()) {
                            output.push((out, 1));
                        }
                    })
                    .map(|(_k, v)| v)
            };
            grouped.concat(bad_keys)
        }
    };
    Some(split(produced, errors, tag))
}

/// Counting each key's rows: with `count_total` where timestamps are totally ordered (a
/// node's ticks), which keeps no arrangement of its output; with `count` in a recursive
/// component's iterative scope, whose timestamps are not.
pub trait CountKeys: Timestamp + Lattice + Ord {
    fn count_keys(rows: Coll<'_, Self>) -> VecCollection<'_, Self, (Row, isize), isize>;
}

impl CountKeys for u64 {
    fn count_keys(rows: Coll<'_, u64>) -> VecCollection<'_, u64, (Row, isize), isize> {
        differential_dataflow::operators::count::CountTotal::count_total(rows)
    }
}

impl CountKeys for timely::order::Product<u64, u64> {
    fn count_keys(rows: Coll<'_, Self>) -> VecCollection<'_, Self, (Row, isize), isize> {
        rows.count()
    }
}

/// Splits `(ok, row)` records in one pass, without copying the stream: the rows that
/// evaluated, and those that failed.
fn split_ok<'s, T: Timestamp + Lattice>(c: VecCollection<'s, T, (bool, Row), isize>) -> (Coll<'s, T>, Coll<'s, T>) {
    let (ok, failed) = c.inner.ok_err::<Vec<_>, _, Vec<_>, _, _>(
        |((ok, row), t, d)| {
            if ok {
                Ok((row, t, d))
            } else {
                Err((row, t, d))
            }
        },
    );
    (VecCollection::new(ok), VecCollection::new(failed))
}

/// The per-binding checks of a rule body: equalities not used as join keys, then `where`.
pub(crate) struct Check {
    leftover: Vec<(usize, usize)>,
    filters: Vec<Expr>,
    offsets: Vec<usize>,
    ctx: Ctx,
}

impl Check {
    /// The checks of a rule over one atom: every equality is checked on the binding.
    pub(crate) fn single(r: &Rule, ctx: Ctx) -> Check {
        let leftover = r.body.equalities.iter().map(|e| (e.left.column, e.right.column)).collect();
        Check { leftover, filters: r.body.filters.clone(), offsets: vec![0], ctx }
    }

    /// Checks the binding and evaluates `head` over it: `None` when the binding is rejected,
    /// `Some(None)` when a filter or the head failed to evaluate (an error of the rule),
    /// else the head's row.
    pub(crate) fn project(&self, head: &[Expr], row: &Row) -> Option<Option<Row>> {
        if !self.run(row)? {
            return Some(None);
        }
        let flat = Flat { row, offsets: &self.offsets };
        Some(head.iter().map(|e| eval(e, &flat, &self.ctx, &[])).collect::<Result<Row, _>>().ok())
    }

    /// `None` when the binding is rejected, `Some(false)` when a filter failed to evaluate.
    pub(crate) fn run(&self, row: &Row) -> Option<bool> {
        if self.leftover.iter().any(|(a, b)| row.get(*a) != row.get(*b)) {
            return None;
        }
        for f in &self.filters {
            match eval(f, &Flat { row, offsets: &self.offsets }, &self.ctx, &[]) {
                Ok(v) if truthy(&v) => {}
                Ok(_) => return None,
                Err(_) => return Some(false),
            }
        }
        Some(true)
    }
}

/// Splits a rule's `(ok, row)` output into its rows and its errors, and tags the errors
/// (with those found earlier in the rule) with the rule.
fn split<'s, T: Timestamp + Lattice>(
    produced: VecCollection<'s, T, (bool, Row), isize>,
    mut errors: Vec<Coll<'s, T>>,
    tag: Value,
) -> Rendered<'s, T> {
    let (rows, failed) = split_ok(produced);
    errors.push(failed);
    let errors = differential_dataflow::collection::concatenate(rows.scope(), errors).map(move |row| {
        let mut tagged = Row::new();
        tagged.push(tag.clone());
        tagged.extend(row);
        tagged
    });
    Rendered { rows, errors }
}

/// Renders a fold rule (see `fold.rs`) over the rows arriving in its table.
fn fold_rule<'s>(p: &Program, r: &Rule, table: Coll<'s, u64>, instance: u32, paths: &Paths) -> Rendered<'s, u64> {
    let unique = r.body.atoms.first().is_some_and(|a| paths.unique.contains(&a.collection));
    let produced = crate::fold::render(p, r, table, instance, unique);
    split(produced, Vec::new(), Value::Int(i64::from(r.id.0)))
}

/// What a fold rule folds: the rows arriving in its accumulating table (no set of them is
/// built when only folds read it), or its growing table's contents, whose changes are
/// insertions only, since nothing deletes from it and each tick carries the last one's.
fn fold_input<'s>(
    r: &Rule,
    arrivals: &BTreeMap<CollectionId, Coll<'s, u64>>,
    colls: &BTreeMap<CollectionId, Coll<'s, u64>>,
) -> Result<Coll<'s, u64>, String> {
    let table = r.body.atoms.first().map(|a| a.collection);
    table
        .and_then(|c| arrivals.get(&c).or_else(|| colls.get(&c)))
        .cloned()
        .ok_or_else(|| "internal error: a fold reads no rendered table".to_string())
}

/// A node's collections by id.
type Colls<'s> = BTreeMap<CollectionId, Coll<'s, u64>>;

/// One rule of a node rendered the way it is computed: folded by the driver (`prefolded`),
/// folded over the rows arriving in its table, or by its own operators.
fn render_rule<'s>(
    p: &Program,
    plan: &NodePlan,
    paths: &Paths,
    rule: &Rule,
    prefolded: &mut BTreeMap<RuleId, VecCollection<'s, u64, (bool, Row), isize>>,
    (arrivals, colls): (&Colls<'s>, &Colls<'s>),
    shared: &mut Shared<'s, u64>,
) -> Result<Rendered<'s, u64>, String> {
    if let Some(changes) = prefolded.remove(&rule.id) {
        Ok(split(changes, Vec::new(), Value::Int(i64::from(rule.id.0))))
    } else if paths.folds.contains(&rule.id) {
        Ok(fold_rule(p, rule, fold_input(rule, arrivals, colls)?, plan.instance, paths))
    } else {
        self::rule(p, rule, colls, shared, plan.instance)
            .ok_or_else(|| "internal error: a rule reads an unrendered collection".to_string())
    }
}

/// A collection one tick late: the variable that feeds it.
type Delayed<'s> = Variable<'s, u64, Vec<(Row, u64, isize)>>;

/// The collections a node's dataflow exposes to the driver.
pub struct NodeDataflow<'s> {
    /// Final contents of each output interface per tick: `<=` facts and `<~` sends.
    pub outputs: BTreeMap<CollectionId, Coll<'s, u64>>,
    /// Every table's next state and every delayed collection: changes mean "not quiescent".
    pub activity: Coll<'s, u64>,
    pub errors: Coll<'s, u64>,
}

/// Builds the dataflow of one node. `inputs` are the external input collections;
/// `prefolded` the outputs of the folds the driver computes (`prefold.rs`).
pub fn node<'s>(
    p: &Program,
    plan: &NodePlan,
    scope: Scope<'s, u64>,
    inputs: BTreeMap<CollectionId, Coll<'s, u64>>,
    mut prefolded: BTreeMap<RuleId, VecCollection<'s, u64, (bool, Row), isize>>,
) -> Result<NodeDataflow<'s>, String> {
    let mut colls: BTreeMap<CollectionId, Coll<'s, u64>> = BTreeMap::new();
    let mut delayed: BTreeMap<CollectionId, Delayed<'s>> = BTreeMap::new();
    let mut bases: BTreeMap<CollectionId, Vec<Coll<'s, u64>>> = BTreeMap::new();
    let mut add_delay = |c: CollectionId, bases: &mut BTreeMap<CollectionId, Vec<Coll<'s, u64>>>| {
        if let std::collections::btree_map::Entry::Vacant(slot) = delayed.entry(c) {
            let (var, coll) = Variable::new(scope, 1u64);
            slot.insert(var);
            bases.entry(c).or_default().push(coll);
        }
    };
    for (c, coll) in inputs {
        bases.entry(c).or_default().push(coll);
    }
    let paths = crate::paths::paths(p, plan);
    for c in plan.collections(p, CollectionKind::Table) {
        if !paths.accumulating.contains(&c) {
            add_delay(c, &mut bases);
        }
    }
    for &r in &plan.deferred {
        if let Some(rule) = p.rule(r) {
            add_delay(rule.target, &mut bases);
        }
    }
    for (_, input) in &plan.loopback {
        add_delay(*input, &mut bases);
    }
    // Instant rules, stratum by stratum; within a stratum, in dependency order.
    let by_target = |rules: &[RuleId]| -> BTreeMap<CollectionId, Vec<RuleId>> {
        let mut m: BTreeMap<CollectionId, Vec<RuleId>> = BTreeMap::new();
        for &r in rules {
            if let Some(rule) = p.rule(r) {
                m.entry(rule.target).or_default().push(r);
            }
        }
        m
    };
    let mut errors: Vec<Coll<'s, u64>> = Vec::new();
    let module_rules: Vec<RuleId> = plan.strata.iter().flatten().copied().collect();
    let instant = by_target(&module_rules);
    // The rows arriving in each accumulating table (insertions only, duplicates allowed).
    let mut arrivals: BTreeMap<CollectionId, Coll<'s, u64>> = BTreeMap::new();
    let mut shared: Shared<'s, u64> = BTreeMap::new();
    for component in paths.order.iter().cloned() {
        if !component.iter().any(|c| paths.recursive.contains(c)) {
            for c in component {
                let mut parts: Vec<Coll<'s, u64>> = bases.remove(&c).unwrap_or_default();
                for &r in instant.get(&c).into_iter().flatten() {
                    let Some(rule) = p.rule(r) else { continue };
                    let out = render_rule(p, plan, &paths, rule, &mut prefolded, (&arrivals, &colls), &mut shared)?;
                    let from_insert_only =
                        rule.body.atoms.iter().all(|a| paths.insert_only_inputs.contains(&a.collection));
                    if paths.accumulating.contains(&c) && !from_insert_only {
                        // Keep what each tick's input brought: drop the retraction that ends
                        // the input fact's tick, so the table needs no feedback loop.
                        let kept = timely::dataflow::operators::vec::Filter::filter(out.rows.inner, |(_, _, d)| *d > 0);
                        parts.push(VecCollection::new(kept));
                    } else {
                        parts.push(out.rows);
                    }
                    errors.push(out.errors);
                }
                let arriving = match parts.len() {
                    1 => parts.pop().ok_or("internal error: no part")?,
                    _ => differential_dataflow::collection::concatenate(scope, parts),
                };
                if paths.accumulating.contains(&c) {
                    arrivals.insert(c, arriving.clone());
                }
                // Only folds read it, and they deduplicate: no set is built.
                if paths.fold_only.contains(&c) {
                    continue;
                }
                // One fold's output, a row per group, or an input read only into
                // accumulating tables: either is a set already.
                if paths.fold_sets.contains(&c) || paths.insert_only_inputs.contains(&c) {
                    colls.insert(c, arriving);
                    continue;
                }
                colls.insert(c, arriving.distinct());
            }
            continue;
        }
        // A recursive component: its collections evolve together to their fixpoint in an
        // iterative scope (stratification guarantees every rule here is monotone in them).
        let member_bases: BTreeMap<CollectionId, Vec<Coll<'s, u64>>> =
            component.iter().map(|c| (*c, bases.remove(c).unwrap_or_default())).collect();
        let outer = colls.clone();
        let (results, errs) = scope.iterative::<u64, _, _>(|inner| -> Result<_, String> {
            let mut inner_colls: BTreeMap<CollectionId, Coll<'_, timely::order::Product<u64, u64>>> =
                outer.iter().map(|(c, x)| (*c, x.clone().enter(inner))).collect();
            let mut vars = Vec::new();
            for &c in &component {
                let (var, coll) = Variable::new(inner, timely::order::Product::new(0, 1));
                vars.push((c, var));
                inner_colls.insert(c, coll);
            }
            let mut results = BTreeMap::new();
            let mut errs = Vec::new();
            let mut inner_shared: Shared<'_, timely::order::Product<u64, u64>> = BTreeMap::new();
            for (c, var) in vars {
                let mut parts: Vec<Coll<'_, timely::order::Product<u64, u64>>> =
                    member_bases.get(&c).into_iter().flatten().map(|b| b.clone().enter(inner)).collect();
                for &r in instant.get(&c).into_iter().flatten() {
                    let Some(rule) = p.rule(r) else { continue };
                    let out = self::rule(p, rule, &inner_colls, &mut inner_shared, plan.instance)
                        .ok_or("internal error: a rule reads an unrendered collection")?;
                    parts.push(out.rows);
                    errs.push(out.errors.leave(scope));
                }
                let next = differential_dataflow::collection::concatenate(inner, parts).distinct();
                var.set(next.clone());
                results.insert(c, next.leave(scope));
            }
            Ok((results, errs))
        })?;
        colls.extend(results);
        errors.extend(errs);
    }
    // End of tick: deferred inserts and deletes, and sends.
    let mut plus: BTreeMap<CollectionId, Vec<Coll<'s, u64>>> = BTreeMap::new();
    let mut minus: BTreeMap<CollectionId, Vec<Coll<'s, u64>>> = BTreeMap::new();
    let mut sends: BTreeMap<CollectionId, Vec<Coll<'s, u64>>> = BTreeMap::new();
    for (list, into) in [(&plan.deferred, &mut plus), (&plan.deletes, &mut minus), (&plan.sends, &mut sends)] {
        for &r in list {
            let Some(rule) = p.rule(r) else { continue };
            let out = render_rule(p, plan, &paths, rule, &mut prefolded, (&arrivals, &colls), &mut shared)?;
            into.entry(rule.target).or_default().push(out.rows);
            errors.push(out.errors);
        }
    }
    let mut activity: Vec<Coll<'s, u64>> = Vec::new();
    let mut sent: BTreeMap<CollectionId, Coll<'s, u64>> = BTreeMap::new();
    for (o, parts) in sends {
        sent.insert(o, differential_dataflow::collection::concatenate(scope, parts).distinct());
    }
    for (c, var) in std::mem::take(&mut delayed) {
        let kind = p.collection(c).map(|x| x.kind);
        let next = match kind {
            Some(CollectionKind::Table) if !minus.contains_key(&c) => {
                // No deletions: the table only grows. Its current contents are already
                // distinct, so without deferred inserts they feed back unchanged.
                let current = colls.get(&c).cloned().ok_or("internal error: table not rendered")?;
                match plus.remove(&c) {
                    Some(added) => {
                        differential_dataflow::collection::concatenate(scope, std::iter::once(current).chain(added))
                            .distinct()
                    }
                    None => current,
                }
            }
            Some(CollectionKind::Table) => {
                let current = colls.get(&c).cloned().ok_or("internal error: table not rendered")?;
                let removed =
                    differential_dataflow::collection::concatenate(scope, minus.remove(&c).unwrap_or_default())
                        .distinct();
                let kept = current.map(|r| (r, ())).antijoin(removed).map(|(r, ())| r);
                let added = plus.remove(&c).unwrap_or_default();
                differential_dataflow::collection::concatenate(scope, std::iter::once(kept).chain(added)).distinct()
            }
            Some(CollectionKind::Input) => {
                // A wire carries everything its output emits in a tick: `<=` facts and sends.
                let mut parts: Vec<Coll<'s, u64>> = Vec::new();
                for (o, _) in plan.loopback.iter().filter(|(_, i)| *i == c) {
                    parts.extend(colls.get(o).cloned());
                    parts.extend(sent.get(o).cloned());
                }
                differential_dataflow::collection::concatenate(scope, parts).distinct()
            }
            _ => differential_dataflow::collection::concatenate(scope, plus.remove(&c).unwrap_or_default()).distinct(),
        };
        // Tagged with the collection, so equal facts of different collections never cancel
        // when the driver consolidates the changes.
        let tag = Value::Int(i64::from(c.0));
        activity.push(next.clone().map(move |row| {
            let mut tagged = Row::new();
            tagged.push(tag.clone());
            tagged.extend(row);
            tagged
        }));
        var.set(next);
    }
    let mut outputs = BTreeMap::new();
    for o in plan.collections(p, CollectionKind::Output) {
        let local = colls.get(&o).cloned().ok_or("internal error: output not rendered")?;
        let all = match sent.get(&o) {
            Some(s) => local.concat(s.clone()).distinct(),
            None => local,
        };
        outputs.insert(o, all);
    }
    let activity = differential_dataflow::collection::concatenate(scope, activity);
    let errors = differential_dataflow::collection::concatenate(scope, errors);
    Ok(NodeDataflow { outputs, activity, errors })
}
