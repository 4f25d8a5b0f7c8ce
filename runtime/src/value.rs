//! Runtime values and rows. Rows cross workers, so they are `Ord + Hash + Clone + serde`.

use bloomc_compiler::ir::{self, Type};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::fmt;

/// A float with a total order (IEEE `total_cmp`), so rows can be sorted and hashed.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Float(pub f64);

impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}
impl Eq for Float {}
impl PartialOrd for Float {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Float {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl std::hash::Hash for Float {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(Float),
    Str(String),
}

impl Value {
    pub fn from_ir(v: &ir::Value) -> Value {
        match v {
            ir::Value::Int(i) => Value::Int(*i),
            ir::Value::Float(x) => Value::Float(Float(*x)),
            ir::Value::Str(s) => Value::Str(s.clone()),
            ir::Value::Bool(b) => Value::Bool(*b),
        }
    }
}

/// Text as `str()` produces it and as outputs print it (strings unquoted).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{:?}", x.0),
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// A fact: one value per column.
pub type Row = SmallVec<[Value; 4]>;

/// `a, b, "c"`-style text of a row, for printing outputs.
pub fn show(row: &Row) -> String {
    let cols: Vec<String> = row
        .iter()
        .map(|v| match v {
            Value::Str(s) => format!("{s:?}"),
            other => other.to_string(),
        })
        .collect();
    cols.join(", ")
}

/// A compact, exact encoding of a row whose columns are all `int`, `float` or `bool`: one
/// word per column (integers as their bits, floats by `to_bits`, which is exactly the
/// equality of [`Float`], booleans as 0 or 1). Within one collection every column has one
/// type, so two rows are equal exactly when their words are. Rows with strings stay rows.
///
/// Up to four words are kept inline, zero-padded: an entry of a hash set is then 40 bytes,
/// against 56 for a small vector (a set of rows of one collection has one arity, so the
/// padding never makes two rows equal).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Packed {
    Four([u64; 4]),
    Words(Box<[u64]>),
    Row(Box<Row>),
}

impl Packed {
    /// `words` says whether the collection has no string column (decided from its schema).
    pub fn new(row: &Row, words: bool) -> Packed {
        Packed::columns(row, None, words)
    }

    /// The encoding of some of `row`'s columns (all of them for `None`).
    pub fn columns(row: &Row, cols: Option<&[usize]>, words: bool) -> Packed {
        let picked = || -> Row {
            match cols {
                Some(cols) => cols.iter().filter_map(|&c| row.get(c).cloned()).collect(),
                None => row.clone(),
            }
        };
        if !words {
            return Packed::Row(Box::new(picked()));
        }
        let mut out: SmallVec<[u64; 4]> = SmallVec::new();
        let mut push = |v: &Value| -> bool {
            out.push(match v {
                Value::Int(i) => *i as u64,
                Value::Float(f) => f.0.to_bits(),
                Value::Bool(b) => u64::from(*b),
                Value::Str(_) => return false,
            });
            true
        };
        let all = match cols {
            Some(cols) => cols.iter().all(|&c| row.get(c).is_some_and(&mut push)),
            None => row.iter().all(&mut push),
        };
        if !all {
            // A string where the schema promised none, or a missing column: keep the values.
            return Packed::Row(Box::new(picked()));
        }
        match out.as_slice() {
            &[a] => Packed::Four([a, 0, 0, 0]),
            &[a, b] => Packed::Four([a, b, 0, 0]),
            &[a, b, c] => Packed::Four([a, b, c, 0]),
            &[a, b, c, d] => Packed::Four([a, b, c, d]),
            words => Packed::Words(words.into()),
        }
    }
}

impl Packed {
    /// The encoding of columns `cols` of `row` (all of them for `None`), whose values should
    /// have the given types: words only when every value has its type's variant, so
    /// [`Packed::values`] gives back exactly these values; the values themselves otherwise.
    pub fn typed(row: &Row, cols: Option<&[usize]>, types: &[Type]) -> Packed {
        let mut w = [0u64; 4];
        let n = cols.map_or(row.len(), <[usize]>::len);
        let word = |v: &Value, t: &Type| -> Option<u64> {
            match (v, t) {
                (Value::Int(i), Type::Int) => Some(*i as u64),
                (Value::Float(f), Type::Float) => Some(f.0.to_bits()),
                (Value::Bool(b), Type::Bool) => Some(u64::from(*b)),
                _ => None,
            }
        };
        let value = |i: usize| -> Option<&Value> {
            match cols {
                Some(cols) => cols.get(i).and_then(|&c| row.get(c)),
                None => row.get(i),
            }
        };
        if n <= 4 && n == types.len() {
            let all =
                w.iter_mut().zip(types).enumerate().all(|(i, (slot, t))| match value(i).and_then(|v| word(v, t)) {
                    Some(x) => {
                        *slot = x;
                        true
                    }
                    None => false,
                });
            if all {
                return Packed::Four(w);
            }
        }
        let picked: Row = (0..n).filter_map(value).cloned().collect();
        let exact = n == types.len() && picked.iter().zip(types).all(|(v, t)| word(v, t).is_some());
        Packed::new(&picked, exact)
    }

    /// The encoding of a group key whose values have the given types (see [`Packed::typed`]).
    pub fn key(key: &[Value], types: &[Type]) -> Packed {
        let row: Row = key.iter().cloned().collect();
        Packed::typed(&row, None, types)
    }

    /// The values of a key encoded by [`Packed::key`] with the same types.
    pub fn values(&self, types: &[Type]) -> Row {
        let words: &[u64] = match self {
            Packed::Four(w) => w,
            Packed::Words(w) => w,
            Packed::Row(row) => return (**row).clone(),
        };
        types
            .iter()
            .zip(words)
            .map(|(t, &w)| match t {
                Type::Float => Value::Float(Float(f64::from_bits(w))),
                Type::Bool => Value::Bool(w != 0),
                _ => Value::Int(w as i64),
            })
            .collect()
    }
}
