//! The fold path for monotone aggregates (see `paths.rs` for when a rule takes it).
//!
//! A fold rule groups a table that only accumulates input facts, and all its aggregates are
//! lattice folds (`count`, integer `sum`, `min`, `max`). Its input only grows, so nothing
//! needs retracting on the input side: each group keeps one accumulator per aggregate, the
//! tick's new rows update them, and when a group's result changes the operator emits the
//! old head row with -1 and the new one with +1, a differential collection like any rule's.
//! The table is a set, so rows are deduplicated on entry, in the compact [`Packed`]
//! encoding. Groups live on the worker their key hashes to.
//!
//! Errors follow the `reduce` path exactly: a binding whose filter or key fails is an error
//! row once; a group whose aggregate argument fails stays failed (its bindings never leave
//! an accumulating table); an integer sum is exact and fails only while its total is out of
//! range.

use crate::eval::{eval, truthy, Ctx, EvalError, Flat};
use crate::render::{Coll, Group};
use crate::value::{Packed, Row, Value};
use bloomc_compiler::ir::{AggFn, Expr, ExprKind, Program, Rule, Type};
use differential_dataflow::hashable::Hashable;
use differential_dataflow::AsCollection;
use std::collections::BTreeMap;
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

/// One aggregate's accumulator.
#[derive(Clone)]
enum Acc {
    Count(i64),
    Sum(i128),
    Min(Option<Value>),
    Max(Option<Value>),
}

impl Acc {
    fn new(agg: &Expr) -> Acc {
        match &agg.kind {
            ExprKind::Agg(AggFn::Sum, _) => Acc::Sum(0),
            ExprKind::Agg(AggFn::Min, _) => Acc::Min(None),
            ExprKind::Agg(AggFn::Max, _) => Acc::Max(None),
            _ => Acc::Count(0),
        }
    }

    /// Folds in one binding's argument value (a count takes none: see `GroupState::fold`).
    fn add(&mut self, v: Value) {
        match (self, v) {
            (Acc::Count(_), _) => {}
            (Acc::Sum(s), Value::Int(i)) => *s += i128::from(i),
            (Acc::Min(m), v) => {
                if m.as_ref().is_none_or(|x| v < *x) {
                    *m = Some(v);
                }
            }
            (Acc::Max(m), v) => {
                if m.as_ref().is_none_or(|x| v > *x) {
                    *m = Some(v);
                }
            }
            (Acc::Sum(_), _) => {}
        }
    }

    fn value(&self) -> Result<Value, EvalError> {
        match self {
            Acc::Count(n) => Ok(Value::Int(*n)),
            Acc::Sum(s) => i64::try_from(*s).map(Value::Int).map_err(|_| EvalError::Overflow),
            Acc::Min(v) | Acc::Max(v) => v.clone().ok_or(EvalError::Type),
        }
    }
}

struct GroupState {
    key: Row,
    accs: Vec<Acc>,
    failed: bool,
    /// What the group contributes now: the head row, an error `(false, key)`, or nothing.
    last: Option<(bool, Row)>,
    /// The group's distinct rows so far (the table is a set).
    seen: hashbrown::HashSet<Packed>,
    /// Whether the current tick brought the group rows.
    touched: bool,
}

/// Everything one worker's fold operator keeps.
struct Fold {
    keys: Vec<Expr>,
    filters: Vec<Expr>,
    /// Column pairs of the one binding that must be equal.
    equal: Vec<(usize, usize)>,
    /// The key's columns, when every key is a plain column of the binding.
    key_cols: Option<Vec<usize>>,
    group: Group,
    ctx: Ctx,
    /// Whether the table's rows, and the keys, have no string column (see [`Packed`]).
    words: bool,
    key_words: bool,
    index: hashbrown::HashMap<Packed, usize>,
    groups: Vec<GroupState>,
}

impl Fold {
    /// Folds one tick's new rows in and returns the changes to the rule's output.
    fn apply(&mut self, rows: Vec<Row>) -> Vec<((bool, Row), isize)> {
        let mut out = Vec::new();
        let offsets = [0usize];
        // Each row is checked, grouped, encoded and folded in while it is in cache. (Ordering
        // a tick's rows by group first was measured: it does not help, since a group's set of
        // rows is larger than its share of a tick, so each insertion misses the cache anyway.)
        let mut touched: Vec<usize> = Vec::new();
        'rows: for row in rows {
            if self.equal.iter().any(|(a, b)| row.get(*a) != row.get(*b)) {
                continue;
            }
            let flat = Flat { row: &row, offsets: &offsets };
            for f in &self.filters {
                match eval(f, &flat, &self.ctx, &[]) {
                    Ok(v) if truthy(&v) => {}
                    Ok(_) => continue 'rows,
                    Err(_) => {
                        out.push(((false, row), 1));
                        continue 'rows;
                    }
                }
            }
            let (packed, key) = match &self.key_cols {
                Some(cols) => (Packed::columns(&row, Some(cols), self.key_words), None),
                None => match self.keys.iter().map(|k| eval(k, &flat, &self.ctx, &[])).collect::<Result<Row, _>>() {
                    Ok(key) => (Packed::new(&key, self.key_words), Some(key)),
                    Err(_) => {
                        out.push(((false, row), 1));
                        continue;
                    }
                },
            };
            let next = self.groups.len();
            let i = *self.index.entry(packed).or_insert(next);
            if i == next {
                let key = key.unwrap_or_else(|| key_of(&row, self.key_cols.as_deref().unwrap_or(&[])));
                let accs = self.group.aggregates.iter().map(Acc::new).collect();
                let seen = hashbrown::HashSet::new();
                self.groups.push(GroupState { key, accs, failed: false, last: None, seen, touched: false });
            }
            let Some(g) = self.groups.get_mut(i) else { continue };
            if !g.touched {
                g.touched = true;
                touched.push(i);
            }
            g.fold(&row, &self.group.aggregates, &self.ctx, self.words);
        }
        // Emit each touched group's change.
        for i in touched {
            let Some(g) = self.groups.get_mut(i) else { continue };
            g.touched = false;
            let aggs = if g.failed { Err(EvalError::Type) } else { g.accs.iter().map(Acc::value).collect() };
            let now = self.group.finish(g.key.clone(), aggs);
            if now != g.last {
                if let Some(old) = g.last.take() {
                    out.push((old, -1));
                }
                if let Some(new) = &now {
                    out.push((new.clone(), 1));
                }
                g.last = now;
            }
        }
        out
    }
}

impl GroupState {
    /// Folds one row in, unless the group has seen it (the table is a set). A failed
    /// argument fails the group for good: its rows never leave an accumulating table.
    fn fold(&mut self, row: &Row, aggregates: &[Expr], ctx: &Ctx, words: bool) {
        if !self.seen.insert(Packed::new(row, words)) {
            return;
        }
        let offsets = [0usize];
        let flat = Flat { row, offsets: &offsets };
        for (acc, agg) in self.accs.iter_mut().zip(aggregates) {
            match (acc, &agg.kind) {
                (Acc::Count(n), _) => *n += 1,
                (acc, ExprKind::Agg(_, Some(arg))) => match eval(arg, &flat, ctx, &[]) {
                    Ok(v) => acc.add(v),
                    Err(_) => self.failed = true,
                },
                _ => self.failed = true,
            }
        }
    }
}

/// Renders fold rule `r` over `table`: the accumulating table's rows as they arrive (only
/// insertions; duplicates allowed). Returns the rule's `(ok, row)` output collection, as the
/// other aggregation paths produce it.
pub fn render<'s>(
    p: &Program,
    r: &Rule,
    table: Coll<'s, u64>,
    instance: u32,
) -> differential_dataflow::VecCollection<'s, u64, (bool, Row), isize> {
    let b = &r.body;
    let ctx = Ctx { instance, row: 0, seed: 0 };
    let keys = b.group_by.clone().unwrap_or_default();
    let words = b
        .atoms
        .first()
        .and_then(|a| p.collection(a.collection))
        .is_some_and(|c| c.columns.iter().all(|col| col.ty != Type::String));
    let key_cols: Option<Vec<usize>> = keys
        .iter()
        .map(|k| match &k.kind {
            ExprKind::Col(c) if c.atom == 0 => Some(c.column),
            _ => None,
        })
        .collect();
    let key_words = keys.iter().all(|k| k.ty != Type::String);
    let fold = Fold {
        key_cols: key_cols.clone(),
        key_words,
        keys: keys.clone(),
        filters: b.filters.clone(),
        equal: b.equalities.iter().map(|e| (e.left.column, e.right.column)).collect(),
        group: Group::new(keys.clone(), b.head.clone(), b.having.clone(), ctx),
        ctx,
        words,
        index: hashbrown::HashMap::new(),
        groups: Vec::new(),
    };
    let stream = table.inner;
    let out = if stream.scope().peers() == 1 {
        operator(stream, Pipeline, fold)
    } else {
        // Equal rows have equal keys, so deduplication and grouping both happen where the
        // key hashes to. A key that fails to evaluate routes like the empty key.
        let route = move |(row, _, _): &(Row, u64, isize)| -> u64 {
            if let Some(cols) = &key_cols {
                return key_of(row, cols).hashed();
            }
            let offsets = [0usize];
            let flat = Flat { row, offsets: &offsets };
            let key: Row = keys.iter().map(|k| eval(k, &flat, &ctx, &[])).collect::<Result<_, _>>().unwrap_or_default();
            key.hashed()
        };
        operator(stream, Exchange::new(route), fold)
    };
    out.as_collection()
}

fn key_of(row: &Row, cols: &[usize]) -> Row {
    cols.iter().filter_map(|&c| row.get(c).cloned()).collect()
}

type Rows<'s> = Stream<'s, u64, Vec<(Row, u64, isize)>>;
type Produced<'s> = Stream<'s, u64, Vec<((bool, Row), u64, isize)>>;

fn operator<'s, P>(stream: Rows<'s>, pact: P, mut fold: Fold) -> Produced<'s>
where
    P: ParallelizationContract<u64, Vec<(Row, u64, isize)>>,
{
    stream.unary_frontier(pact, "Fold", move |_, _| {
        let mut pending: BTreeMap<u64, (Capability<u64>, Vec<Row>)> = BTreeMap::new();
        move |(input, frontier), output| {
            input.for_each(|cap, data| {
                for (row, t, d) in data.drain(..) {
                    if d > 0 {
                        pending.entry(t).or_insert_with(|| (cap.delayed(&t, 0), Vec::new())).1.push(row);
                    }
                }
            });
            // A tick is folded once no more of its rows can arrive.
            while let Some(entry) = pending.first_entry() {
                let t = *entry.key();
                if frontier.frontier().less_equal(&t) {
                    break;
                }
                let (cap, rows) = entry.remove();
                let changes = fold.apply(rows);
                let mut session = output.session(&cap);
                for (row, d) in changes {
                    session.give((row, t, d));
                }
            }
        }
    })
}
