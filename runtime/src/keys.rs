//! Keys of input interfaces (`input click(cid: int, ..) key (cid);`): no two facts an input
//! receives in a run share their key. The driver checks each fact as it arrives, before
//! the dataflow, in delivery order (messages, then each feed's rows in order); a fact whose
//! key an earlier fact of the run already had is rejected, counted, and the first one kept
//! for the report. Nothing downstream sees it.
//!
//! The keys seen are kept compactly: a single `int` column in a roaring bitmap (a few bits
//! per key when keys are dense, as event ids are), any other key in a hash set of its
//! [`Packed`] encoding. Event ids mostly come in ascending runs (1, 2, 3, ...): a key one
//! above the last one admitted extends the current run, which is not yet in the bitmap and
//! enters it as one range when the run ends, so a run costs a comparison per key instead of
//! an insertion into the bitmap (docs/runtime.md, section 4.5, has the figures).

use crate::value::{Packed, Row, Value};
use bloomc_compiler::ir::Type;
use roaring::RoaringTreemap;

pub(crate) struct KeyCheck {
    cols: Vec<usize>,
    types: Vec<Type>,
    /// The `int` keys admitted, as order-preserving `u64`s (see `admit`), except the current
    /// run `run` (first and last), whose keys are all above those in `ints`.
    ints: RoaringTreemap,
    run: Option<(u64, u64)>,
    other: hashbrown::HashSet<Packed>,
    /// Facts rejected so far, and the first of them.
    pub(crate) rejected: u64,
    pub(crate) first: Option<Row>,
}

impl KeyCheck {
    /// The check of a key over columns `cols` of types `types`.
    pub(crate) fn new(cols: Vec<usize>, types: Vec<Type>) -> KeyCheck {
        KeyCheck {
            cols,
            types,
            ints: RoaringTreemap::new(),
            run: None,
            other: hashbrown::HashSet::new(),
            rejected: 0,
            first: None,
        }
    }

    /// Whether `fact` is the first of the run with its key; if not, it is counted.
    pub(crate) fn admit(&mut self, fact: &Row) -> bool {
        // A single `int` column goes to the bitmap as the integer's bits with the sign bit
        // flipped (distinct integers are distinct u64s, in the same order); a value of
        // another type, from a row that does not match the schema, goes to the set, as
        // every other key does.
        let int = match (self.cols.as_slice(), self.types.as_slice()) {
            ([c], [Type::Int]) => match fact.get(*c) {
                Some(Value::Int(i)) => Some(*i as u64 ^ (1 << 63)),
                _ => None,
            },
            _ => None,
        };
        let new = match int {
            Some(i) => self.admit_int(i),
            None => self.other.insert(Packed::typed(fact, Some(&self.cols), &self.types)),
        };
        if !new {
            self.rejected += 1;
            self.first.get_or_insert_with(|| fact.clone());
        }
        new
    }

    /// The key's column when it is one `int` column: facts can then be checked a column at
    /// a time ([`KeyCheck::admit_ints`]).
    pub(crate) fn int_column(&self) -> Option<usize> {
        match (self.cols.as_slice(), self.types.as_slice()) {
            ([c], [Type::Int]) => Some(*c),
            _ => None,
        }
    }

    /// Checks, in order, facts whose key column ([`KeyCheck::int_column`]) holds `keys`:
    /// `None` when every one is admitted, else which are. The rejected are counted, the
    /// first of them built by `row` from its position. The common case, keys that carry the
    /// current ascending run on one by one, costs one pass of comparisons over the column.
    pub(crate) fn admit_ints(&mut self, keys: &[i64], row: impl Fn(usize) -> Row) -> Option<Vec<bool>> {
        let bits = |x: i64| x as u64 ^ (1 << 63);
        if let (Some(&first), Some(&last)) = (keys.first(), keys.last()) {
            // One by one upwards, and without wrapping past `i64::MAX`.
            let ascending =
                keys.iter().zip(keys.iter().skip(1)).fold(true, |ok, (a, b)| ok & (b.wrapping_sub(*a) == 1))
                    && last >= first;
            let (first, last) = (bits(first), bits(last));
            let carries = match self.run {
                Some((_, end)) => end.checked_add(1) == Some(first),
                None => self.ints.max().is_none_or(|max| first > max),
            };
            if ascending && carries {
                self.run = Some((self.run.map_or(first, |(start, _)| start), last));
                return None;
            }
        }
        let mut keep = Vec::with_capacity(keys.len());
        for (i, &k) in keys.iter().enumerate() {
            let new = self.admit_int(bits(k));
            if !new {
                self.rejected += 1;
                self.first.get_or_insert_with(|| row(i));
            }
            keep.push(new);
        }
        Some(keep)
    }

    /// Whether `i` is new among the `int` keys; it is then added.
    fn admit_int(&mut self, i: u64) -> bool {
        match self.run {
            Some((first, last)) if last.checked_add(1) == Some(i) => {
                self.run = Some((first, i));
                true
            }
            Some((first, last)) => {
                self.ints.insert_range(first..=last);
                self.run = None;
                if i > last {
                    self.run = Some((i, i));
                    true
                } else {
                    self.ints.insert(i)
                }
            }
            None if self.ints.max().is_none_or(|max| i > max) => {
                self.run = Some((i, i));
                true
            }
            None => self.ints.insert(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KeyCheck;
    use crate::value::{Row, Value};
    use bloomc_compiler::ir::Type;

    fn row(values: &[i64]) -> Row {
        values.iter().map(|v| Value::Int(*v)).collect()
    }

    #[test]
    fn a_repeated_key_is_rejected_and_counted_whatever_the_other_columns() {
        let mut k = KeyCheck::new(vec![0], vec![Type::Int]);
        assert!(k.admit(&row(&[5, 1])));
        assert!(k.admit(&row(&[-5, 1])));
        assert!(!k.admit(&row(&[5, 2])));
        assert!(!k.admit(&row(&[5, 1])));
        assert!(k.admit(&row(&[i64::MIN, 0])));
        assert_eq!((k.rejected, k.first), (2, Some(row(&[5, 2]))));
    }

    proptest::proptest! {
        /// Against a hash set, on keys that run up, jump, repeat and go back, across zero
        /// and the ends of `i64`.
        #[test]
        fn int_keys_are_admitted_once_as_a_set_admits_them(steps in proptest::collection::vec((0u8..6, -3i64..4), 0..300)) {
            let mut k = KeyCheck::new(vec![0], vec![Type::Int]);
            let mut oracle = std::collections::HashSet::new();
            let mut at = -20i64;
            for (kind, d) in steps {
                at = match kind {
                    0..=2 => at.wrapping_add(1),
                    3 => at.wrapping_add(d),
                    4 => [i64::MIN, i64::MAX, 0, -1].get(d.unsigned_abs() as usize % 4).copied().unwrap_or(0),
                    _ => at.wrapping_add(d * 50),
                };
                proptest::prop_assert_eq!(k.admit(&row(&[at])), oracle.insert(at), "key {}", at);
            }
        }
    }

    proptest::proptest! {
        /// A column at a time, against the same keys one by one.
        #[test]
        fn a_column_is_checked_as_its_keys_one_by_one(chunks in proptest::collection::vec((0u8..3, -4i64..5, 1usize..6), 0..40)) {
            let (mut column, mut single) = (KeyCheck::new(vec![0], vec![Type::Int]), KeyCheck::new(vec![0], vec![Type::Int]));
            let mut at = i64::MAX - 30;
            for (kind, d, n) in chunks {
                at = if kind == 0 { at.wrapping_add(d * 7) } else { at.wrapping_add(1) };
                let keys: Vec<i64> = (0..n as i64).map(|j| if kind == 2 { at.wrapping_add(j % 2) } else { at.wrapping_add(j) }).collect();
                at = keys.last().copied().unwrap_or(at);
                let want: Vec<bool> = keys.iter().map(|k| single.admit(&row(&[*k]))).collect();
                let got = column.admit_ints(&keys, |i| row(&[keys.get(i).copied().unwrap_or(0)]));
                proptest::prop_assert_eq!(got.unwrap_or_else(|| vec![true; keys.len()]), want, "keys {:?}", keys);
                proptest::prop_assert_eq!((column.rejected, &column.first), (single.rejected, &single.first));
            }
        }
    }

    #[test]
    fn a_key_of_two_columns_compares_both() {
        let mut k = KeyCheck::new(vec![1, 0], vec![Type::Int, Type::Int]);
        assert!(k.admit(&row(&[1, 2, 9])));
        assert!(k.admit(&row(&[2, 1, 9])));
        assert!(!k.admit(&row(&[1, 2, 8])));
        assert_eq!(k.rejected, 1);
    }
}
