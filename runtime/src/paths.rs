//! Which execution path each collection and rule of a node takes. The monotonicity facts
//! the dataflow (`dataflow.rs`) and the driver exploit are decided here, once, so `bloomc dump plan` and the
//! dataflow agree:
//! - an *accumulating* table only gathers what input interfaces bring, so it is built
//!   without a feedback loop;
//! - a *growing* table is any other table that no `<-` rule deletes from: what it holds in
//!   a tick it holds in every later tick;
//! - a *fold* rule (`<=` or `<+`) groups an accumulating or growing table with lattice-fold
//!   aggregates only, so it keeps one accumulator per group and never retracts on its input
//!   side (`fold.rs`): each tick costs what the tick adds to the table, not what the table
//!   holds (a `reduce` is handed every row of a changed group again);
//! - an *insert-only* input is read only by rules into accumulating tables, so the driver
//!   never retracts its facts and no set is built over them;
//! - a *fold set* is a scratch or output whose one rule is a fold whose head holds every
//!   group key: one row per group, a set already, so no `distinct` is built over it;
//! - a *unique* table is an accumulating table whose one rule reads a keyed input and keeps
//!   every key column: no fact repeats a key (`keys.rs`), so no row repeats, and its folds
//!   keep no set of the rows they folded;
//! - a *prefolded* input is insert-only and read only into tables that only folds read: on
//!   one worker, the driver folds its facts itself, before the dataflow, and only the folds'
//!   changes enter it (`prefold.rs`);
//! - a *column-folded* input is a prefolded input of `int` columns with a key, copied by one
//!   rule into a table that only folds of plain columns read (`colfold.rs`): the driver
//!   folds its facts a column at a time, and they are never built as rows.

use crate::plan::NodePlan;
use bloomc_compiler::ir::{AggFn, CollectionId, Expr, ExprKind, Program, Rule, RuleId, Type};
use bloomc_grammar::ast::CollectionKind;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default)]
pub struct Paths {
    pub accumulating: BTreeSet<CollectionId>,
    /// Tables, other than accumulating ones, that nothing deletes from: they only grow.
    pub growing: BTreeSet<CollectionId>,
    pub folds: BTreeSet<RuleId>,
    /// Accumulating tables read only by fold rules: their rows enter the folds, deduplicated
    /// there, and no differential set of them is built.
    pub fold_only: BTreeSet<CollectionId>,
    pub insert_only_inputs: BTreeSet<CollectionId>,
    /// Scratches and outputs whose one producer is a fold whose head holds every group key:
    /// each group yields its own row, so the fold's output is already a set and no
    /// `distinct` is built over it.
    pub fold_sets: BTreeSet<CollectionId>,
    /// Insert-only inputs whose facts reach only folds (through rules into `fold_only`
    /// tables that read nothing else), and those folds: on one worker the driver folds them.
    pub prefolded_inputs: BTreeSet<CollectionId>,
    pub prefolded: BTreeSet<RuleId>,
    /// Accumulating tables no row of which can arrive twice: one rule, reading a keyed
    /// input, with every key column in its head.
    pub unique: BTreeSet<CollectionId>,
    /// Prefolded inputs whose facts the driver folds a column at a time (`colfold.rs`), and
    /// the folds it so computes.
    pub column_folded: BTreeSet<CollectionId>,
    pub column_folds: BTreeSet<RuleId>,
    /// Aggregating rules, other than folds, whose head and `having` read only counts over
    /// non-empty group keys: the count path, which counts each group's distinct bindings
    /// without keeping them in an arrangement.
    pub counted: BTreeSet<RuleId>,
    /// The strongly connected components of the `<=` graph in dependency order.
    pub order: Vec<Vec<CollectionId>>,
    /// Collections in a recursive component.
    pub recursive: BTreeSet<CollectionId>,
}

/// The rules of the node, every phase.
fn all_rules<'p>(p: &'p Program, plan: &NodePlan) -> impl Iterator<Item = &'p Rule> {
    let ids: Vec<RuleId> =
        plan.strata.iter().flatten().chain(&plan.deferred).chain(&plan.deletes).chain(&plan.sends).copied().collect();
    ids.into_iter().filter_map(|r| p.rule(r))
}

fn reads(r: &Rule, c: CollectionId) -> bool {
    r.body.atoms.iter().any(|a| a.collection == c) || r.body.antijoins.iter().any(|a| a.collection == c)
}

pub fn paths(p: &Program, plan: &NodePlan) -> Paths {
    let accumulating = accumulating_tables(p, plan);
    let all: Vec<CollectionId> = p.module(plan.module).map(|m| m.collections.clone()).unwrap_or_default();
    let mut instant: BTreeMap<CollectionId, Vec<RuleId>> = BTreeMap::new();
    for &r in plan.strata.iter().flatten() {
        if let Some(rule) = p.rule(r) {
            instant.entry(rule.target).or_default().push(r);
        }
    }
    let order = dependency_order(p, &all, &instant);
    let mut recursive = BTreeSet::new();
    for component in &order {
        let cyclic = component.len() > 1
            || component
                .iter()
                .any(|c| instant.get(c).into_iter().flatten().filter_map(|&r| p.rule(r)).any(|r| reads(r, *c)));
        if cyclic {
            recursive.extend(component.iter().copied());
        }
    }
    let deleted: BTreeSet<CollectionId> = plan.deletes.iter().filter_map(|&r| p.rule(r)).map(|r| r.target).collect();
    let growing: BTreeSet<CollectionId> = plan
        .collections(p, CollectionKind::Table)
        .into_iter()
        .filter(|c| !accumulating.contains(c) && !deleted.contains(c))
        .collect();
    let foldable: BTreeSet<CollectionId> = accumulating.union(&growing).copied().collect();
    // `<=` folds outside recursion, and `<+` folds (which end the tick, outside any scope).
    let folds: BTreeSet<RuleId> = plan
        .strata
        .iter()
        .flatten()
        .filter_map(|&r| p.rule(r))
        .filter(|r| !recursive.contains(&r.target))
        .chain(plan.deferred.iter().filter_map(|&r| p.rule(r)))
        .filter(|r| is_fold(r, &foldable))
        .map(|r| r.id)
        .collect();
    let fold_only = accumulating
        .iter()
        .copied()
        .filter(|&t| all_rules(p, plan).filter(|r| reads(r, t)).all(|r| folds.contains(&r.id)))
        .collect();
    let looped: BTreeSet<CollectionId> = plan.loopback.iter().map(|(_, i)| *i).collect();
    let insert_only_inputs = plan
        .collections(p, CollectionKind::Input)
        .into_iter()
        .filter(|c| !looped.contains(c))
        .filter(|&c| all_rules(p, plan).filter(|r| reads(r, c)).all(|r| accumulating.contains(&r.target)))
        .collect();
    let deferred: BTreeSet<CollectionId> = plan.deferred.iter().filter_map(|&r| p.rule(r)).map(|r| r.target).collect();
    let fold_sets = instant
        .iter()
        .filter(|(c, _)| {
            p.collection(**c).is_some_and(|x| matches!(x.kind, CollectionKind::Scratch | CollectionKind::Output))
                && !deferred.contains(c)
        })
        .filter_map(|(c, rules)| match rules.as_slice() {
            [r] if folds.contains(r) && p.rule(*r).is_some_and(head_holds_keys) => Some(*c),
            _ => None,
        })
        .collect();
    let (prefolded_inputs, prefolded) = prefoldable(p, plan, &insert_only_inputs, &fold_only);
    let unique: BTreeSet<CollectionId> = accumulating.iter().copied().filter(|&t| unique_rows(p, plan, t)).collect();
    let (column_folded, column_folds) = column_foldable(p, plan, &prefolded_inputs, &prefolded, &unique);
    let counted = all_rules(p, plan).filter(|r| !folds.contains(&r.id) && counts_per_group(r)).map(|r| r.id).collect();
    Paths {
        accumulating,
        growing,
        folds,
        fold_only,
        insert_only_inputs,
        fold_sets,
        prefolded_inputs,
        prefolded,
        unique,
        column_folded,
        column_folds,
        counted,
        order,
        recursive,
    }
}

/// Whether a rule groups by non-empty keys and its head and `having` read only counts, so
/// a group's count of distinct bindings is all it needs.
fn counts_per_group(r: &Rule) -> bool {
    let b = &r.body;
    let mut aggs = Vec::new();
    for e in b.head.iter().chain(b.having.iter()) {
        crate::eval::collect_aggs(e, &mut aggs);
    }
    b.group_by.as_ref().is_some_and(|keys| !keys.is_empty())
        && aggs.iter().all(|a| matches!(a.kind, ExprKind::Agg(AggFn::Count, _)))
}

impl Paths {
    /// The iterative scope a rule is rendered in: the index in [`Paths::order`] of its
    /// target's recursive component for a `<=` rule (`instant`) into one; `None` (the
    /// node's own scope) for every other rule.
    pub fn scope_of(&self, rule: &Rule, instant: bool) -> Option<usize> {
        let inner = instant && self.recursive.contains(&rule.target);
        inner.then(|| self.order.iter().position(|c| c.contains(&rule.target))).flatten()
    }
}

/// The inputs the driver can fold before the dataflow, and the folds it then computes: an
/// input qualifies when it is insert-only and every rule reading it fills a `fold_only`
/// table; a table qualifies when every rule filling it reads a qualifying input. The two
/// conditions are narrowed together until both hold, so no fold is fed by both paths.
fn prefoldable(
    p: &Program,
    plan: &NodePlan,
    insert_only: &BTreeSet<CollectionId>,
    fold_only: &BTreeSet<CollectionId>,
) -> (BTreeSet<CollectionId>, BTreeSet<RuleId>) {
    let rules: Vec<&Rule> = all_rules(p, plan).collect();
    let mut inputs: BTreeSet<CollectionId> = insert_only.clone();
    let mut tables: BTreeSet<CollectionId> = fold_only.clone();
    loop {
        let before = (inputs.len(), tables.len());
        inputs.retain(|&i| {
            let mut readers = rules.iter().filter(|r| reads(r, i)).peekable();
            readers.peek().is_some() && readers.all(|r| tables.contains(&r.target))
        });
        tables.retain(|&t| {
            rules.iter().filter(|r| r.target == t).all(|r| r.body.atoms.iter().all(|a| inputs.contains(&a.collection)))
        });
        if (inputs.len(), tables.len()) == before {
            break;
        }
    }
    let folds =
        rules.iter().filter(|r| r.body.atoms.iter().any(|a| tables.contains(&a.collection))).map(|r| r.id).collect();
    (inputs, folds)
}

/// The prefolded inputs the driver folds a column at a time, and their folds: an input
/// whose columns are all `int`, read by one rule, which copies it into a unique table, every
/// rule reading which is a prefolded fold that `colfold::eligible` takes (group keys and
/// aggregate arguments plain columns, no `where`). The facts of such an input need no row:
/// its key is checked on its column, and the folds read their columns.
fn column_foldable(
    p: &Program,
    plan: &NodePlan,
    prefolded_inputs: &BTreeSet<CollectionId>,
    prefolded: &BTreeSet<RuleId>,
    unique: &BTreeSet<CollectionId>,
) -> (BTreeSet<CollectionId>, BTreeSet<RuleId>) {
    let (mut inputs, mut folds) = (BTreeSet::new(), BTreeSet::new());
    for &c in prefolded_inputs {
        let Some(types) = p.collection(c).map(|x| x.columns.iter().map(|col| col.ty).collect::<Vec<Type>>()) else {
            continue;
        };
        let readers: Vec<&Rule> = all_rules(p, plan).filter(|r| reads(r, c)).collect();
        let [fill] = readers.as_slice() else { continue };
        let t = fill.target;
        let over: Vec<&Rule> = all_rules(p, plan).filter(|r| reads(r, t)).collect();
        let fits = !types.is_empty()
            && types.iter().all(|ty| *ty == Type::Int)
            && copies(p, fill)
            && unique.contains(&t)
            && all_rules(p, plan).filter(|r| r.target == t).count() == 1
            && !over.is_empty()
            && over.iter().all(|r| prefolded.contains(&r.id) && crate::colfold::eligible(r, &types));
        if fits {
            inputs.insert(c);
            folds.extend(over.iter().map(|r| r.id));
        }
    }
    (inputs, folds)
}

/// Whether no row of accumulating table `t` can arrive twice: its one rule reads a keyed
/// input and selects each key column as is, so two facts with different keys (the input
/// never admits two with the same, `keys.rs`) give different rows.
fn unique_rows(p: &Program, plan: &NodePlan, t: CollectionId) -> bool {
    let rules: Vec<&Rule> = all_rules(p, plan).filter(|r| r.target == t).collect();
    let [rule] = rules.as_slice() else { return false };
    let [atom] = rule.body.atoms.as_slice() else { return false };
    let Some(key) = p.collection(atom.collection).and_then(|c| c.key.as_ref()) else { return false };
    key.iter()
        .all(|&k| rule.body.head.iter().any(|h| matches!(&h.kind, ExprKind::Col(c) if c.atom == 0 && c.column == k)))
}

/// Whether every group key of `r` is also a column of its head, so two groups never yield
/// the same head row.
fn head_holds_keys(r: &Rule) -> bool {
    r.body.group_by.iter().flatten().all(|k| r.body.head.iter().any(|h| h.same(k)))
}

/// Whether a rule copies one collection's rows unchanged (`t <= i;` and its spelled-out
/// forms): the dataflow builds no operator for it.
pub fn copies(p: &Program, r: &Rule) -> bool {
    let b = &r.body;
    let [atom] = b.atoms.as_slice() else { return false };
    let arity = p.collection(atom.collection).map_or(0, |c| c.columns.len());
    b.group_by.is_none()
        && b.antijoins.is_empty()
        && b.filters.is_empty()
        && b.equalities.is_empty()
        && b.head.len() == arity
        && b.head.iter().enumerate().all(|(i, e)| matches!(&e.kind, ExprKind::Col(c) if c.atom == 0 && c.column == i))
}

/// An aggregate that is a lattice fold over a growing set of distinct bindings: `count`,
/// integer `sum` (exact, order-independent), `min`, `max`. Float sums depend on the order of
/// addition and `avg` is not a fold, so both take the `reduce` path.
pub fn is_fold_aggregate(agg: &Expr) -> bool {
    match &agg.kind {
        ExprKind::Agg(f, arg) => f.facts().fold(arg.as_deref().map(|a| a.ty)).is_some(),
        _ => false,
    }
}

/// A rule grouping one table of `foldable` (accumulating or growing), with no joins or
/// `notin`, whose aggregates are all folds.
fn is_fold(r: &Rule, foldable: &BTreeSet<CollectionId>) -> bool {
    let b = &r.body;
    let Some(_) = &b.group_by else { return false };
    let [atom] = b.atoms.as_slice() else { return false };
    let mut aggs = Vec::new();
    for e in b.head.iter().chain(b.having.iter()) {
        crate::eval::collect_aggs(e, &mut aggs);
    }
    foldable.contains(&atom.collection) && b.antijoins.is_empty() && aggs.iter().all(|a| is_fold_aggregate(a))
}

/// Tables that only accumulate what external inputs bring: nothing defers into or deletes
/// from them, and every rule into them is a `<=` filter or projection of one input interface
/// that only the driver feeds. Such a table is the union of its rules' outputs over all
/// ticks, so it is built without a feedback loop (the monotonicity fast path).
fn accumulating_tables(p: &Program, plan: &NodePlan) -> BTreeSet<CollectionId> {
    let writes = |rules: &[RuleId], c: CollectionId| rules.iter().filter_map(|&r| p.rule(r)).any(|r| r.target == c);
    let looped: Vec<CollectionId> = plan.loopback.iter().map(|(_, i)| *i).collect();
    plan.collections(p, CollectionKind::Table)
        .into_iter()
        .filter(|&c| !writes(&plan.deferred, c) && !writes(&plan.deletes, c))
        .filter(|&c| {
            let rules: Vec<&Rule> =
                plan.strata.iter().flatten().filter_map(|&r| p.rule(r)).filter(|r| r.target == c).collect();
            !rules.is_empty()
                && rules.iter().all(|r| {
                    let b = &r.body;
                    b.antijoins.is_empty()
                        && b.group_by.is_none()
                        && matches!(b.atoms.as_slice(), [a] if p.collection(a.collection).is_some_and(|x| x.kind == CollectionKind::Input) && !looped.contains(&a.collection))
                })
        })
        .collect()
}

/// The strongly connected components of the `<=` graph, each before every component that
/// reads it. A component of several collections (or one reading itself) is recursive.
fn dependency_order(
    p: &Program,
    all: &[CollectionId],
    instant: &BTreeMap<CollectionId, Vec<RuleId>>,
) -> Vec<Vec<CollectionId>> {
    let mut g: petgraph::graph::DiGraph<CollectionId, ()> = petgraph::graph::DiGraph::new();
    let nodes: BTreeMap<CollectionId, _> = all.iter().map(|&c| (c, g.add_node(c))).collect();
    for (target, rules) in instant {
        for r in rules.iter().filter_map(|&r| p.rule(r)) {
            let reads = r.body.atoms.iter().map(|a| a.collection).chain(r.body.antijoins.iter().map(|a| a.collection));
            for c in reads {
                if let (Some(&from), Some(&to)) = (nodes.get(&c), nodes.get(target)) {
                    g.add_edge(from, to, ());
                }
            }
        }
    }
    // Kosaraju yields components in reverse topological order; members sorted for
    // determinism. (Not Tarjan: petgraph's recurses once per node of a path, and a chain of
    // 300,000 rules overflowed the stack.)
    let mut sccs: Vec<Vec<CollectionId>> = petgraph::algo::kosaraju_scc(&g)
        .into_iter()
        .map(|scc| {
            let mut v: Vec<CollectionId> = scc.into_iter().filter_map(|n| g.node_weight(n).copied()).collect();
            v.sort();
            v
        })
        .collect();
    sccs.reverse();
    sccs
}
