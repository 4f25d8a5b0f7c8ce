//! The shared types of a rule's evaluation, read by every path that runs rules (the
//! dataflow in `dataflow.rs`, the folds in `fold.rs` and `colfold.rs`, the driver's
//! prefolds): the collection type, a body's per-binding checks ([`Check`]), a group's
//! `having` verdict ([`Outcome`]) and row ([`Group`]), and a join's key columns
//! ([`join_on`]). It imports nothing but the evaluator and the values.

use crate::eval::{collect_aggs, eval, truthy, Ctx, Flat, Grouped};
use crate::value::{Row, Value};
use bloomc_compiler::ir::{Body, ColRef, Expr, Rule};
use differential_dataflow::VecCollection;

/// A collection of rows, as every rendered rule reads and produces them.
pub type Coll<'s, T> = VecCollection<'s, T, Row, isize>;

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

/// The per-binding checks of a rule body: equalities not used as join keys, then `where`.
pub(crate) struct Check {
    leftover: Vec<(usize, usize)>,
    filters: Vec<Expr>,
    offsets: Vec<usize>,
    ctx: Ctx,
}

impl Check {
    /// The checks of a joined binding: `leftover` pairs of flat columns that must be equal,
    /// then `filters`, over atoms starting at `offsets` in the binding.
    pub(crate) fn new(leftover: Vec<(usize, usize)>, filters: Vec<Expr>, offsets: Vec<usize>, ctx: Ctx) -> Check {
        Check { leftover, filters, offsets, ctx }
    }

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
