//! Runtime values and rows. Rows cross workers, so they are `Ord + Hash + Clone + serde`.

use bloomc_compiler::ir::{self, Type};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::fmt;

/// A float with a total order (IEEE `total_cmp`, `bloomc_compiler::ops::float_cmp`), so rows
/// can be sorted and hashed; it is also the language's `==` and `<` on floats.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Float(pub f64);

impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        bloomc_compiler::ops::float_eq(self.0, other.0)
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
        bloomc_compiler::ops::float_cmp(self.0, other.0)
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
            Value::Float(x) => bloomc_compiler::ops::fmt_float(x.0, f),
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

/// A compact, exact encoding of (some columns of) a row whose values all have their
/// schema's `int`, `float` or `bool` type: one word per value (integers as their bits,
/// floats by `to_bits`, which is exactly the equality of [`Float`], booleans as 0 or 1).
/// Up to four words are kept inline, zero-padded: an entry of a hash set is then 40 bytes,
/// against 56 for a small vector. Within one set every encoding has one arity and one type
/// per column, so two values are equal exactly when their encodings are. Strings, and values
/// whose variant is not their type's, keep the values themselves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Packed {
    Four([u64; 4]),
    Words(Box<[u64]>),
    Row(Box<Row>),
}

impl Packed {
    /// The encoding of columns `cols` of `row` (all of them for `None`), whose values should
    /// have the given types: words only when every value has its type's variant, so
    /// [`Packed::values`] gives back exactly these values; the values themselves otherwise.
    pub fn typed(row: &Row, cols: Option<&[usize]>, types: &[Type]) -> Packed {
        // The common key first: up to four `int` columns.
        if let Some(cols) = cols.filter(|c| c.len() == types.len() && c.len() <= 4) {
            let mut w = [0u64; 4];
            let ints = w.iter_mut().zip(cols.iter().zip(types)).all(|(slot, (&c, t))| match (row.get(c), t) {
                (Some(Value::Int(x)), Type::Int) => {
                    *slot = *x as u64;
                    true
                }
                _ => false,
            });
            if ints {
                return Packed::Four(w);
            }
        }
        let n = cols.map_or(row.len(), <[usize]>::len);
        let value = |i: usize| -> Option<&Value> {
            match cols {
                Some(cols) => cols.get(i).and_then(|&c| row.get(c)),
                None => row.get(i),
            }
        };
        let word = |i: usize, t: &Type| -> Option<u64> {
            match (value(i)?, t) {
                (Value::Int(x), Type::Int) => Some(*x as u64),
                (Value::Float(f), Type::Float) => Some(f.0.to_bits()),
                (Value::Bool(b), Type::Bool) => Some(u64::from(*b)),
                _ => None,
            }
        };
        if n == types.len() {
            if n <= 4 {
                let mut w = [0u64; 4];
                let exact =
                    w.iter_mut().zip(types).enumerate().all(|(i, (slot, t))| word(i, t).map(|x| *slot = x).is_some());
                if exact {
                    return Packed::Four(w);
                }
            } else if let Some(words) = types.iter().enumerate().map(|(i, t)| word(i, t)).collect::<Option<Vec<u64>>>()
            {
                return Packed::Words(words.into());
            }
        }
        Packed::Row(Box::new((0..n).filter_map(value).cloned().collect()))
    }

    /// The values encoded by [`Packed::typed`] with the same types.
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
