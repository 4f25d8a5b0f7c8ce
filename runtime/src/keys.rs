//! Keys of input interfaces (`input click(cid: int, ..) key (cid);`): no two facts an input
//! receives in a run share their key. The driver checks each fact as it arrives, before
//! the dataflow, in delivery order (messages, then each feed's rows in order); a fact whose
//! key an earlier fact of the run already had is rejected, counted, and the first one kept
//! for the report. Nothing downstream sees it.
//!
//! The keys seen are kept compactly: a single `int` column in a roaring bitmap (a few bits
//! per key when keys are dense, as event ids are), any other key in a hash set of its
//! [`Packed`] encoding.

use crate::value::{Packed, Row, Value};
use bloomc_compiler::ir::Type;
use roaring::RoaringTreemap;

pub(crate) struct KeyCheck {
    cols: Vec<usize>,
    types: Vec<Type>,
    ints: RoaringTreemap,
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
            other: hashbrown::HashSet::new(),
            rejected: 0,
            first: None,
        }
    }

    /// Whether `fact` is the first of the run with its key; if not, it is counted.
    pub(crate) fn admit(&mut self, fact: &Row) -> bool {
        // A single `int` column goes to the bitmap as the integer's bits (distinct integers
        // are distinct u64s); a value of another type, from a row that does not match the
        // schema, goes to the set, as every other key does.
        let int = match (self.cols.as_slice(), self.types.as_slice()) {
            ([c], [Type::Int]) => match fact.get(*c) {
                Some(Value::Int(i)) => Some(*i as u64),
                _ => None,
            },
            _ => None,
        };
        let new = match int {
            Some(i) => self.ints.insert(i),
            None => self.other.insert(Packed::typed(fact, Some(&self.cols), &self.types)),
        };
        if !new {
            self.rejected += 1;
            self.first.get_or_insert_with(|| fact.clone());
        }
        new
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

    #[test]
    fn a_key_of_two_columns_compares_both() {
        let mut k = KeyCheck::new(vec![1, 0], vec![Type::Int, Type::Int]);
        assert!(k.admit(&row(&[1, 2, 9])));
        assert!(k.admit(&row(&[2, 1, 9])));
        assert!(!k.admit(&row(&[1, 2, 8])));
        assert_eq!(k.rejected, 1);
    }
}
