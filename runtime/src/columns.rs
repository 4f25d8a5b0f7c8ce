//! Rows kept in columns: one typed vector per column of an input's schema, the compact form
//! in which a feed of rows already read (a file, or rows handed over by a program through
//! the API, as the CAMPAIGN benchmark does) is held for the whole run.
//!
//! A generic [`Row`] is a small vector of [`Value`]s, 136 bytes for four integers; here four
//! `int` columns cost 32 bytes a row, so ten million clicks take 320 MB instead of 1.4 GB.
//! The driver reads `int` columns in place, a tick's slice at a time, when the plan folds
//! the input column by column (`colfold.rs`); any other reader gets each row built again
//! ([`Columns::row`]), exactly as it was pushed.

use crate::value::{Float, Row, Value};
use bloomc_compiler::ir::Type;

/// One column's values, all of the column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
    Str(Vec<String>),
}

impl Column {
    fn new(ty: Type, capacity: usize) -> Column {
        match ty {
            Type::Int => Column::Int(Vec::with_capacity(capacity)),
            Type::Float => Column::Float(Vec::with_capacity(capacity)),
            Type::Bool => Column::Bool(Vec::with_capacity(capacity)),
            Type::String => Column::Str(Vec::with_capacity(capacity)),
        }
    }

    fn value(&self, i: usize) -> Option<Value> {
        match self {
            Column::Int(v) => v.get(i).map(|x| Value::Int(*x)),
            Column::Float(v) => v.get(i).map(|x| Value::Float(Float(*x))),
            Column::Bool(v) => v.get(i).map(|x| Value::Bool(*x)),
            Column::Str(v) => v.get(i).map(|x| Value::Str(x.clone())),
        }
    }
}

/// Rows of one schema, by column.
#[derive(Debug, Clone, PartialEq)]
pub struct Columns {
    columns: Vec<Column>,
    len: usize,
}

impl Columns {
    /// No rows yet, of a schema with these column types.
    pub fn new(types: &[Type], capacity: usize) -> Columns {
        Columns { columns: types.iter().map(|t| Column::new(*t, capacity)).collect(), len: 0 }
    }

    /// The rows, when every one has the schema's arity and each value its column's type.
    pub fn from_rows(types: &[Type], rows: &[Row]) -> Option<Columns> {
        let mut out = Columns::new(types, rows.len());
        rows.iter().all(|r| out.push(r)).then_some(out)
    }

    /// Appends `row`; false (and nothing appended) when it does not fit the schema.
    pub fn push(&mut self, row: &Row) -> bool {
        let fits = row.len() == self.columns.len()
            && self.columns.iter().zip(row).all(|(c, v)| {
                matches!(
                    (c, v),
                    (Column::Int(_), Value::Int(_))
                        | (Column::Float(_), Value::Float(_))
                        | (Column::Bool(_), Value::Bool(_))
                        | (Column::Str(_), Value::Str(_))
                )
            });
        if !fits {
            return false;
        }
        for (c, v) in self.columns.iter_mut().zip(row) {
            match (c, v) {
                (Column::Int(c), Value::Int(x)) => c.push(*x),
                (Column::Float(c), Value::Float(x)) => c.push(x.0),
                (Column::Bool(c), Value::Bool(x)) => c.push(*x),
                (Column::Str(c), Value::Str(x)) => c.push(x.clone()),
                _ => {}
            }
        }
        self.len += 1;
        true
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Row `i`, built again from its columns.
    pub fn row(&self, i: usize) -> Row {
        self.columns.iter().filter_map(|c| c.value(i)).collect()
    }

    /// Every column's values in rows `range`, when every column is an `int` column: what
    /// the column fold reads in place.
    pub fn ints(&self, range: std::ops::Range<usize>) -> Option<Vec<&[i64]>> {
        self.columns
            .iter()
            .map(|c| match c {
                Column::Int(v) => v.get(range.clone()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Columns;
    use crate::value::{Float, Row, Value};
    use bloomc_compiler::ir::Type;

    #[test]
    fn rows_come_back_as_they_were_pushed_and_misfits_are_refused() {
        let types = [Type::Int, Type::Float, Type::Bool, Type::String];
        let row: Row =
            [Value::Int(-3), Value::Float(Float(0.5)), Value::Bool(true), Value::Str("x".into())].into_iter().collect();
        let mut c = Columns::new(&types, 0);
        assert!(c.push(&row));
        assert!(!c.push(&[Value::Int(1)].into_iter().collect()));
        assert!(!c.push(&row.iter().rev().cloned().collect()));
        assert_eq!((c.len(), c.row(0)), (1, row));
        assert!(c.ints(0..1).is_none(), "not every column is an int column");
        let mut ints = Columns::new(&[Type::Int, Type::Int], 0);
        for pair in [[1, 3], [2, 4]] {
            assert!(ints.push(&pair.iter().map(|x| Value::Int(*x)).collect()));
        }
        assert_eq!(ints.ints(1..2), Some(vec![&[2][..], &[4][..]]));
        assert_eq!(ints.ints(1..3), None, "past the end");
        assert_eq!(ints.row(1), [Value::Int(2), Value::Int(4)].into_iter().collect::<Row>());
    }
}
