//! The fold path for monotone aggregates (see `paths.rs` for when a rule takes it).
//!
//! A fold rule (`<=` or `<+`) groups a table that only grows (one that accumulates input
//! facts, or any table no `<-` deletes from), and all its aggregates are lattice folds
//! (`count`, integer `sum`, `min`, `max`). Its input only grows, so nothing needs retracting
//! on the input side: each group keeps one accumulator per aggregate, the
//! tick's new rows update them, and when a group's result changes the operator emits the
//! old head row with -1 and the new one with +1, a differential collection like any rule's.
//! The table is a set, so rows are deduplicated on entry, in the compact [`Packed`]
//! encoding, except over a unique table (`paths.rs`), whose rows never repeat. [`Fold`] is
//! the fold's state, with no timely type: it runs inside the timely operator of
//! `foldop.rs`, where groups live on the worker their key hashes to, or in the driver on one
//! worker (`prefold.rs`).
//!
//! Errors follow the `reduce` path exactly: a binding whose filter or key fails is an error
//! row once; a group whose aggregate argument fails stays failed (its bindings never leave
//! a table that only grows); an integer sum is exact and fails only while its total is out of
//! range.

use crate::eval::{eval, truthy, Ctx, EvalError, Flat};
use crate::groups::{prefetch, GroupSlot, Groups};
use crate::rules::Group;
use crate::value::{Packed, Row, Value};
use bloomc_compiler::aggregates::Accumulator;
use bloomc_compiler::ir::{Expr, ExprKind, Program, Rule, Type};
use std::collections::VecDeque;

/// One aggregate's accumulator.
#[derive(Clone, PartialEq)]
enum Acc {
    Count(i64),
    Sum(i128),
    Min(Option<Value>),
    Max(Option<Value>),
}

impl Acc {
    /// The empty accumulator of a fold aggregate (`paths::is_fold_aggregate`).
    fn new(agg: &Expr) -> Acc {
        let accumulator = match &agg.kind {
            ExprKind::Agg(f, arg) => f.facts().fold(arg.as_deref().map(|a| a.ty)),
            _ => None,
        };
        match accumulator {
            Some(Accumulator::Sum) => Acc::Sum(0),
            Some(Accumulator::Min) => Acc::Min(None),
            Some(Accumulator::Max) => Acc::Max(None),
            Some(Accumulator::Count) | None => Acc::Count(0),
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
    hasher: hashbrown::DefaultHashBuilder,
    groups: Groups,
    /// Which aggregates read an argument (`sum`, `min`, `max`): a count reads none.
    reads_arg: Vec<bool>,
    /// Rows located but not yet folded, oldest first, while the fold has many groups, and
    /// the arguments of their aggregates, in the same order.
    pending: VecDeque<Pending>,
    args: VecDeque<Value>,
    /// Whether `having` reads a grouping key (see `finish`).
    having_reads_key: bool,
    /// The accumulators a group keeps: its `n` aggregates' now, and as of its last change
    /// unless its row follows from its key and `having`'s outcome
    /// ([`Group::outcome_decides`]), when only that outcome is kept.
    width: usize,
    /// Group `i` has `accs[width * i..][..width]`: its accumulators now, then (when `width`
    /// is `2 * n`) as of its last change, from which its shown row is evaluated again when
    /// it must be retracted (rather than keeping every shown row). Side by side, both are
    /// read in one cache miss.
    accs: Vec<Acc>,
    /// The distinct rows folded so far (the table is a set). One set for all groups: a
    /// million groups' small sets cost four times the memory of one large set. `None` for
    /// a unique table (`paths.rs`), whose rows never repeat.
    seen: Option<hashbrown::HashSet<Packed>>,
    /// The current tick's error rows, and the groups it touched, in order.
    out: Vec<((bool, Row), isize)>,
    touched: Vec<usize>,
}

/// A row located but not yet folded: its group's key and hash, and whether an argument of
/// its aggregates failed to evaluate (the others wait in `Fold::args`).
struct Pending {
    key: Packed,
    hash: u64,
    failed: bool,
}

/// How many rows ahead of the one it folds a fold with many groups (`Groups::large`) asks
/// for an index entry; it asks for the group half as far ahead.
const AHEAD: usize = 16;

impl Fold {
    /// Folds one new row of the current tick in. Each row is checked, grouped and encoded
    /// as it arrives. With few groups it is folded at once; with many, its group's index
    /// entry and slot are prefetched and it is folded `AHEAD` rows later (`groups.rs`).
    /// (Measured and not kept: ordering a tick's rows by group first; it did not help at a
    /// million groups.)
    pub(crate) fn add(&mut self, row: &Row) {
        let Some(p) = self.locate(row) else { return };
        if !self.groups.large() {
            self.apply(p);
            return;
        }
        self.groups.prefetch_index(p.hash);
        self.pending.push_back(p);
        let n = self.width;
        if let Some(q) = self.pending.len().checked_sub(AHEAD / 2 + 1).and_then(|i| self.pending.get(i)) {
            if let (Some(g), true) = (self.groups.prefetch_group(q.hash), n > 0) {
                prefetch(self.accs.as_ptr().wrapping_add(n * g));
                prefetch(self.accs.as_ptr().wrapping_add(n * g + n - 1));
            }
        }
        if self.pending.len() > AHEAD {
            if let Some(p) = self.pending.pop_front() {
                self.apply(p);
            }
        }
    }

    /// Checks a row and finds its group's key and its aggregates' arguments; `None` when it
    /// counts for no group (a filter rejects it, it repeats a row, or it is an error row).
    fn locate(&mut self, row: &Row) -> Option<Pending> {
        if self.equal.iter().any(|(a, b)| row.get(*a) != row.get(*b)) {
            return None;
        }
        let offsets = [0usize];
        let flat = Flat { row, offsets: &offsets };
        for f in &self.filters {
            match eval(f, &flat, &self.ctx, &[]) {
                Ok(v) if truthy(&v) => {}
                Ok(_) => return None,
                Err(_) => {
                    self.out.push(((false, row.clone()), 1));
                    return None;
                }
            }
        }
        let key = match &self.key_cols {
            Some(cols) => Packed::typed(row, Some(cols), &self.key_types),
            None => match self.keys.iter().map(|k| eval(k, &flat, &self.ctx, &[])).collect::<Result<Row, _>>() {
                Ok(key) => Packed::typed(&key, None, &self.key_types),
                Err(_) => {
                    self.out.push(((false, row.clone()), 1));
                    return None;
                }
            },
        };
        if let Some(seen) = &mut self.seen {
            if !seen.insert(Packed::typed(row, None, &self.types)) {
                return None;
            }
        }
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, &key);
        let before = self.args.len();
        let mut failed = false;
        for (agg, _) in self.group.aggregates.iter().zip(&self.reads_arg).filter(|(_, r)| **r) {
            match &agg.kind {
                ExprKind::Agg(_, Some(arg)) => match eval(arg, &flat, &self.ctx, &[]) {
                    Ok(v) => self.args.push_back(v),
                    Err(_) => failed = true,
                },
                _ => failed = true,
            }
        }
        if failed {
            self.args.truncate(before);
        }
        Some(Pending { key, hash, failed })
    }

    /// Folds a located row into its group, which it adds if new. A failed argument fails
    /// the group for good: its rows never leave a table that only grows.
    fn apply(&mut self, p: Pending) {
        let (n, width) = (self.group.aggregates.len(), self.width);
        let (i, new) = self.groups.find_or_insert(p.key, p.hash);
        if new {
            // Now, and (when `width` is `2 * n`) as last shown.
            let fresh = self.group.aggregates.iter().map(Acc::new);
            self.accs.extend(fresh.cycle().take(width));
        }
        let Some(g) = self.groups.slots.get_mut(i).map(|g| &mut g.flags) else { return };
        if !g.touched {
            g.touched = true;
            self.touched.push(i);
        }
        g.failed |= p.failed;
        for acc in self.accs.get_mut(width * i..(width * i + n)).unwrap_or_default() {
            match acc {
                Acc::Count(c) => *c += 1,
                _ if p.failed => {}
                acc => match self.args.pop_front() {
                    Some(v) => acc.add(v),
                    None => g.failed = true,
                },
            }
        }
    }

    /// Ends the current tick: returns its error rows and each touched group's change.
    pub(crate) fn finish(&mut self) -> Vec<((bool, Row), isize)> {
        while let Some(p) = self.pending.pop_front() {
            self.apply(p);
        }
        let mut out = std::mem::take(&mut self.out);
        let (n, width) = (self.group.aggregates.len(), self.width);
        let touched = std::mem::take(&mut self.touched);
        let many = self.groups.large();
        let no_key = Row::new();
        let values = |failed: bool, accs: &[Acc]| -> Option<Values> {
            if failed {
                None
            } else {
                accs.iter().map(Acc::value).collect::<Result<_, _>>().ok()
            }
        };
        for (k, &i) in touched.iter().enumerate() {
            if let (Some(&ahead), true) = (touched.get(k + AHEAD), many) {
                prefetch(self.groups.slots.as_ptr().wrapping_add(ahead));
                prefetch(self.accs.as_ptr().wrapping_add(width * ahead));
                prefetch(self.accs.as_ptr().wrapping_add(width * (ahead + 1)).wrapping_sub(1));
            }
            let Some(GroupSlot { key, flags: g, .. }) = self.groups.slots.get_mut(i) else { continue };
            g.touched = false;
            let Some(both) = self.accs.get_mut(width * i..width * (i + 1)) else { continue };
            let (accs, shown) = both.split_at_mut(n);
            let mut emit = |old: Option<(bool, Row)>, now: Option<(bool, Row)>| {
                if now != old {
                    out.extend(old.map(|row| (row, -1)));
                    out.extend(now.map(|row| (row, 1)));
                }
            };
            if self.group.outcome_decides() {
                // Most changes leave the outcome as it was (a count below a threshold
                // grows): then no row is built, nor the key unless `having` reads it.
                let built;
                let key_row = if self.having_reads_key {
                    built = key.values(&self.key_types);
                    &built
                } else {
                    &no_key
                };
                let outcome = self.group.outcome(key_row, values(g.failed, accs).as_deref());
                if g.outcome == Some(outcome) {
                    continue;
                }
                let key = key.values(&self.key_types);
                emit(g.outcome.and_then(|o| self.group.row(&key, o, &[])), self.group.row(&key, outcome, &[]));
                g.outcome = Some(outcome);
            } else {
                if g.shown == Some(g.failed) && (g.failed || accs == &shown[..]) {
                    continue;
                }
                let key = key.values(&self.key_types);
                let old = g.shown.and_then(|failed| self.group.finish(&key, values(failed, shown).as_deref()));
                emit(old, self.group.finish(&key, values(g.failed, accs).as_deref()));
                g.shown = Some(g.failed);
                shown.clone_from_slice(accs);
            }
        }
        out
    }
}

impl Fold {
    /// How a row finds its group's worker: the key's columns, when every key is a plain
    /// column, else the key expressions evaluated in the fold's context.
    pub(crate) fn route(&self) -> (Option<Vec<usize>>, Vec<Expr>, Ctx) {
        (self.key_cols.clone(), self.keys.clone(), self.ctx)
    }

    /// The fold of rule `r`, which groups one table that only grows (see `paths::is_fold`);
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
        let group = Group::new(keys.clone(), b.head.clone(), b.having.clone(), ctx);
        let n = group.aggregates.len();
        let having_reads_key = group.having_reads_key();
        let width = if group.outcome_decides() { n } else { 2 * n };
        let reads_arg = group.aggregates.iter().map(|a| !matches!(Acc::new(a), Acc::Count(_))).collect();
        Fold {
            key_cols,
            key_types: keys.iter().map(|k| k.ty).collect(),
            keys: keys.clone(),
            filters: b.filters.clone(),
            equal: b.equalities.iter().map(|e| (e.left.column, e.right.column)).collect(),
            group,
            ctx,
            types,
            reads_arg,
            hasher: hashbrown::DefaultHashBuilder::default(),
            groups: Groups::default(),
            pending: VecDeque::new(),
            args: VecDeque::new(),
            having_reads_key,
            width,
            accs: Vec::new(),
            seen: (!unique).then(hashbrown::HashSet::new),
            out: Vec::new(),
            touched: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Acc;
    use crate::groups::GroupSlot;
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
