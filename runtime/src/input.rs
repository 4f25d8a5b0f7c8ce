//! Reading input facts from CSV or JSON-lines files (or standard input), typed by the input
//! interface's schema. A malformed row is an error naming the file, line and column; with
//! `skip_bad_rows` it is counted and skipped instead. Nothing is dropped silently.
//!
//! A file is read whole, so its size is bounded ([`Limits::file_bytes`]: `/dev/zero` is an
//! error, not a process that grows until it is killed), and so is each field
//! ([`Limits::field_bytes`], a bad row naming its line and column).

use crate::value::{Float, Row, Value};
use bloomc_compiler::ir::{Collection, Type};
use std::io::Read;

/// The most an input may hold; `bloomc run` sets them from `--max-input-bytes` and
/// `--max-field-bytes`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub file_bytes: u64,
    pub field_bytes: usize,
}

/// 1 GiB per file, 1 MiB per field.
pub const DEFAULT_LIMITS: Limits = Limits { file_bytes: 1 << 30, field_bytes: 1 << 20 };

/// A row that did not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub file: String,
    pub line: u64,
    /// 1-based field position, or 0 when the whole row is wrong (its arity).
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.column == 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

/// The rows read, and the bad rows skipped (empty unless `skip_bad_rows`).
pub struct ReadRows {
    pub rows: Vec<Row>,
    pub bad: Vec<BadRow>,
}

fn parse(text: &str, ty: Type) -> Result<Value, String> {
    let t = text.trim();
    match ty {
        Type::String => Ok(Value::Str(text.to_string())),
        Type::Int => t.parse().map(Value::Int).map_err(|_| format!("`{text}` is not an int")),
        Type::Float => t
            .parse()
            .map(|x| Value::Float(Float(bloomc_compiler::ops::canonical(x))))
            .map_err(|_| format!("`{text}` is not a float")),
        Type::Bool => t.parse().map(Value::Bool).map_err(|_| format!("`{text}` is not a bool (true or false)")),
    }
}

fn from_json(v: &serde_json::Value, ty: Type) -> Option<Value> {
    match (ty, v) {
        (Type::Int, serde_json::Value::Number(n)) => n.as_i64().map(Value::Int),
        (Type::Float, serde_json::Value::Number(n)) => n.as_f64().map(|x| Value::Float(Float(x))),
        (Type::String, serde_json::Value::String(s)) => Some(Value::Str(s.clone())),
        (Type::Bool, serde_json::Value::Bool(b)) => Some(Value::Bool(*b)),
        _ => None,
    }
}

/// Reads `path` (`-` for standard input) as rows of `schema`. JSON lines when the path ends
/// in `.jsonl` or `.json`; CSV otherwise (a first line equal to the column names is a header).
pub fn read(path: &str, schema: &Collection, skip_bad_rows: bool, limits: Limits) -> Result<ReadRows, String> {
    let (name, text) = load(path, limits)?;
    let mut r = Reading { name, schema, limits, skip_bad_rows, out: ReadRows { rows: Vec::new(), bad: Vec::new() } };
    if path.ends_with(".jsonl") || path.ends_with(".json") {
        r.json(&text)?;
    } else {
        r.csv(&text)?;
    }
    Ok(r.out)
}

/// The text of `path` (`-` for standard input) and the name errors give it: at most
/// `limits.file_bytes` bytes of UTF-8.
fn load(path: &str, limits: Limits) -> Result<(String, String), String> {
    let name = if path == "-" { "<stdin>".to_string() } else { path.to_string() };
    let source: Box<dyn Read> = if path == "-" {
        Box::new(std::io::stdin())
    } else {
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
        if meta.is_dir() {
            return Err(format!("`{path}` is a directory; give a CSV or JSON-lines file"));
        }
        Box::new(std::fs::File::open(path).map_err(|e| format!("cannot read `{path}`: {e}"))?)
    };
    let mut bytes = Vec::new();
    source
        .take(limits.file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read `{name}`: {e}"))?;
    if bytes.len() as u64 > limits.file_bytes {
        return Err(format!(
            "`{name}` holds more than {} bytes, the limit for an input: raise it with `--max-input-bytes N`",
            limits.file_bytes
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "`{name}` is not valid UTF-8 (first bad byte at offset {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok((name, text))
}

/// One file being read into rows of `schema`.
struct Reading<'a> {
    name: String,
    schema: &'a Collection,
    limits: Limits,
    skip_bad_rows: bool,
    out: ReadRows,
}

impl Reading<'_> {
    /// A bad row: counted with `--skip-bad-rows`, else the error that stops the read.
    fn reject(&mut self, bad: BadRow) -> Result<(), String> {
        if self.skip_bad_rows {
            self.out.bad.push(bad);
            Ok(())
        } else {
            Err(format!("{bad}\n(pass --skip-bad-rows to skip malformed rows and count them)"))
        }
    }

    fn bad(&self, line: u64, column: usize, message: String) -> BadRow {
        BadRow { file: self.name.clone(), line, column, message }
    }

    fn too_long(&self, len: usize) -> String {
        format!(
            "a field of {len} bytes, over the limit of {} bytes: raise it with `--max-field-bytes N`",
            self.limits.field_bytes
        )
    }

    /// JSON lines: an object with the column names as keys, or an array of the values.
    fn json(&mut self, text: &str) -> Result<(), String> {
        for (i, line) in text.lines().enumerate() {
            let line_no = i as u64 + 1;
            if line.trim().is_empty() {
                continue;
            }
            let row = match serde_json::from_str::<serde_json::Value>(line) {
                Ok(value) => self.json_row(line_no, &value),
                Err(e) => Err(self.bad(line_no, e.column(), format!("malformed JSON: {e}"))),
            };
            match row {
                Ok(row) => self.out.rows.push(row),
                Err(bad) => self.reject(bad)?,
            }
        }
        Ok(())
    }

    fn json_row(&self, line_no: u64, value: &serde_json::Value) -> Result<Row, BadRow> {
        let cols = &self.schema.columns;
        let fields: Vec<Option<&serde_json::Value>> = match value {
            serde_json::Value::Object(m) => cols.iter().map(|c| m.get(&c.name)).collect(),
            serde_json::Value::Array(a) if a.len() == cols.len() => a.iter().map(Some).collect(),
            _ => {
                let message = format!(
                    "expected an object with keys {} or an array of {} values",
                    self.schema.schema(),
                    cols.len()
                );
                return Err(self.bad(line_no, 0, message));
            }
        };
        let mut row = Row::new();
        for (k, (col, v)) in cols.iter().zip(fields).enumerate() {
            if let Some(len) =
                v.and_then(serde_json::Value::as_str).map(str::len).filter(|n| *n > self.limits.field_bytes)
            {
                return Err(self.bad(line_no, k + 1, self.too_long(len)));
            }
            let Some(x) = v.and_then(|v| from_json(v, col.ty)) else {
                let ty = match col.ty {
                    Type::Int => "an int",
                    Type::Float => "a float",
                    Type::String => "a string",
                    Type::Bool => "a bool",
                };
                return Err(self.bad(line_no, k + 1, format!("`{}` needs {ty} value", col.name)));
            };
            row.push(x);
        }
        Ok(row)
    }

    /// CSV: a first line equal to the column names is a header.
    fn csv(&mut self, text: &str) -> Result<(), String> {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
        for (i, record) in reader.records().enumerate() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map_or(i as u64 + 1, |p| p.line());
                    let bad = self.bad(line, 0, format!("malformed CSV: {e}"));
                    self.reject(bad)?;
                    continue;
                }
            };
            let line = record.position().map_or(i as u64 + 1, |p| p.line());
            let cols = &self.schema.columns;
            if i == 0 && record.iter().map(str::trim).eq(cols.iter().map(|c| c.name.as_str())) {
                continue;
            }
            match self.csv_row(line, &record) {
                Ok(row) => self.out.rows.push(row),
                Err(bad) => self.reject(bad)?,
            }
        }
        Ok(())
    }

    fn csv_row(&self, line: u64, record: &csv::StringRecord) -> Result<Row, BadRow> {
        let (schema, cols) = (self.schema, &self.schema.columns);
        if record.len() != cols.len() {
            let message =
                format!("{} fields, but `{}{}` has {} columns", record.len(), schema.name, schema.schema(), cols.len());
            return Err(self.bad(line, 0, message));
        }
        let mut row = Row::new();
        for (k, (field, col)) in record.iter().zip(cols).enumerate() {
            if field.len() > self.limits.field_bytes {
                return Err(self.bad(line, k + 1, self.too_long(field.len())));
            }
            match parse(field, col.ty) {
                Ok(v) => row.push(v),
                Err(why) => return Err(self.bad(line, k + 1, format!("column `{}`: {why}", col.name))),
            }
        }
        Ok(row)
    }
}
