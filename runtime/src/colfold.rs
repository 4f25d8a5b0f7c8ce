//! The column fold: the driver's fold (`prefold.rs`) of a batch of facts held as `int`
//! columns, a column at a time, for the class of programs `paths.rs` marks *column-folded*:
//! an input of `int` columns, with a key, copied by one rule into a table that only folds
//! read, each fold grouping by plain columns with `count`, and `sum`, `min`, `max` of plain
//! columns, no `where`. (The CAMPAIGN query is one.) Such a table's rows never repeat (its
//! input's key), so a fold keeps no set of rows, and every value it reads is an integer, so
//! nothing can fail to evaluate until `having` and the head.
//!
//! A batch goes through in chunks of [`CHUNK`] rows, each step a loop over the chunk: hash
//! every row's key, a key column at a time, then find every row's group (adding the new,
//! marking it touched), then for each aggregate update the accumulators of every row's
//! group from the argument column. No row is built, nothing is dispatched per row on the kind
//! of an expression, and with many groups every row's lookup is prefetched before the first
//! is made, so the chunk's cache misses overlap ([`ColumnFold::find_groups`]).
//!
//! A group is one record of `u64` words: its key, a flags word, its accumulators now (a
//! count, a minimum or a maximum in a word, an exact sum in two) and, unless the head reads
//! no aggregate, as last shown; up to a cache line it is padded to a power of two of words.
//! The records themselves are the slots of an open-addressing table (linear probing, at
//! most half full), whose slots start on a cache line and, in a large table, whose probes
//! start at the first slot of a line, so finding a group mostly costs the one miss of its
//! line, not one for an index and another for the group. A group's number is its slot,
//! renumbered when the table grows (between chunks). A key of `K` columns (at most
//! [`MAX_KEYS`]) is compared as `K` words in registers. A large table asks for huge pages
//! (`groups::advise_huge`), so a random slot costs no page-table walk. The end of a tick is
//! [`crate::fold::Fold`]'s, through the same [`Group`]: `having` and the head are evaluated
//! for each touched group, and a changed row is retracted and inserted. A `having` that
//! compares the one aggregate with a constant ([`Threshold`]) is decided instead as each
//! row's accumulator is updated, and only the groups whose outcome changed are listed for
//! the tick's end.

use crate::groups::prefetch;
use crate::rules::{Group, Outcome};
use crate::value::{Row, Value};
use bloomc_compiler::aggregates::Accumulator;
use bloomc_compiler::ir::{ExprKind, Rule, Type, Value as IrValue};
use bloomc_grammar::ast::BinaryOp;

/// Rows per step of a batch: the chunk's hashes, groups and most of its prefetched lines stay
/// in the first-level cache.
const CHUNK: usize = 1024;
/// How many touched groups ahead the end of a tick asks for a group's record.
const AHEAD: usize = 16;
/// The most group key columns a column fold takes; a fold with more takes the row fold.
const MAX_KEYS: usize = 8;
/// From this many slots on, lookups are prefetched (the groups outgrow the caches).
const LARGE: usize = 1 << 16;

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;

/// The flags word: touched this tick, shown a row (when the head reads an aggregate), the
/// last outcome (when it does not), in two bits: 0 none, then pass, reject, failed; and
/// whether the slot holds a group.
const TOUCHED: u64 = 1;
const OCCUPIED: u64 = 1 << 8;
const SHOWN: u64 = 2;
const OUTCOME_SHIFT: u32 = 2;

/// Mixes the key words' running hash (`(h ^ w) * MUL` over the words, from 0) so that its
/// low bits (the slot it starts probing at) depend on every word.
fn finish_hash(h: u64) -> u64 {
    let x = (h ^ (h >> 32)).wrapping_mul(MUL);
    x ^ (x >> 29)
}

/// The value of aggregate `a` whose accumulator starts `words`: `None` when a sum does not
/// fit an `int`.
fn agg_value(a: Agg, words: &[u64]) -> Option<i64> {
    let lo = *words.first()?;
    match a {
        Agg::Sum(_) => i64::try_from(i128::from(*words.get(1)? as i64) << 64 | i128::from(lo)).ok(),
        _ => Some(lo as i64),
    }
}

/// An outcome as the flags word keeps it (0 is none yet).
fn outcome_code(o: Outcome) -> u64 {
    match o {
        Outcome::Pass => 1,
        Outcome::Reject => 2,
        Outcome::Failed => 3,
    }
}

/// One aggregate, with its argument's column.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Agg {
    Count,
    Sum(usize),
    Min(usize),
    Max(usize),
}

impl Agg {
    fn words(self) -> usize {
        if matches!(self, Agg::Sum(_)) {
            2
        } else {
            1
        }
    }

    fn start(self) -> [u64; 2] {
        match self {
            Agg::Min(_) => [i64::MAX as u64, 0],
            Agg::Max(_) => [i64::MIN as u64, 0],
            _ => [0, 0],
        }
    }
}

/// The group key columns and aggregates of fold rule `r` over a table of `types` when it
/// can fold column by column: no `where`, no equality, every key and every argument a plain
/// `int` column. The aggregates come in [`Group`]'s order (head, then `having`).
fn shape(r: &Rule, group: &Group, types: &[Type]) -> Option<(Vec<usize>, Vec<Agg>)> {
    let b = &r.body;
    if !b.filters.is_empty() || !b.equalities.is_empty() || !b.antijoins.is_empty() || b.atoms.len() != 1 {
        return None;
    }
    let int_col = |e: &bloomc_compiler::ir::Expr| match &e.kind {
        ExprKind::Col(c) if c.atom == 0 && types.get(c.column) == Some(&Type::Int) => Some(c.column),
        _ => None,
    };
    let keys = b.group_by.as_ref()?.iter().map(int_col).collect::<Option<Vec<usize>>>()?;
    // A key is at most `MAX_KEYS` words held in registers (`ColumnFold::find`).
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return None;
    }
    let aggs = group
        .aggregates
        .iter()
        .map(|a| {
            let ExprKind::Agg(f, arg) = &a.kind else { return None };
            let arg = arg.as_deref();
            match f.facts().fold(arg.map(|x| x.ty))? {
                Accumulator::Count => Some(Agg::Count),
                Accumulator::Sum => arg.and_then(int_col).map(Agg::Sum),
                Accumulator::Min => arg.and_then(int_col).map(Agg::Min),
                Accumulator::Max => arg.and_then(int_col).map(Agg::Max),
            }
        })
        .collect::<Option<Vec<Agg>>>()?;
    Some((keys, aggs))
}

/// `having` of the form `aggregate CMP constant` (either way round) on an `int` constant,
/// over a head with no aggregate: its outcome is a comparison of two integers
/// (`bloomc_compiler::ops::compare`), decided without evaluating an expression. (Two
/// integers always compare, so it fails only when the aggregate does: a sum out of range.)
#[derive(Clone, Copy, Debug, PartialEq)]
struct Threshold {
    op: BinaryOp,
    constant: i64,
    /// The aggregate is the left operand.
    left: bool,
}

impl Threshold {
    fn of(r: &Rule, group: &Group) -> Option<Threshold> {
        let h = r.body.having.as_ref()?;
        let ExprKind::Binary(op, a, b) = &h.kind else { return None };
        if !group.outcome_decides() || group.aggregates.len() != 1 {
            return None;
        }
        match (&a.kind, &b.kind) {
            (ExprKind::Agg(..), ExprKind::Lit(IrValue::Int(c))) => Threshold::comparison(*op, *c, true),
            (ExprKind::Lit(IrValue::Int(c)), ExprKind::Agg(..)) => Threshold::comparison(*op, *c, false),
            _ => None,
        }
    }

    /// The threshold `aggregate op c` (`left`) or `c op aggregate`; `None` for an `op` that
    /// is not a comparison.
    fn comparison(op: BinaryOp, constant: i64, left: bool) -> Option<Threshold> {
        matches!(op, BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Eq | BinaryOp::Ne)
            .then_some(Threshold { op, constant, left })
    }

    fn outcome(self, value: Option<i64>) -> Outcome {
        let Some(v) = value else { return Outcome::Failed };
        let (x, y) = if self.left { (v, self.constant) } else { (self.constant, v) };
        if bloomc_compiler::ops::compare(self.op, || x.cmp(&y)).unwrap_or(false) {
            Outcome::Pass
        } else {
            Outcome::Reject
        }
    }
}

/// Whether fold rule `r`, over a table whose columns have `types`, can fold column by
/// column (what `paths.rs` asks).
pub(crate) fn eligible(r: &Rule, types: &[Type]) -> bool {
    let group = Group::new(
        r.body.group_by.clone().unwrap_or_default(),
        r.body.head.clone(),
        r.body.having.clone(),
        crate::eval::Ctx { instance: 0, row: 0, seed: 0 },
    );
    shape(r, &group, types).is_some()
}

/// One column fold's state.
pub(crate) struct ColumnFold {
    keys: Vec<usize>,
    aggs: Vec<Agg>,
    /// Each aggregate's first word within a record.
    offsets: Vec<usize>,
    group: Group,
    threshold: Option<Threshold>,
    having_reads_key: bool,
    /// The head reads no aggregate: a group keeps its outcome, not its shown accumulators.
    decides: bool,
    /// Words of accumulators (now; as many again as shown unless `decides`), and per record.
    acc_words: usize,
    stride: usize,
    /// `slots` records of `stride` words (a power of two of them; empty ones all zero).
    records: Vec<u64>,
    slots: usize,
    /// Where the first slot starts in `records` (on a cache line), and whether a record then
    /// lies within one line.
    base: usize,
    aligned: bool,
    groups: usize,
    /// The first slot a hash probes ([`ColumnFold::home`]), and how many slots from it lie in
    /// its cache line (in a large table of records aligned to lines; else 1).
    home_mask: usize,
    per_line: usize,
    touched: Vec<usize>,
    /// Scratch of a chunk: each row's hash and group.
    hashes: Vec<u64>,
    ids: Vec<usize>,
    /// The rows of a chunk whose home line held only other keys, with the slot their probe
    /// goes on from.
    waiting: Vec<(usize, usize)>,
}

impl ColumnFold {
    /// The column fold of rule `r` over a table whose columns have `types`; `None` when the
    /// rule is not [`eligible`].
    pub(crate) fn new(r: &Rule, types: &[Type], instance: u32) -> Option<ColumnFold> {
        let ctx = crate::eval::Ctx { instance, row: 0, seed: 0 };
        let b = &r.body;
        let group = Group::new(b.group_by.clone().unwrap_or_default(), b.head.clone(), b.having.clone(), ctx);
        let (keys, aggs) = shape(r, &group, types)?;
        let mut offsets = Vec::new();
        let mut acc_words = 0;
        for a in &aggs {
            offsets.push(keys.len() + 1 + acc_words);
            acc_words += a.words();
        }
        let decides = group.outcome_decides();
        let words = keys.len() + 1 + if decides { acc_words } else { 2 * acc_words };
        // Up to a cache line, a record is padded to a power of two of words, so that with
        // the table's slots starting on a line (`grow`) no record straddles two lines.
        let stride = if words <= 8 { words.next_power_of_two() } else { words };
        Some(ColumnFold {
            threshold: Threshold::of(r, &group),
            having_reads_key: group.having_reads_key(),
            keys,
            aggs,
            offsets,
            group,
            decides,
            acc_words,
            stride,
            records: Vec::new(),
            slots: 0,
            base: 0,
            aligned: false,
            groups: 0,
            home_mask: 0,
            per_line: 1,
            touched: Vec::new(),
            hashes: Vec::new(),
            ids: Vec::new(),
            waiting: Vec::new(),
        })
    }

    /// Folds rows of the table given as its columns (every one `int`, of one length).
    pub(crate) fn add(&mut self, columns: &[&[i64]]) {
        let n = columns.first().map_or(0, |c| c.len());
        let mut start = 0;
        while start < n {
            let end = (start + CHUNK).min(n);
            self.chunk(columns, start..end);
            start = end;
        }
    }

    fn chunk(&mut self, columns: &[&[i64]], rows: std::ops::Range<usize>) {
        let len = rows.len();
        let keys: smallvec::SmallVec<[&[i64]; 4]> =
            self.keys.iter().map(|&c| columns.get(c).and_then(|col| col.get(rows.clone())).unwrap_or(&[])).collect();
        if keys.iter().any(|col| col.len() != len) {
            return;
        }
        // The hashes, a key column at a time.
        self.hashes.clear();
        self.hashes.resize(len, 0);
        for col in &keys {
            for (h, &x) in self.hashes.iter_mut().zip(col.iter()) {
                *h = (*h ^ x as u64).wrapping_mul(MUL);
            }
        }
        for h in self.hashes.iter_mut() {
            *h = finish_hash(*h);
        }
        // Each row's group, marked touched on the way (its flags share the key's cache line).
        if (self.groups + len) * 2 > self.slots {
            self.grow((self.groups + len) * 2);
        }
        self.find_groups(&keys, len);
        // The accumulators, an aggregate at a time.
        let aggs: smallvec::SmallVec<[(Agg, usize); 4]> =
            self.aggs.iter().copied().zip(self.offsets.iter().copied()).collect();
        for (a, off) in aggs {
            let arg = |c: usize| columns.get(c).and_then(|col| col.get(rows.clone())).unwrap_or(&[]);
            match a {
                Agg::Count => self.accumulate(a, off, &[], |w, _| {
                    if let Some(n) = w.first_mut() {
                        *n += 1;
                    }
                }),
                Agg::Sum(c) => self.accumulate(a, off, arg(c), |w, x| {
                    if let Some([lo, hi]) = w.get_mut(..2) {
                        let s = (i128::from(*hi as i64) << 64 | i128::from(*lo)) + i128::from(x);
                        (*lo, *hi) = (s as u64, (s >> 64) as u64);
                    }
                }),
                Agg::Min(c) => self.accumulate(a, off, arg(c), |w, x| {
                    if let Some(m) = w.first_mut() {
                        *m = (*m as i64).min(x) as u64;
                    }
                }),
                Agg::Max(c) => self.accumulate(a, off, arg(c), |w, x| {
                    if let Some(m) = w.first_mut() {
                        *m = (*m as i64).max(x) as u64;
                    }
                }),
            }
        }
    }

    /// Updates aggregate `agg`'s accumulator, at word `off` of every row's group, by
    /// `update` with the row's value of the argument column `arg` (empty for `count`). A
    /// threshold (on this, the one aggregate) is decided there and then, while the group is
    /// in cache: a group joins the touched list only when its outcome now differs from the
    /// one it showed, so the end of the tick visits those alone (a group that changes back
    /// is visited and found unchanged).
    #[inline(always)]
    fn accumulate(&mut self, agg: Agg, off: usize, arg: &[i64], update: impl Fn(&mut [u64], i64)) {
        let (stride, base, k) = (self.stride, self.base, self.keys.len());
        let threshold = self.threshold;
        for (i, &g) in self.ids.iter().enumerate() {
            let Some(record) = self.records.get_mut(base + g * stride..base + (g + 1) * stride) else { continue };
            let Some(words) = record.get_mut(off..) else { continue };
            update(words, arg.get(i).copied().unwrap_or(0));
            let Some(t) = threshold else { continue };
            let code = outcome_code(t.outcome(agg_value(agg, words)));
            if let Some(flags) = record.get_mut(k) {
                if (*flags >> OUTCOME_SHIFT) & 3 != code && *flags & TOUCHED == 0 {
                    *flags |= TOUCHED;
                    self.touched.push(g);
                }
            }
        }
    }

    /// The slot where `hash` starts probing: in a large table of records aligned to lines,
    /// the first of its cache line, so that the one line fetched for a row holds every slot
    /// it probes first.
    fn home(&self, hash: u64) -> usize {
        (hash as usize) & self.home_mask
    }

    /// Each row of the chunk's group (slot) in `self.ids`, added when new and marked
    /// touched, through [`ColumnFold::find`] for the number of key columns.
    fn find_groups(&mut self, keys: &[&[i64]], len: usize) {
        match keys.len() {
            1 => self.find::<1>(keys, len),
            2 => self.find::<2>(keys, len),
            3 => self.find::<3>(keys, len),
            4 => self.find::<4>(keys, len),
            5 => self.find::<5>(keys, len),
            6 => self.find::<6>(keys, len),
            7 => self.find::<7>(keys, len),
            8 => self.find::<8>(keys, len),
            // `shape` takes no fold of other key lengths.
            _ => {}
        }
    }

    /// [`ColumnFold::find_groups`] for `K` key columns, so that a key is `K` words in
    /// registers. A table that fits in cache is probed row after row. With many groups the
    /// rows' home lines are prefetched first, all of them, so that their misses overlap;
    /// then each row probes its home line, and a row whose line holds only other keys waits,
    /// with the next line prefetched, until the other rows are done. (Every row of that key
    /// waits too, so the rows of a key are still found in order.)
    fn find<const K: usize>(&mut self, keys: &[&[i64]], len: usize) {
        self.ids.clear();
        let Ok(cols) = <[&[i64]; K]>::try_from(keys) else { return };
        let key = |r: usize| -> [u64; K] {
            std::array::from_fn(|i| cols.get(i).and_then(|c| c.get(r)).map_or(0, |x| *x as u64))
        };
        if self.slots < LARGE {
            // The table is in cache: each row probes until it is done.
            let mut ids = std::mem::take(&mut self.ids);
            let hashes = std::mem::take(&mut self.hashes);
            ids.extend(hashes.iter().enumerate().take(len).map(|(r, &h)| {
                let home = self.home(h);
                self.probe(&key(r), home, usize::MAX).unwrap_or(home)
            }));
            self.ids = ids;
            self.hashes = hashes;
            return;
        }
        // A record's first and last words: one line when records are aligned, else maybe two.
        let fetch = |f: &ColumnFold, g: usize| {
            let at = f.records.as_ptr().wrapping_add(f.base + g * f.stride);
            prefetch(at);
            if !f.aligned {
                prefetch(at.wrapping_add(f.stride - 1));
            }
        };
        for &h in &self.hashes {
            fetch(self, self.home(h));
        }
        let mut waiting = std::mem::take(&mut self.waiting);
        waiting.clear();
        for r in 0..len {
            let home = self.home(self.hashes.get(r).copied().unwrap_or(0));
            let g = self.probe(&key(r), home, self.per_line).unwrap_or_else(|| {
                let next = (home + self.per_line) & self.slots.wrapping_sub(1);
                fetch(self, next);
                waiting.push((r, next));
                next
            });
            self.ids.push(g);
        }
        for &(r, next) in &waiting {
            // The table is at most half full (see `chunk`), so the probe ends.
            let g = self.probe(&key(r), next, usize::MAX).unwrap_or(next);
            if let Some(id) = self.ids.get_mut(r) {
                *id = g;
            }
        }
        self.waiting = waiting;
    }

    /// Probes at most `limit` slots from slot `from` for `key`: the slot holding it, marked
    /// touched, or the first empty one, where its group is added; `None` when every slot
    /// probed holds another key.
    #[inline(always)]
    fn probe<const K: usize>(&mut self, key: &[u64; K], from: usize, limit: usize) -> Option<usize> {
        let (stride, base, mask) = (self.stride, self.base, self.slots.wrapping_sub(1));
        // A group found is marked touched unless a threshold decides as it is updated.
        let mark = if self.threshold.is_some() { 0 } else { TOUCHED };
        let mut g = from;
        for _ in 0..limit {
            let record = self.records.get_mut(base + g * stride..base + g * stride + K + 1)?;
            let (held, flags) = record.split_at_mut(K);
            let flags = flags.first_mut()?;
            if held == key && *flags & OCCUPIED != 0 {
                if *flags & mark != mark {
                    *flags |= mark;
                    self.touched.push(g);
                }
                return Some(g);
            }
            if *flags & OCCUPIED == 0 {
                self.open(g, key);
                return Some(g);
            }
            g = (g + 1) & mask;
        }
        None
    }

    /// Adds the group of `key` in empty slot `g`: its key, its flags (touched unless a
    /// threshold decides as its accumulator is updated) and its accumulators at their start.
    #[cold]
    fn open(&mut self, g: usize, key: &[u64]) {
        let k = key.len();
        let eager = self.threshold.is_some();
        let start = self.base + g * self.stride;
        let Some(record) = self.records.get_mut(start..start + self.stride) else { return };
        let (held, rest) = record.split_at_mut(k);
        held.copy_from_slice(key);
        if let Some(flags) = rest.first_mut() {
            *flags = if eager { OCCUPIED } else { OCCUPIED | TOUCHED };
        }
        let mut at = 1;
        let copies = if self.decides { 1 } else { 2 };
        for _ in 0..copies {
            for a in &self.aggs {
                for w in a.start().get(..a.words()).unwrap_or(&[]) {
                    if let Some(slot) = rest.get_mut(at) {
                        *slot = *w;
                    }
                    at += 1;
                }
            }
        }
        if !eager {
            self.touched.push(g);
        }
        self.groups += 1;
    }

    /// Makes the table at least `want` slots long (a power of two), every group moved to
    /// the slot the hash of its key leads to; the touched groups are listed again by their
    /// new slots.
    fn grow(&mut self, want: usize) {
        let slots = want.next_power_of_two().max(16);
        let (k, stride) = (self.keys.len(), self.stride);
        // A line's worth of words more, so that the slots can start on a cache line: a record
        // of a power-of-two size up to a line then never straddles two.
        let old = std::mem::replace(&mut self.records, vec![0; slots * stride + 8]);
        if slots >= LARGE {
            crate::groups::advise_huge(&self.records);
        }
        let old_base = std::mem::replace(&mut self.base, self.records.as_ptr().align_offset(64).min(8));
        let old_slots = std::mem::replace(&mut self.slots, slots);
        self.aligned = stride.is_power_of_two() && stride <= 8;
        self.per_line = if self.aligned && slots >= LARGE { 8 / stride } else { 1 };
        self.home_mask = (slots - 1) & !(self.per_line - 1);
        self.touched.clear();
        let mask = slots - 1;
        for record in old.get(old_base..).unwrap_or(&[]).chunks_exact(stride).take(old_slots) {
            let flags = record.get(k).copied().unwrap_or(0);
            if flags & OCCUPIED == 0 {
                continue;
            }
            let h = finish_hash(record.get(..k).unwrap_or(&[]).iter().fold(0, |h, &w| (h ^ w).wrapping_mul(MUL)));
            let mut g = self.home(h);
            while let Some(slot) = self.records.get_mut(self.base + g * stride..self.base + (g + 1) * stride) {
                if slot.get(k).is_some_and(|f| f & OCCUPIED == 0) {
                    slot.copy_from_slice(record);
                    if flags & TOUCHED != 0 {
                        self.touched.push(g);
                    }
                    break;
                }
                g = (g + 1) & mask;
            }
        }
    }

    /// The aggregates' values from a group's accumulator words; `None` when a sum does not
    /// fit an `int` (the group then fails, as the other aggregation paths fail it).
    fn values(&self, words: &[u64]) -> Option<smallvec::SmallVec<[Value; 4]>> {
        let mut at = 0;
        let mut out = smallvec::SmallVec::new();
        for a in &self.aggs {
            out.push(Value::Int(agg_value(*a, words.get(at..)?)?));
            at += a.words();
        }
        Some(out)
    }

    /// Ends the tick: each touched group's change, its old row -1 and new row +1, as
    /// [`crate::fold::Fold::finish`] gives them.
    pub(crate) fn finish(&mut self) -> Vec<((bool, Row), isize)> {
        let mut out = Vec::new();
        let touched = std::mem::take(&mut self.touched);
        let (k, stride, n) = (self.keys.len(), self.stride, self.acc_words);
        let large = self.slots >= LARGE;
        let no_key = Row::new();
        for (t, &g) in touched.iter().enumerate() {
            if let (Some(&ahead), true) = (touched.get(t + AHEAD), large) {
                prefetch(self.records.as_ptr().wrapping_add(self.base + ahead * stride));
                prefetch(self.records.as_ptr().wrapping_add(self.base + ahead * stride + stride - 1));
            }
            let start = self.base + g * stride;
            let Some(record) = self.records.get(start..start + stride) else { continue };
            let flags = record.get(k).copied().unwrap_or(0) & !TOUCHED;
            let now = record.get(k + 1..k + 1 + n).unwrap_or(&[]);
            let key = || -> Row { record.get(..k).unwrap_or(&[]).iter().map(|&w| Value::Int(w as i64)).collect() };
            let mut emit = |old: Option<(bool, Row)>, new: Option<(bool, Row)>| {
                if new != old {
                    out.extend(old.map(|row| (row, -1)));
                    out.extend(new.map(|row| (row, 1)));
                }
            };
            let flags = if self.decides {
                let built;
                let key_row = if self.having_reads_key {
                    built = key();
                    &built
                } else {
                    &no_key
                };
                let outcome = match self.threshold {
                    Some(t) => t.outcome(self.aggs.first().and_then(|a| agg_value(*a, now))),
                    None => self.group.outcome(key_row, self.values(now).as_deref()),
                };
                let code = outcome_code(outcome);
                let before = match (flags >> OUTCOME_SHIFT) & 3 {
                    1 => Some(Outcome::Pass),
                    2 => Some(Outcome::Reject),
                    3 => Some(Outcome::Failed),
                    _ => None,
                };
                if before != Some(outcome) {
                    let key = key();
                    emit(before.and_then(|o| self.group.row(&key, o, &[])), self.group.row(&key, outcome, &[]));
                }
                (flags & !(3 << OUTCOME_SHIFT)) | (code << OUTCOME_SHIFT)
            } else {
                let shown = record.get(k + 1 + n..k + 1 + 2 * n).unwrap_or(&[]);
                if flags & SHOWN == 0 || now != shown {
                    let key = key();
                    let old =
                        if flags & SHOWN != 0 { self.group.finish(&key, self.values(shown).as_deref()) } else { None };
                    emit(old, self.group.finish(&key, self.values(now).as_deref()));
                    let now: smallvec::SmallVec<[u64; 8]> = now.iter().copied().collect();
                    if let Some(shown) = self.records.get_mut(start + k + 1 + n..start + k + 1 + 2 * n) {
                        shown.copy_from_slice(&now);
                    }
                }
                flags | SHOWN
            };
            if let Some(f) = self.records.get_mut(start + k) {
                *f = flags;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Threshold;
    use crate::rules::Outcome;
    use bloomc_grammar::ast::BinaryOp;
    use proptest::prelude::*;

    fn int() -> impl Strategy<Value = i64> {
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), -3i64..4, any::<i64>()]
    }

    proptest! {
        /// A threshold decides as the language's comparison of the aggregate and the constant
        /// in the order written does, either way round, at the ends of `int` too; a sum out of
        /// range fails.
        #[test]
        fn thresholds_compare_as_the_language_does(v in int(), c in int(), left in any::<bool>(), op in 0usize..6) {
            let ops = [BinaryOp::Lt, BinaryOp::Le, BinaryOp::Gt, BinaryOp::Ge, BinaryOp::Eq, BinaryOp::Ne];
            let op = *ops.get(op).expect("one of six");
            let t = Threshold::comparison(op, c, left).expect("a comparison");
            let (x, y) = if left { (v, c) } else { (c, v) };
            let passes = bloomc_compiler::ops::compare(op, || x.cmp(&y)).expect("integers compare");
            prop_assert_eq!(t.outcome(Some(v)), if passes { Outcome::Pass } else { Outcome::Reject });
            prop_assert_eq!(t.outcome(None), Outcome::Failed);
        }
    }

    #[test]
    fn arithmetic_is_not_a_threshold() {
        assert_eq!(Threshold::comparison(BinaryOp::Add, 1, true), None);
    }
}
