//! What `bloomc run` reads and prints: the file feeds and `--input` files, each output's
//! facts on standard output or in a CSV file.

use super::args::ProgramArgs;
use super::common::emit;
use bloomc_compiler::ir::{FeedSource, Program};
use bloomc_grammar::ast::CollectionKind;
use bloomc_runtime::run::RunResult;
use bloomc_runtime::value::{show, Row};
use std::collections::BTreeSet;

/// What `read_inputs` needs of the command line.
pub(crate) struct Inputs<'a> {
    pub(crate) program: &'a ProgramArgs,
    pub(crate) inputs: &'a [(String, String)],
    pub(crate) batch: usize,
    pub(crate) skip_bad_rows: bool,
    pub(crate) limits: super::args::InputLimits,
}

/// The rows read for each input fed from a file, with the rows per tick.
pub(crate) type Files = Vec<(bloomc_compiler::ir::CollectionId, Vec<Row>, usize)>;

/// Reads the file feeds of the program and the `--input` files; returns them and the number
/// of bad rows skipped.
pub(crate) fn read_inputs(run: &Inputs<'_>, p: &Program) -> Result<(Files, usize), String> {
    let base = run.program.file.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let mut wanted: Vec<(bloomc_compiler::ir::CollectionId, String)> = Vec::new();
    if let Some(s) = &p.system {
        for f in &s.feeds {
            if let FeedSource::File { path } = &f.source {
                let full = if path == "-" { path.clone() } else { base.join(path).display().to_string() };
                wanted.push((f.to.collection, full));
            }
        }
    }
    for (name, path) in run.inputs {
        // `--input` names an input of the node's own module.
        let module = bloomc_runtime::plan::plan_without_files(p)?.module;
        let node_inputs: Vec<&bloomc_compiler::ir::Collection> =
            p.collections.iter().filter(|c| c.kind == CollectionKind::Input && c.module == module).collect();
        let Some(c) = node_inputs.iter().find(|c| c.name == *name) else {
            let names: Vec<&str> = node_inputs.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "`--input {name}`: no input interface `{name}` (the inputs are: {})",
                names.join(", ")
            ));
        };
        wanted.retain(|(x, _)| *x != c.id);
        wanted.push((c.id, path.clone()));
    }
    // Standard input can be read once: a second `-` would silently get nothing.
    let stdin: Vec<&str> = wanted
        .iter()
        .filter(|(_, path)| path == "-")
        .filter_map(|(c, _)| p.collection(*c).map(|x| x.name.as_str()))
        .collect();
    if let [first, second, ..] = stdin.as_slice() {
        return Err(format!(
            "inputs `{first}` and `{second}` both read standard input (`-`), which can be read once: give all but one of them a file"
        ));
    }
    let mut files = Vec::new();
    let mut skipped = 0;
    for (c, path) in wanted {
        let schema = p.collection(c).ok_or("unknown input")?;
        let read = bloomc_runtime::input::read(&path, schema, run.skip_bad_rows, run.limits.limits())?;
        for bad in &read.bad {
            eprintln!("skipped: {bad}");
        }
        skipped += read.bad.len();
        files.push((c, read.rows, run.batch));
    }
    Ok((files, skipped))
}

/// Writes the facts output `name` of `result` emitted to the CSV file `path`.
pub(crate) fn write_csv(path: &str, result: &RunResult, name: &str) -> Result<(), String> {
    let mut w = csv::Writer::from_path(path).map_err(|e| format!("cannot write `{path}`: {e}"))?;
    for row in result.all_facts(name) {
        w.write_record(row.iter().map(ToString::to_string)).map_err(|e| format!("cannot write `{path}`: {e}"))?;
    }
    w.flush().map_err(|e| format!("cannot write `{path}`: {e}"))
}

/// Prints output `name` of `result` as `label`: every fact emitted, or with `per_tick` the
/// contents at each tick they changed; at most `limit` facts of each block, then how many
/// were left out.
pub(crate) fn print_output(label: &str, result: &RunResult, name: &str, per_tick: bool, limit: Option<usize>) {
    let block = |rows: &BTreeSet<Row>| {
        let shown = limit.unwrap_or(usize::MAX).min(rows.len());
        for row in rows.iter().take(shown) {
            emit(&format!("{label}({})\n", show(row)));
        }
        if shown < rows.len() {
            emit(&format!(
                "... and {} more facts of {label} (`--show all` prints them, `--output` writes them to a file)\n",
                rows.len() - shown
            ));
        }
    };
    if per_tick {
        for (t, rows) in result.by_tick(name) {
            emit(&format!("-- {label} at tick {t}: {} facts\n", rows.len()));
            block(&rows);
        }
    } else {
        let rows = result.all_facts(name);
        emit(&format!("-- {label}: {} facts emitted\n", rows.len()));
        block(&rows);
    }
}
