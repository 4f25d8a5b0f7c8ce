//! Per-statement facts: which rules are nonmonotone, the gate (partition key) of each
//! nonmonotone rule, and which collections are nonmonotonically maintained.
//!
//! Nonmonotone: a group-by aggregate (unless its `having` is a threshold that only grows
//! true over insert-only tables), a `notin`, a deletion `<-`, or a read of a collection
//! that is itself nonmonotonically maintained. The gate of a rule is the set of columns its
//! nonmonotone operator partitions on: group-by keys, antijoin pairs, or the columns a
//! deletion matches on. Each gate column is traced through lineage to input columns.

use super::lineage::{class, InputCol, Lineage};
use crate::aggregates::Moves;
use crate::ir::{Body, ColRef, CollectionId, Expr, ExprKind, ModuleId, Program, Rule, RuleId, Value};
use bloomc_grammar::ast::{BinaryOp, CollectionKind, MergeOp};
use std::collections::{BTreeMap, BTreeSet};

/// One attribute of a gate: its display name, the input columns it is a copy of, and the
/// columns of the collection currently carrying it (to follow it through later joins).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GateAttr {
    pub name: String,
    pub inputs: BTreeSet<InputCol>,
    /// The input columns a seal on which is compatible with this attribute: those of
    /// `inputs` for which the column is partition-closed at the operator (lineage.rs).
    pub closed: BTreeSet<InputCol>,
    pub carriers: BTreeSet<usize>,
}

/// A gate: the attributes one nonmonotone operator partitions on. An empty gate is `*`.
pub type Gate = Vec<GateAttr>;

/// Distinct gates, each with the rules whose nonmonotone operators introduced it. Identical
/// gates from different rules are kept once, so long chains of operators stay cheap.
pub type Gates = BTreeMap<Gate, BTreeSet<RuleId>>;

/// Is `e` a test that, once true, stays true as the group grows (count/max above a bound,
/// min below one, sum of a non-negative constant above one)?
fn growing_test(e: &Expr) -> bool {
    let ExprKind::Binary(op, l, r) = &e.kind else {
        return false;
    };
    let lit = |x: &Expr| matches!(x.kind, ExprKind::Lit(_));
    let (agg, op) = match (op, lit(l), lit(r)) {
        (_, false, true) => (l, *op),
        // `k < count(..)` reads as `count(..) > k`.
        (BinaryOp::Lt, true, false) => (r, BinaryOp::Gt),
        (BinaryOp::Le, true, false) => (r, BinaryOp::Ge),
        (BinaryOp::Gt, true, false) => (r, BinaryOp::Lt),
        (BinaryOp::Ge, true, false) => (r, BinaryOp::Le),
        _ => return false,
    };
    let ExprKind::Agg(f, arg) = &agg.kind else {
        return false;
    };
    let up = matches!(op, BinaryOp::Gt | BinaryOp::Ge);
    let down = matches!(op, BinaryOp::Lt | BinaryOp::Le);
    match f.facts().moves {
        Moves::Up => up,
        Moves::Down => down,
        Moves::UpWhenArgumentNonNegative => {
            up && matches!(arg.as_deref().map(|a| &a.kind), Some(ExprKind::Lit(Value::Int(n))) if *n >= 0)
        }
        Moves::Either => false,
    }
}

fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match &e.kind {
        ExprKind::Binary(BinaryOp::And, a, b) => {
            let mut v = conjuncts(a);
            v.extend(conjuncts(b));
            v
        }
        _ => vec![e],
    }
}

/// An aggregate rule whose output only grows: it projects no aggregate, keeps groups by
/// growing tests and reads only tables. Such a rule is monotone when those tables are
/// insert-only. Over an input or a scratch it counts one tick's facts, so how the facts
/// fall into ticks decides which groups pass: nonmonotone like any aggregate.
pub fn threshold(p: &Program, body: &Body) -> bool {
    body.aggregates()
        && body.atoms.iter().all(|a| p.collection(a.collection).is_some_and(|c| c.kind == CollectionKind::Table))
        && !body.head.iter().any(Expr::has_aggregate)
        && body.having.as_ref().is_some_and(|h| conjuncts(h).iter().all(|c| growing_test(c) || !c.has_aggregate()))
}

/// The nonmonotone operator of the rule itself, ignoring what it reads.
pub fn own_nonmonotone(p: &Program, r: &Rule) -> bool {
    (r.body.aggregates() && !threshold(p, &r.body) && !singleton_groups(p, &r.body))
        || !r.body.antijoins.is_empty()
        || r.op == MergeOp::Delete
}

/// Does the `group by` name every column of every atom (directly or through a join
/// equality)? Then each group is one binding, its aggregates are functions of that binding
/// (`count(*)` is 1), and the rule is a projection: monotone.
fn singleton_groups(p: &Program, b: &Body) -> bool {
    let keys: Vec<ColRef> = b
        .group_by
        .iter()
        .flatten()
        .filter_map(|e| if let ExprKind::Col(c) = e.kind { Some(c) } else { None })
        .collect();
    !keys.is_empty()
        && b.atoms.iter().enumerate().all(|(i, a)| {
            let covered: BTreeSet<usize> =
                keys.iter().flat_map(|k| class(b, *k)).filter(|c| c.atom == i).map(|c| c.column).collect();
            p.collection(a.collection).is_some_and(|c| (0..c.columns.len()).all(|col| covered.contains(&col)))
        })
}

pub struct Facts {
    pub lineage: Lineage,
    /// Collections maintained nonmonotonically, with the gates that make them so.
    pub gates: BTreeMap<CollectionId, Gates>,
    /// Rules that are nonmonotone (own operator, or a read of a nonmonotone collection).
    pub nonmonotone: BTreeSet<RuleId>,
}

impl Facts {
    pub fn gates_of(&self, c: CollectionId) -> Option<&Gates> {
        self.gates.get(&c).filter(|g| !g.is_empty())
    }
}

fn col_name(p: &Program, body: &Body, c: ColRef) -> String {
    body.atoms
        .get(c.atom)
        .and_then(|a| p.collection(a.collection))
        .and_then(|coll| coll.columns.get(c.column))
        .map_or_else(|| "?".to_string(), |c| c.name.clone())
}

/// The input columns a rule-scope column traces to, through the rule's join equalities.
pub fn trace(facts_lineage: &Lineage, body: &Body, c: ColRef) -> BTreeSet<InputCol> {
    let mut out = BTreeSet::new();
    for e in class(body, c) {
        if let Some(a) = body.atoms.get(e.atom) {
            out.extend(facts_lineage.of(a.collection, e.column));
        }
    }
    out
}

/// Head positions that carry a copy of any column in `cols`.
fn carriers(body: &Body, cols: &BTreeSet<ColRef>) -> BTreeSet<usize> {
    body.head
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(&e.kind, ExprKind::Col(c) if cols.contains(c)))
        .map(|(i, _)| i)
        .collect()
}

fn attr(p: &Program, lin: &Lineage, body: &Body, c: ColRef) -> GateAttr {
    let cls = class(body, c);
    GateAttr {
        name: col_name(p, body, c),
        inputs: trace(lin, body, c),
        closed: lin.closed_at(body, c),
        carriers: carriers(body, &cls),
    }
}

/// The gates of the rule's own nonmonotone operators, one per operator (an empty gate is
/// `*`): the aggregate's plain group-by keys (none for a global aggregate or computed keys),
/// each `notin`'s pairs, a deletion's matched columns. Each must be covered by a seal on
/// its own: a seal on a `notin`'s key says nothing about the groups of an aggregate.
pub fn own_gates(p: &Program, lin: &Lineage, r: &Rule) -> Vec<Gate> {
    let b = &r.body;
    let mut gates = Vec::new();
    if b.aggregates() && !threshold(p, b) && !singleton_groups(p, b) {
        gates.push(group_gate(p, lin, b));
    }
    for anti in &b.antijoins {
        let mut gate = Vec::new();
        for (outer, inner) in &anti.pairs {
            let mut a = attr(p, lin, b, *outer);
            a.inputs.extend(lin.of(anti.collection, *inner));
            gate.push(a);
        }
        gates.push(gate);
    }
    if r.op == MergeOp::Delete {
        // A deletion partitions on the columns it matches against other atoms; a plain
        // scan-deletion matches whole rows.
        let heads: Vec<ColRef> =
            b.head.iter().filter_map(|e| if let ExprKind::Col(c) = e.kind { Some(c) } else { None }).collect();
        let joined: Vec<ColRef> = heads.iter().copied().filter(|c| class(b, *c).len() > 1).collect();
        gates.push(joined_or(heads, joined).into_iter().map(|c| attr(p, lin, b, c)).collect());
    }
    for g in &mut gates {
        g.sort();
        g.dedup();
    }
    gates
}

fn joined_or(heads: Vec<ColRef>, joined: Vec<ColRef>) -> Vec<ColRef> {
    if joined.is_empty() {
        heads
    } else {
        joined
    }
}

/// The gate of an aggregate: its plain group-by keys.
fn group_gate(p: &Program, lin: &Lineage, b: &Body) -> Gate {
    b.group_by
        .iter()
        .flatten()
        .filter_map(|key| if let ExprKind::Col(c) = key.kind { Some(attr(p, lin, b, c)) } else { None })
        .collect()
}

/// The gates of a rule known to be nonmonotone: its own operators' gates, and for a
/// threshold aggregate that is nonmonotone only because its input is, its group-by keys.
pub fn nonmonotone_gates(p: &Program, lin: &Lineage, r: &Rule) -> Vec<Gate> {
    let mut gates = own_gates(p, lin, r);
    if r.body.aggregates() && threshold(p, &r.body) {
        let mut g = group_gate(p, lin, &r.body);
        g.sort();
        g.dedup();
        gates.push(g);
    }
    gates
}

/// Follows the gates of collection read at `atom` through rule `r` into its target.
pub fn extend(lin: &Lineage, r: &Rule, atom: usize, gates: &Gates) -> Gates {
    let mut out = Gates::new();
    for (gate, sources) in gates {
        let mut g: Gate = gate
            .iter()
            .map(|a| {
                let mut inputs = a.inputs.clone();
                let mut cols = BTreeSet::new();
                for &k in &a.carriers {
                    let c = ColRef { atom, column: k };
                    inputs.extend(trace(lin, &r.body, c));
                    cols.extend(class(&r.body, c));
                }
                GateAttr { name: a.name.clone(), inputs, closed: a.closed.clone(), carriers: carriers(&r.body, &cols) }
            })
            .collect();
        g.sort();
        out.entry(g).or_default().extend(sources.iter().copied());
    }
    out
}

/// Gates carried by an antijoin's negated collection are not followed into the target (its
/// rows never reach the head); they stay with the rule as a rendezvous.
pub fn extend_negated(gates: &Gates) -> Gates {
    let mut out = Gates::new();
    for (gate, sources) in gates {
        let g: Gate = gate.iter().map(|a| GateAttr { carriers: BTreeSet::new(), ..a.clone() }).collect();
        out.entry(g).or_default().extend(sources.iter().copied());
    }
    out
}

/// Adds `from` to `into`; returns whether anything was new.
pub fn merge(into: &mut Gates, from: Gates) -> bool {
    let mut changed = false;
    for (gate, sources) in from {
        let slot = into.entry(gate).or_default();
        for s in sources {
            changed |= slot.insert(s);
        }
    }
    changed
}

/// Computes lineage, nonmonotone rules and nonmonotone collections of a module.
pub fn facts(p: &Program, module: ModuleId) -> Facts {
    let lineage = super::lineage::lineage(p, module);
    let mut gates: BTreeMap<CollectionId, Gates> = BTreeMap::new();
    let mut nonmonotone = BTreeSet::new();
    let Some(m) = p.module(module) else {
        return Facts { lineage, gates, nonmonotone };
    };
    let rules: Vec<&Rule> = m.rules.iter().filter_map(|&r| p.rule(r)).collect();
    for _ in 0..=rules.len() * 8 + 8 {
        let mut changed = false;
        for r in &rules {
            let mut found: Gates = BTreeMap::new();
            let reads_nonmonotone =
                r.body.atoms.iter().any(|a| gates.get(&a.collection).is_some_and(|g| !g.is_empty()))
                    || r.body.antijoins.iter().any(|a| gates.get(&a.collection).is_some_and(|g| !g.is_empty()));
            // A threshold over a nonmonotone input is an ordinary aggregate.
            let own = own_nonmonotone(p, r) || (r.body.aggregates() && reads_nonmonotone);
            if own {
                for g in nonmonotone_gates(p, &lineage, r) {
                    found.entry(g).or_default().insert(r.id);
                }
            }
            for (i, a) in r.body.atoms.iter().enumerate() {
                if let Some(g) = gates.get(&a.collection) {
                    merge(&mut found, extend(&lineage, r, i, g));
                }
            }
            for a in &r.body.antijoins {
                if let Some(g) = gates.get(&a.collection) {
                    merge(&mut found, extend_negated(g));
                }
            }
            if found.is_empty() {
                continue;
            }
            changed |= nonmonotone.insert(r.id);
            changed |= merge(gates.entry(r.target).or_default(), found);
        }
        if !changed {
            break;
        }
    }
    Facts { lineage, gates, nonmonotone }
}
