//! Builds one node's dataflow: its rules rendered into a differential dataflow over `Row`s,
//! each on the execution path `paths.rs` decided for it.
//!
//! Ticks are timely epochs. Input interfaces hold each tick's facts for that tick only (the
//! driver inserts them at t and retracts them at t+1). A table is a `Variable` fed from tick
//! t to t+1 with `(T \ deleted) ∪ inserted`, so deletions apply before inserts, as in Bud. A
//! scratch is a derived collection; a deferred `<+` into a scratch is a one-tick delay. `<~`
//! sends into outputs, and loopback wires deliver them to inputs in the next tick. `<=` rules
//! are rendered in dependency order of the strongly connected components of the `<=` graph;
//! a recursive component is an `iterative` scope whose collections are `Variable`s that
//! evolve together to their fixpoint. Every collection is `distinct`.

use crate::eval::{aggregate, eval, Ctx, Flat};
use crate::paths::Paths;
use crate::plan::NodePlan;
use crate::rules::{join_on, Check, Coll, Group};
use crate::value::{Row, Value};
use bloomc_compiler::ir::{CollectionId, Expr, Program, Rule, RuleId};
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

/// Renders one rule against the collections it reads; `count_path` when `paths.rs` put it on
/// the count path.
pub fn rule<'s, T: CountKeys>(
    p: &Program,
    r: &Rule,
    colls: &BTreeMap<CollectionId, Coll<'s, T>>,
    shared: &mut Shared<'s, T>,
    (instance, count_path): (u32, bool),
) -> Option<Rendered<'s, T>> {
    let b = &r.body;
    let Joined { bound, offsets, used } = join(p, r, colls, shared)?;
    let flat = |atom: usize, col: usize| offsets.get(atom).map_or(0, |o| o + col);
    // Equalities not used as join keys, and the `where` filters.
    let leftover: Vec<_> = b
        .equalities
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(e, _)| (flat(e.left.atom, e.left.column), flat(e.right.atom, e.right.column)))
        .collect();
    let ctx = Ctx { instance, row: 0, seed: 0 };
    let check = Check::new(leftover, b.filters.clone(), offsets.clone(), ctx);
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
        Some(keys) => group(bound, keys, (head, b.having.clone()), (offs, ctx), count_path),
    };
    Some(split(produced, errors, tag))
}

/// A rule body's atoms joined in order, each on its equalities with the atoms before it
/// (the right side's arrangement shared through `shared`): the bindings as flat rows, each
/// atom's offset in them, and which equalities served as join keys.
struct Joined<'s, T: Timestamp + Lattice> {
    bound: Coll<'s, T>,
    offsets: Vec<usize>,
    used: Vec<bool>,
}

fn join<'s, T: CountKeys>(
    p: &Program,
    r: &Rule,
    colls: &BTreeMap<CollectionId, Coll<'s, T>>,
    shared: &mut Shared<'s, T>,
) -> Option<Joined<'s, T>> {
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
    Some(Joined { bound, offsets, used })
}

/// The rows of an aggregating rule: each binding's group key evaluated (a key that fails
/// is an error), then each group's aggregates by the count path or a `reduce`, and the
/// group's row from `Group::finish`.
fn group<'s, T: CountKeys>(
    bound: Coll<'s, T>,
    keys: &[Expr],
    (head, having): (Vec<Expr>, Option<Expr>),
    (offs, ctx): (Vec<usize>, Ctx),
    count_path: bool,
) -> VecCollection<'s, T, (bool, Row), isize> {
    // Evaluate each binding's group key; a key that fails to evaluate is an error.
    let key_exprs = keys.to_vec();
    let offs2 = offs.clone();
    let (keyed, bad_keys) = bound.inner.ok_err::<Vec<_>, _, Vec<_>, _, _>(move |(row, t, d)| {
        let flat = Flat { row: &row, offsets: &offs2 };
        match key_exprs.iter().map(|e| eval(e, &flat, &ctx, &[])).collect::<Result<Row, _>>() {
            Ok(k) => Ok(((k, row), t, d)),
            Err(_) => Err(((false, row), t, d)),
        }
    });
    let (keyed, bad_keys) = (VecCollection::new(keyed), VecCollection::new(bad_keys));
    let finish = Group::new(keys.to_vec(), head, having, ctx);
    let grouped = if count_path {
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
    let produced = crate::foldop::dataflow(p, r, table, instance, unique);
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
        self::rule(p, rule, colls, shared, (plan.instance, paths.counted.contains(&rule.id)))
            .ok_or_else(|| "internal error: a rule reads an unrendered collection".to_string())
    }
}

/// Parts of collections, to be concatenated.
type Parts<'s> = BTreeMap<CollectionId, Vec<Coll<'s, u64>>>;

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
    prefolded: BTreeMap<RuleId, VecCollection<'s, u64, (bool, Row), isize>>,
) -> Result<NodeDataflow<'s>, String> {
    let mut b = Builder::new(p, plan, scope, inputs, prefolded);
    // Instant rules, stratum by stratum; within a stratum, in dependency order.
    for component in b.paths.order.clone() {
        if component.iter().any(|c| b.paths.recursive.contains(c)) {
            b.recursive(component)?;
        } else {
            for c in component {
                b.collection(c)?;
            }
        }
    }
    let (activity, sent) = b.end_of_tick()?;
    let mut outputs = BTreeMap::new();
    for o in plan.collections(p, CollectionKind::Output) {
        let local = b.colls.get(&o).cloned().ok_or("internal error: output not rendered")?;
        let all = match sent.get(&o) {
            Some(s) => local.concat(s.clone()).distinct(),
            None => local,
        };
        outputs.insert(o, all);
    }
    let errors = differential_dataflow::collection::concatenate(scope, b.errors);
    Ok(NodeDataflow { outputs, activity, errors })
}

/// The state of a node's dataflow while it is built, phase by phase: the delayed
/// collections and the bases they feed, then each `<=` collection in dependency order, then
/// the end of the tick.
struct Builder<'s, 'p> {
    p: &'p Program,
    plan: &'p NodePlan,
    paths: Paths,
    scope: Scope<'s, u64>,
    /// Each collection's contents once rendered.
    colls: Colls<'s>,
    /// What each collection starts from: its input facts, its last tick's contents.
    bases: Parts<'s>,
    delayed: BTreeMap<CollectionId, Delayed<'s>>,
    /// The rows arriving in each accumulating table (insertions only, duplicates allowed).
    arrivals: Colls<'s>,
    shared: Shared<'s, u64>,
    prefolded: BTreeMap<RuleId, VecCollection<'s, u64, (bool, Row), isize>>,
    /// The `<=` rules by target.
    instant: BTreeMap<CollectionId, Vec<RuleId>>,
    errors: Vec<Coll<'s, u64>>,
}

impl<'s, 'p> Builder<'s, 'p> {
    /// The inputs as bases, and a one-tick delay for every table that is not accumulating,
    /// every target of a `<+` rule and every input a loopback wire feeds.
    fn new(
        p: &'p Program,
        plan: &'p NodePlan,
        scope: Scope<'s, u64>,
        inputs: Colls<'s>,
        prefolded: BTreeMap<RuleId, VecCollection<'s, u64, (bool, Row), isize>>,
    ) -> Builder<'s, 'p> {
        let paths = crate::paths::paths(p, plan);
        let mut instant: BTreeMap<CollectionId, Vec<RuleId>> = BTreeMap::new();
        for &r in plan.strata.iter().flatten() {
            if let Some(rule) = p.rule(r) {
                instant.entry(rule.target).or_default().push(r);
            }
        }
        let mut b = Builder {
            p,
            plan,
            paths,
            scope,
            colls: BTreeMap::new(),
            bases: BTreeMap::new(),
            delayed: BTreeMap::new(),
            arrivals: BTreeMap::new(),
            shared: BTreeMap::new(),
            prefolded,
            instant,
            errors: Vec::new(),
        };
        for (c, coll) in inputs {
            b.bases.entry(c).or_default().push(coll);
        }
        let tables = plan.collections(p, CollectionKind::Table);
        let deferred = plan.deferred.iter().filter_map(|&r| p.rule(r)).map(|r| r.target);
        let looped = plan.loopback.iter().map(|(_, i)| *i);
        let delayed: Vec<CollectionId> =
            tables.into_iter().filter(|c| !b.paths.accumulating.contains(c)).chain(deferred).chain(looped).collect();
        for c in delayed {
            if let std::collections::btree_map::Entry::Vacant(slot) = b.delayed.entry(c) {
                let (var, coll) = Variable::new(scope, 1u64);
                slot.insert(var);
                b.bases.entry(c).or_default().push(coll);
            }
        }
        b
    }

    /// One rule on the path `paths.rs` chose for it.
    fn rule(&mut self, rule: &Rule) -> Result<Rendered<'s, u64>, String> {
        let colls = (&self.arrivals, &self.colls);
        render_rule(self.p, self.plan, &self.paths, rule, &mut self.prefolded, colls, &mut self.shared)
    }

    /// A collection outside recursion: its base and its rules' rows, as a set unless only
    /// folds read it or it is one already.
    fn collection(&mut self, c: CollectionId) -> Result<(), String> {
        let p = self.p;
        let mut parts: Vec<Coll<'s, u64>> = self.bases.remove(&c).unwrap_or_default();
        for r in self.instant.get(&c).cloned().unwrap_or_default() {
            let Some(rule) = p.rule(r) else { continue };
            let out = self.rule(rule)?;
            let paths = &self.paths;
            let from_insert_only = rule.body.atoms.iter().all(|a| paths.insert_only_inputs.contains(&a.collection));
            if paths.accumulating.contains(&c) && !from_insert_only {
                // Keep what each tick's input brought: drop the retraction that ends the
                // input fact's tick, so the table needs no feedback loop.
                let kept = timely::dataflow::operators::vec::Filter::filter(out.rows.inner, |(_, _, d)| *d > 0);
                parts.push(VecCollection::new(kept));
            } else {
                parts.push(out.rows);
            }
            self.errors.push(out.errors);
        }
        let paths = &self.paths;
        let arriving = match parts.len() {
            1 => parts.pop().ok_or("internal error: no part")?,
            _ => differential_dataflow::collection::concatenate(self.scope, parts),
        };
        if paths.accumulating.contains(&c) {
            self.arrivals.insert(c, arriving.clone());
        }
        if paths.fold_only.contains(&c) {
            // Only folds read it, and they deduplicate: no set is built.
        } else if paths.fold_sets.contains(&c) || paths.insert_only_inputs.contains(&c) {
            // One fold's output, a row per group, or an input read only into accumulating
            // tables: either is a set already.
            self.colls.insert(c, arriving);
        } else {
            self.colls.insert(c, arriving.distinct());
        }
        Ok(())
    }

    /// A recursive component: its collections evolve together to their fixpoint in an
    /// iterative scope (stratification guarantees every rule here is monotone in them).
    fn recursive(&mut self, component: Vec<CollectionId>) -> Result<(), String> {
        let (p, plan, paths, scope, instant) = (self.p, self.plan, &self.paths, self.scope, &self.instant);
        let member_bases: BTreeMap<CollectionId, Vec<Coll<'s, u64>>> =
            component.iter().map(|c| (*c, self.bases.remove(c).unwrap_or_default())).collect();
        let outer = &self.colls;
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
                    let count_path = paths.counted.contains(&rule.id);
                    let out = self::rule(p, rule, &inner_colls, &mut inner_shared, (plan.instance, count_path))
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
        self.colls.extend(results);
        self.errors.extend(errs);
        Ok(())
    }

    /// End of tick: the `<+`, `<-` and `<~` rules, each delayed collection's next state
    /// fed back, and the activity (every next state, tagged with its collection) by which
    /// the driver sees whether the node is quiescent. Returns it and the sends per output.
    fn end_of_tick(&mut self) -> Result<(Coll<'s, u64>, Colls<'s>), String> {
        let (p, plan, scope) = (self.p, self.plan, self.scope);
        let (mut plus, mut minus, mut sends): (Parts<'s>, Parts<'s>, Parts<'s>) = Default::default();
        for (list, into) in [(&plan.deferred, &mut plus), (&plan.deletes, &mut minus), (&plan.sends, &mut sends)] {
            for &r in list {
                let Some(rule) = p.rule(r) else { continue };
                let out = self.rule(rule)?;
                into.entry(rule.target).or_default().push(out.rows);
                self.errors.push(out.errors);
            }
        }
        let mut sent: Colls<'s> = BTreeMap::new();
        for (o, parts) in sends {
            sent.insert(o, differential_dataflow::collection::concatenate(scope, parts).distinct());
        }
        let mut activity: Vec<Coll<'s, u64>> = Vec::new();
        for (c, var) in std::mem::take(&mut self.delayed) {
            let next = self.next_state(c, (&mut plus, &mut minus), &sent)?;
            // Tagged with the collection, so equal facts of different collections never
            // cancel when the driver consolidates the changes.
            let tag = Value::Int(i64::from(c.0));
            activity.push(next.clone().map(move |row| {
                let mut tagged = Row::new();
                tagged.push(tag.clone());
                tagged.extend(row);
                tagged
            }));
            var.set(next);
        }
        Ok((differential_dataflow::collection::concatenate(scope, activity), sent))
    }

    /// A delayed collection's next tick: a table's `(T \ deleted) ∪ inserted`, an input's
    /// loopback facts, a scratch's deferred inserts.
    fn next_state(
        &self,
        c: CollectionId,
        (plus, minus): (&mut Parts<'s>, &mut Parts<'s>),
        sent: &Colls<'s>,
    ) -> Result<Coll<'s, u64>, String> {
        let scope = self.scope;
        let concat = |parts: Vec<Coll<'s, u64>>| differential_dataflow::collection::concatenate(scope, parts);
        Ok(match self.p.collection(c).map(|x| x.kind) {
            Some(CollectionKind::Table) if !minus.contains_key(&c) => {
                // No deletions: the table only grows. Its current contents are already
                // distinct, so without deferred inserts they feed back unchanged.
                let current = self.colls.get(&c).cloned().ok_or("internal error: table not rendered")?;
                match plus.remove(&c) {
                    Some(added) => concat(std::iter::once(current).chain(added).collect()).distinct(),
                    None => current,
                }
            }
            Some(CollectionKind::Table) => {
                let current = self.colls.get(&c).cloned().ok_or("internal error: table not rendered")?;
                let removed = concat(minus.remove(&c).unwrap_or_default()).distinct();
                let kept = current.map(|r| (r, ())).antijoin(removed).map(|(r, ())| r);
                let added = plus.remove(&c).unwrap_or_default();
                concat(std::iter::once(kept).chain(added).collect()).distinct()
            }
            Some(CollectionKind::Input) => {
                // A wire carries everything its output emits in a tick: `<=` facts and sends.
                let mut parts: Vec<Coll<'s, u64>> = Vec::new();
                for (o, _) in self.plan.loopback.iter().filter(|(_, i)| *i == c) {
                    parts.extend(self.colls.get(o).cloned());
                    parts.extend(sent.get(o).cloned());
                }
                concat(parts).distinct()
            }
            _ => concat(plus.remove(&c).unwrap_or_default()).distinct(),
        })
    }
}
