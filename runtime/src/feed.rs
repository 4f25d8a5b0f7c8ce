//! A node's feeds: where an input interface's facts come from (a seeded generator, or rows
//! read from a file, kept by column), when each tick's batch is due, and which rows of a
//! batch each worker produces.

use crate::eval::{eval, mix, Ctx};
use crate::value::Row;
use bloomc_compiler::ir::{CollectionId, Program};

/// A source of input facts for one input interface.
#[derive(Debug, Clone)]
pub enum Source {
    /// A seeded generator: `rows` rows, `batch` per tick, fields evaluated per row; with a
    /// `rate`, at most that many rows per second.
    Generate { rows: u64, batch: u64, seed: u64, rate: Option<u64>, fields: Vec<bloomc_compiler::ir::Expr> },
    /// Rows already read (from a file), split into ticks of `batch` rows. Shared, so a plan
    /// is cloned for every worker and node without copying them.
    Rows { rows: std::sync::Arc<Vec<Row>>, batch: usize },
    /// Rows already read, kept by column (`columns.rs`), split into ticks of `batch` rows:
    /// the compact form of a file's rows, and of rows a program hands over in columns.
    Columns { columns: std::sync::Arc<crate::columns::Columns>, batch: usize },
}

#[derive(Debug, Clone)]
pub struct Feed {
    pub input: CollectionId,
    pub source: Source,
}

impl Feed {
    /// When batch `t` is due, counted from the node's start: `None` when the feed has no
    /// rate (every batch is due at once).
    pub fn due(&self, t: u64) -> Option<std::time::Duration> {
        match &self.source {
            Source::Generate { batch, rate: Some(rate), .. } => {
                Some(std::time::Duration::from_secs_f64(t as f64 * *batch as f64 / (*rate).max(1) as f64))
            }
            _ => None,
        }
    }

    /// How many ticks this feed needs.
    pub fn ticks(&self) -> u64 {
        match &self.source {
            Source::Generate { rows, batch, .. } => rows.div_ceil((*batch).max(1)),
            Source::Rows { rows, batch } => (rows.len() as u64).div_ceil((*batch).max(1) as u64),
            Source::Columns { columns, batch } => (columns.len() as u64).div_ceil((*batch).max(1) as u64),
        }
    }

    /// The rows of tick `t` that worker `worker` of `workers` produces (rows are dealt out
    /// round-robin by row number, so the union over workers is the same for any count).
    pub fn batch(&self, t: u64, instance: u32, worker: usize, workers: usize, errors: &mut u64) -> Vec<Row> {
        let mut out = Vec::new();
        self.visit(t, instance, (worker, workers), errors, &mut |row| out.push(row.clone()));
        out
    }

    /// Calls `f` on each row of batch `t` that belongs to `worker` of `workers` (the rows
    /// whose number modulo `workers` is `worker`), without copying rows read from a file.
    /// Returns how many rows it visited; a generated row whose field fails to evaluate is
    /// counted in `errors` instead.
    pub fn visit(
        &self,
        t: u64,
        instance: u32,
        (worker, workers): (usize, usize),
        errors: &mut u64,
        f: &mut dyn FnMut(&Row),
    ) -> u64 {
        let mut visited = 0;
        match &self.source {
            Source::Generate { rows, batch, seed, fields, .. } => {
                let start = t.saturating_mul(*batch);
                let end = start.saturating_add(*batch).min(*rows);
                for row in start..end {
                    if (row % workers as u64) as usize != worker {
                        continue;
                    }
                    let mut values = Row::new();
                    let mut failed = false;
                    for (i, f) in fields.iter().enumerate() {
                        let ctx = Ctx { instance, row, seed: mix(*seed ^ mix(i as u64)) };
                        match eval(f, &[] as &[&Row], &ctx, &[]) {
                            Ok(v) => values.push(v),
                            Err(_) => failed = true,
                        }
                    }
                    if failed {
                        *errors += 1;
                    } else {
                        f(&values);
                        visited += 1;
                    }
                }
            }
            Source::Rows { rows, batch } => {
                let start = (t as usize).saturating_mul(*batch);
                for (i, r) in rows.iter().enumerate().skip(start).take(*batch) {
                    if i % workers == worker {
                        f(r);
                        visited += 1;
                    }
                }
            }
            Source::Columns { columns, batch } => {
                let start = (t as usize).saturating_mul(*batch);
                for i in start..start.saturating_add(*batch).min(columns.len()) {
                    if i % workers == worker {
                        f(&columns.row(i));
                        visited += 1;
                    }
                }
            }
        }
        visited
    }
}

/// The feed of rows read from a file: kept by column (`columns.rs`), or as rows when one
/// does not fit the input's schema (which `input::read` rules out).
pub(crate) fn file_source(p: &Program, input: CollectionId, rows: &[Row], batch: usize) -> Source {
    let types: Vec<bloomc_compiler::ir::Type> =
        p.collection(input).map(|c| c.columns.iter().map(|col| col.ty).collect()).unwrap_or_default();
    match crate::columns::Columns::from_rows(&types, rows) {
        Some(columns) => Source::Columns { columns: std::sync::Arc::new(columns), batch },
        None => Source::Rows { rows: std::sync::Arc::new(rows.to_vec()), batch },
    }
}
