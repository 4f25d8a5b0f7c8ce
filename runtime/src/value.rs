//! Runtime values and rows. Rows cross workers, so they are `Ord + Hash + Clone + serde`.

use bloomc_compiler::ir;
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
