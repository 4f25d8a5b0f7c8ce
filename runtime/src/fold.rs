//! The fold path for monotone aggregates (see `paths.rs` for when a rule takes it).
//!
//! A fold rule groups a table that only accumulates input facts, and all its aggregates are
//! lattice folds (`count`, integer `sum`, `min`, `max`). Its input only grows, so nothing
//! needs retracting on the input side: each group keeps one accumulator per aggregate, the
//! tick's new rows update them, and when a group's result changes the operator emits the
//! old head row with -1 and the new one with +1, a differential collection like any rule's.
//! The table is a set, so rows are deduplicated on entry, in the compact [`Packed`]
//! encoding, except over a unique table (`paths.rs`), whose rows never repeat. [`Fold`] runs
//! inside a timely operator, where groups live on the worker their key hashes to, or in the
//! driver on one worker (`prefold.rs`).
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
#[derive(Clone, PartialEq)]
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

    /// Folds in one binding's argument value (a count takes none: see `fold`).
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

/// A group's aggregate values, inline for up to four aggregates.
type Values = smallvec::SmallVec<[Value; 4]>;

/// One group: its key, the key's hash (to grow the index without hashing every key again)
/// and its flags, together so that finding a group and marking it costs one cache miss. Its
/// accumulators live in `Fold::accs`, so a group costs no allocation of its own.
struct GroupSlot {
    key: Packed,
    hash: u64,
    flags: GroupFlags,
}

#[derive(Clone, Copy)]
struct GroupFlags {
    failed: bool,
    /// What the group showed after its last change: `None` before its first, else whether it
    /// showed its failure (`Some(true)`) or the result of its shown accumulators.
    shown: Option<bool>,
    /// Whether the current tick brought the group rows.
    touched: bool,
}

/// Everything one fold keeps: a worker's fold operator, or the driver's (`prefold.rs`).
pub(crate) struct Fold {
    keys: Vec<Expr>,
    key_types: Vec<Type>,
    filters: Vec<Expr>,
    /// Column pairs of the one binding that must be equal.
    equal: Vec<(usize, usize)>,
    /// The key's columns, when every key is a plain column of the binding.
    key_cols: Option<Vec<usize>>,
    group: Group,
    ctx: Ctx,
    /// The table's column types (see [`Packed::typed`]).
    types: Vec<Type>,
    /// Group numbers, found by the hash of their key: 4 bytes a group, so the index of a
    /// million groups mostly stays in cache; the keys are compared in `groups`.
    index: hashbrown::HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    groups: Vec<GroupSlot>,
    /// For `n` aggregates, group `i` has `accs[2 * n * i..][..2 * n]`: its accumulators now,
    /// then as of its last change, from which its shown row is evaluated again when it must
    /// be retracted (rather than keeping every shown row). Side by side, both are read in
    /// one cache miss.
    accs: Vec<Acc>,
    /// The distinct rows folded so far (the table is a set). One set for all groups: a
    /// million groups' small sets cost four times the memory of one large set. `None` for
    /// a unique table (`paths.rs`), whose rows never repeat.
    seen: Option<hashbrown::HashSet<Packed>>,
    /// The current tick's error rows, and the groups it touched, in order.
    out: Vec<((bool, Row), isize)>,
    touched: Vec<usize>,
}

impl Fold {
    /// Folds one new row of the current tick in. Each row is checked, grouped, encoded and
    /// folded while it is in cache, as it arrives. (Measured and not kept: ordering a tick's
    /// rows by group first, and looking up batches of 64 rows' groups before folding them;
    /// neither helped at a million groups, and batching cost at a thousand.)
    pub(crate) fn add(&mut self, row: &Row) {
        if self.equal.iter().any(|(a, b)| row.get(*a) != row.get(*b)) {
            return;
        }
        let offsets = [0usize];
        let flat = Flat { row, offsets: &offsets };
        for f in &self.filters {
            match eval(f, &flat, &self.ctx, &[]) {
                Ok(v) if truthy(&v) => {}
                Ok(_) => return,
                Err(_) => {
                    self.out.push(((false, row.clone()), 1));
                    return;
                }
            }
        }
        let key = match &self.key_cols {
            Some(cols) => Packed::typed(row, Some(cols), &self.key_types),
            None => match self.keys.iter().map(|k| eval(k, &flat, &self.ctx, &[])).collect::<Result<Row, _>>() {
                Ok(key) => Packed::typed(&key, None, &self.key_types),
                Err(_) => {
                    self.out.push(((false, row.clone()), 1));
                    return;
                }
            },
        };
        if let Some(seen) = &mut self.seen {
            if !seen.insert(Packed::typed(row, None, &self.types)) {
                return;
            }
        }
        let n = self.group.aggregates.len();
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, &key);
        let groups = &mut self.groups;
        let same = |j: &u32| groups.get(*j as usize).is_some_and(|g| g.key == key);
        let rehash = |j: &u32| groups.get(*j as usize).map_or(0, |g| g.hash);
        let i = match self.index.entry(hash, same, rehash) {
            hashbrown::hash_table::Entry::Occupied(e) => *e.get() as usize,
            hashbrown::hash_table::Entry::Vacant(e) => {
                let next = groups.len();
                let Ok(number) = u32::try_from(next) else { return };
                e.insert(number);
                groups.push(GroupSlot { key, hash, flags: GroupFlags { failed: false, shown: None, touched: false } });
                let fresh = self.group.aggregates.iter().map(Acc::new);
                self.accs.extend(fresh.clone().chain(fresh));
                next
            }
        };
        let Some(g) = groups.get_mut(i).map(|g| &mut g.flags) else { return };
        if !g.touched {
            g.touched = true;
            self.touched.push(i);
        }
        let accs = self.accs.get_mut(2 * n * i..(2 * n * i + n)).unwrap_or_default();
        fold(accs, &mut g.failed, row, &self.group.aggregates, &self.ctx);
    }

    /// Ends the current tick: returns its error rows and each touched group's change.
    pub(crate) fn finish(&mut self) -> Vec<((bool, Row), isize)> {
        let mut out = std::mem::take(&mut self.out);
        let n = self.group.aggregates.len();
        for i in std::mem::take(&mut self.touched) {
            let Some(GroupSlot { key, flags: g, .. }) = self.groups.get_mut(i) else { continue };
            g.touched = false;
            let Some(both) = self.accs.get_mut(2 * n * i..2 * n * (i + 1)) else { continue };
            let (accs, shown) = both.split_at_mut(n);
            if g.shown == Some(g.failed) && (g.failed || accs == &shown[..]) {
                continue;
            }
            let key = key.values(&self.key_types);
            let values = |failed: bool, accs: &[Acc]| -> Result<Values, EvalError> {
                if failed {
                    Err(EvalError::Type)
                } else {
                    accs.iter().map(Acc::value).collect()
                }
            };
            let now = values(g.failed, accs);
            let old = g.shown.map(|failed| values(failed, shown));
            // Most changes leave a group's row as it was (a count below a threshold grows):
            // when that is clear from `having` alone, no row is built.
            let unchanged = match (&old, &now) {
                (Some(Ok(old)), Ok(now)) => self.group.same_result(&key, old, now),
                _ => false,
            };
            if !unchanged {
                let old = old.and_then(|aggs| self.group.finish(&key, aggs.as_deref().ok()));
                let now = self.group.finish(&key, now.as_deref().ok());
                if now != old {
                    out.extend(old.map(|row| (row, -1)));
                    out.extend(now.map(|row| (row, 1)));
                }
            }
            g.shown = Some(g.failed);
            shown.clone_from_slice(accs);
        }
        out
    }
}

/// Folds one new row into a group's accumulators. A failed argument fails the group for
/// good: its rows never leave an accumulating table.
fn fold(accs: &mut [Acc], failed: &mut bool, row: &Row, aggregates: &[Expr], ctx: &Ctx) {
    let offsets = [0usize];
    let flat = Flat { row, offsets: &offsets };
    for (acc, agg) in accs.iter_mut().zip(aggregates) {
        match (acc, &agg.kind) {
            (Acc::Count(n), _) => *n += 1,
            (acc, ExprKind::Agg(_, Some(arg))) => match eval(arg, &flat, ctx, &[]) {
                Ok(v) => acc.add(v),
                Err(_) => *failed = true,
            },
            _ => *failed = true,
        }
    }
}

impl Fold {
    /// The fold of rule `r`, which groups one accumulating table (see `paths::is_fold`);
    /// `unique` when no row of that table can arrive twice.
    pub(crate) fn new(p: &Program, r: &Rule, instance: u32, unique: bool) -> Fold {
        let b = &r.body;
        let ctx = Ctx { instance, row: 0, seed: 0 };
        let keys = b.group_by.clone().unwrap_or_default();
        let types = b
            .atoms
            .first()
            .and_then(|a| p.collection(a.collection))
            .map(|c| c.columns.iter().map(|col| col.ty).collect())
            .unwrap_or_default();
        let key_cols: Option<Vec<usize>> = keys
            .iter()
            .map(|k| match &k.kind {
                ExprKind::Col(c) if c.atom == 0 => Some(c.column),
                _ => None,
            })
            .collect();
        Fold {
            key_cols,
            key_types: keys.iter().map(|k| k.ty).collect(),
            keys: keys.clone(),
            filters: b.filters.clone(),
            equal: b.equalities.iter().map(|e| (e.left.column, e.right.column)).collect(),
            group: Group::new(keys, b.head.clone(), b.having.clone(), ctx),
            ctx,
            types,
            index: hashbrown::HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            groups: Vec::new(),
            accs: Vec::new(),
            seen: (!unique).then(hashbrown::HashSet::new),
            out: Vec::new(),
            touched: Vec::new(),
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
    unique: bool,
) -> differential_dataflow::VecCollection<'s, u64, (bool, Row), isize> {
    let fold = Fold::new(p, r, instance, unique);
    let (key_cols, keys, ctx) = (fold.key_cols.clone(), fold.keys.clone(), fold.ctx);
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
        // The tick being folded, and the rows of later ticks that arrived before it ended.
        // The driver completes each tick before it feeds the next, so rows are almost
        // always folded as they arrive.
        let mut current: Option<Capability<u64>> = None;
        let mut early: BTreeMap<u64, (Capability<u64>, Vec<Row>)> = BTreeMap::new();
        move |(input, frontier), output| {
            input.for_each(|cap, data| {
                for (row, t, d) in data.drain(..) {
                    if d <= 0 {
                        continue;
                    }
                    let first = early.is_empty() && frontier.frontier().iter().all(|f| *f == t);
                    match &current {
                        Some(c) if *c.time() == t => fold.add(&row),
                        None if first => {
                            current = Some(cap.delayed(&t, 0));
                            fold.add(&row);
                        }
                        _ => early.entry(t).or_insert_with(|| (cap.delayed(&t, 0), Vec::new())).1.push(row),
                    }
                }
            });
            loop {
                // A tick ends once no more of its rows can arrive.
                if let Some(cap) = current.take() {
                    if frontier.frontier().less_equal(cap.time()) {
                        current = Some(cap);
                        break;
                    }
                    let t = *cap.time();
                    let changes = fold.finish();
                    let mut session = output.session(&cap);
                    for (row, d) in changes {
                        session.give((row, t, d));
                    }
                }
                // The earliest buffered tick becomes current once nothing earlier can come.
                let Some(entry) = early.first_entry() else { break };
                if frontier.frontier().iter().any(|f| f < entry.key()) {
                    break;
                }
                let (cap, rows) = entry.remove();
                for row in rows {
                    fold.add(&row);
                }
                current = Some(cap);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{Acc, GroupSlot};
    use crate::value::Packed;

    /// The sizes the docs quote: a group's slot, an accumulator, and a row's or key's
    /// encoding in a hash set.
    #[test]
    fn a_group_slot_is_56_bytes_an_accumulator_32_and_an_encoded_row_40() {
        assert_eq!(std::mem::size_of::<GroupSlot>(), 56);
        assert_eq!(std::mem::size_of::<Acc>(), 32);
        assert_eq!(std::mem::size_of::<Packed>(), 40);
    }
}
