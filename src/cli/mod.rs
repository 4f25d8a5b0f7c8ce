//! Command-line definitions (clap derive); each subcommand lives in its own file.

mod analyze;
mod check;
mod cluster;
mod common;
mod dump;
mod explore;
mod graph;
mod launcher;
mod network;
mod rewrite;
mod run;
mod sequencer;
mod summary;

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "bloomc", version, about = "Compiler for a Bloom-style language with Blazes coordination analysis")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    /// Graphviz (`analyze` only).
    Dot,
}

#[derive(clap::Args)]
pub struct ProgramArgs {
    /// The program to compile (a `.bl` file).
    pub file: std::path::PathBuf,
    /// Override a parameter: `--set query=POOR`. May be repeated.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    /// Seal an input stream for the analysis: `--seal report.click=campaign` (or just the
    /// interface name, `--seal click=campaign`). Columns are separated by commas.
    #[arg(long = "seal", value_name = "STREAM=COLS", value_parser = parse_seal)]
    pub seal: Vec<(String, Vec<String>)>,
    /// `--allow nondeterminism` silences the analysis's nondeterminism warnings.
    #[arg(long, value_enum)]
    pub allow: Vec<Allow>,
    /// How to print results and diagnostics.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Allow {
    Nondeterminism,
}

impl ProgramArgs {
    pub fn options(&self) -> bloomc_compiler::Options {
        bloomc_compiler::Options {
            overrides: self.set.clone(),
            seals: self.seal.clone(),
            allow_nondeterminism: self.allow.contains(&Allow::Nondeterminism),
        }
    }

    /// `--format dot` belongs to `analyze`; other subcommands refuse it.
    pub fn text_format(&self) -> Result<Format, String> {
        match self.format {
            Format::Dot => Err("`--format dot` is only for `bloomc analyze`".to_string()),
            f => Ok(f),
        }
    }
}

fn parse_seal(s: &str) -> Result<(String, Vec<String>), String> {
    match s.split_once('=') {
        Some((stream, cols)) if !stream.trim().is_empty() && cols.split(',').all(|c| !c.trim().is_empty()) => {
            Ok((stream.trim().to_string(), cols.split(',').map(|c| c.trim().to_string()).collect()))
        }
        _ => Err(format!("expected STREAM=COL[,COL..], found `{s}`")),
    }
}

/// The most timely worker threads `--workers` accepts.
pub(crate) const MAX_WORKERS: usize = 1024;

/// `--workers`: 1 to [`MAX_WORKERS`].
pub(crate) fn parse_workers(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of worker threads from 1 to {MAX_WORKERS}, found `{s}` (the results are the same for any count)"
        )),
    }
}

/// `--batch`: 1 to [`MAX_GENERATOR_BATCH`](bloomc_compiler::ir::MAX_GENERATOR_BATCH) rows
/// per tick, the bound a generator's `batch` has (E0121): a tick is built whole before it is
/// run, so a larger batch would only make one tick hold more of the file at once.
pub(crate) fn parse_batch(s: &str) -> Result<usize, String> {
    let max = bloomc_compiler::ir::MAX_GENERATOR_BATCH;
    match s.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => usize::try_from(n).map_err(|e| e.to_string()),
        _ => Err(format!(
            "expected a number of rows per tick from 1 to {max} (the bound a generator's batch has), found `{s}`"
        )),
    }
}

/// `--link-delay-ms`: 0 to 10,000 milliseconds.
pub(crate) fn parse_link_delay(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n <= 10_000 => Ok(n),
        _ => Err(format!("expected a number of milliseconds from 0 to 10000, found `{s}`")),
    }
}

/// How many facts of each output `bloomc run` prints (`--show`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    All,
    First(usize),
}

impl Show {
    /// The most facts printed per output: `None` for all.
    pub fn limit(self) -> Option<usize> {
        match self {
            Show::All => None,
            Show::First(n) => Some(n),
        }
    }
}

/// How many facts of each output a network run prints unless `--show` says.
pub const NETWORK_SHOW: usize = 5;

/// `--show`: `all` or a number of facts.
pub(crate) fn parse_show(s: &str) -> Result<Show, String> {
    match s {
        "all" => Ok(Show::All),
        n => n.parse().map(Show::First).map_err(|_| format!("expected `all` or a number of facts, found `{s}`")),
    }
}

/// An ordering service, as `--order-service` or a cluster file's `order_service` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderServiceArg {
    Embedded,
    /// ZooKeeper's `host:port`.
    ZooKeeper(String),
}

/// `embedded` or `zookeeper://HOST:PORT`.
pub(crate) fn parse_order_service(s: &str) -> Result<OrderServiceArg, String> {
    if s == "embedded" {
        return Ok(OrderServiceArg::Embedded);
    }
    match s.strip_prefix("zookeeper://") {
        Some(addr) if addr.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) => {
            Ok(OrderServiceArg::ZooKeeper(addr.to_string()))
        }
        _ => Err(format!("expected `embedded` or `zookeeper://HOST:PORT`, found `{s}`")),
    }
}

/// How much an input file and one of its fields may hold.
#[derive(clap::Args, Clone, Copy)]
pub struct InputLimits {
    /// The most bytes an input file (`--input`, or a `feed .. from file`) may hold; a larger
    /// one is an error naming it.
    #[arg(long, value_name = "N", default_value_t = bloomc_runtime::input::DEFAULT_LIMITS.file_bytes)]
    pub max_input_bytes: u64,
    /// The most bytes one field of an input may hold; a longer one is a bad row, named by
    /// file, line and column.
    #[arg(long, value_name = "N", default_value_t = bloomc_runtime::input::DEFAULT_LIMITS.field_bytes)]
    pub max_field_bytes: usize,
}

impl InputLimits {
    pub fn limits(self) -> bloomc_runtime::input::Limits {
        bloomc_runtime::input::Limits { file_bytes: self.max_input_bytes, field_bytes: self.max_field_bytes }
    }
}

pub(crate) fn parse_set(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, found `{s}`")),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Parse, resolve, type-check and stratify a program; report every problem.
    Check(check::Check),
    /// Print one stage of the compiler: the syntax tree or the IR.
    Dump(dump::Dump),
    /// Blazes coordination analysis of a program (`.bl`) or a grey-box file (`.yml`).
    Analyze(analyze::Analyze),
    /// Render the labelled component graph as SVG.
    Graph(graph::Graph),
    /// Print the program with its coordination made explicit: the `order`, `punctuate` and
    /// `hold` items `--coordination` inserts (what `run` runs).
    Rewrite(rewrite::Rewrite),
    /// Run a program on timely/differential dataflow and print its outputs: one node, or a
    /// network of nodes (in this process, or with `--processes` one process per node).
    Run(run::Run),
    /// Run the program under many schedules in a deterministic simulator and check every
    /// output's label against what the schedules did (exit 3 when a label does not hold).
    Explore(explore::Explore),
    /// Run one node of a network in this process, joining the coordinator a cluster file names.
    Node(cluster::Node),
    /// Serve the embedded ordering service of a run across processes (the coordinator starts
    /// it when the run orders batches; not meant to be started by hand).
    Sequencer(sequencer::Sequencer),
}

impl Cli {
    pub fn run(self) -> Result<ExitCode, String> {
        match self.command {
            Command::Check(c) => c.run(),
            Command::Dump(d) => d.run(),
            Command::Analyze(a) => a.run(),
            Command::Graph(g) => g.run(),
            Command::Rewrite(r) => r.run(),
            Command::Run(r) => r.run(),
            Command::Explore(e) => e.run(),
            Command::Node(n) => n.run(),
            Command::Sequencer(s) => s.run(),
        }
    }
}
