//! The command line's arguments (clap): what several subcommands take, and the value
//! parsers that check them.

use clap::ValueEnum;

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

#[derive(clap::Args)]
pub struct Run {
    #[command(flatten)]
    pub(crate) program: ProgramArgs,
    /// Timely worker threads for the node, 1 to 1024 (results are identical for any count).
    #[arg(long, short = 'w', default_value_t = 1, value_parser = parse_workers)]
    pub(crate) workers: usize,
    /// Stop after this many ticks even if the node has not become quiescent.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) max_ticks: u64,
    /// Print every output's contents at every tick where they changed, not only the facts.
    #[arg(long)]
    pub(crate) per_tick: bool,
    /// How many facts of each output to print: `all`, or a number. Default: all on one
    /// node; in a network the first 5 of each node's output, with the count of the rest
    /// (`--output` writes every fact to a file either way).
    #[arg(long, value_name = "all|N", value_parser = parse_show)]
    pub(crate) show: Option<Show>,
    /// Feed an input interface from a CSV or JSON-lines file (`-` for standard input):
    /// `--input click=clicks.csv`. Replaces the program's feeds of that input.
    #[arg(long = "input", value_name = "INPUT=PATH", value_parser = parse_set)]
    pub(crate) inputs: Vec<(String, String)>,
    /// Rows of a file input per tick (1 to 1,000,000).
    #[arg(long, default_value_t = 1000, value_parser = parse_batch)]
    pub(crate) batch: usize,
    #[command(flatten)]
    pub(crate) limits: InputLimits,
    /// Skip malformed input rows (and report how many) instead of stopping at the first.
    #[arg(long)]
    pub(crate) skip_bad_rows: bool,
    /// Write an output's facts to a CSV file instead of standard output: `--output
    /// response=out.csv`; in a network, name the node too: `--output analyst.result=out.csv`.
    #[arg(long = "output", value_name = "OUTPUT=PATH", value_parser = parse_set)]
    pub(crate) outputs: Vec<(String, String)>,
    /// Coordination between the nodes of a network, which the rewriter inserts into the
    /// program before it runs (`bloomc rewrite` prints the result): `auto` (what the analysis
    /// chose: seals where it chose a declared seal, order at replicated groups where it chose
    /// order); `none` (the program runs as written, with only its own `order`, `punctuate`
    /// and `hold` items); `order` (a sequencer in front of every replicated group, so every
    /// replica processes the same batches in the same order); or `seal` (every seal enforced:
    /// producers punctuate, consumers hold each seal key's facts until all its producers have
    /// sealed it).
    #[arg(long, value_enum, default_value_t = CoordinationArg::Auto)]
    pub(crate) coordination: CoordinationArg,
    /// Measure the latency of answers in a network: `--latency request=result` pairs each
    /// fact a node's output `request` emits with the first fact its output `result` emits
    /// with the same first column (a question id), and reports the time between them.
    #[arg(long, value_name = "QUESTION=ANSWER", value_parser = parse_set)]
    pub(crate) latency: Option<(String, String)>,
    /// Write the run report as JSON to this file (see `src/cli/summary.rs` for the fields).
    #[arg(long, value_name = "PATH")]
    pub(crate) summary_json: Option<String>,
    /// Timely's cluster flags after `--`, to span the node over processes:
    /// `bloomc run prog.bl -- -n 2 -p 0 -h hosts.txt` (process 0 prints the outputs).
    #[arg(last = true, value_name = "TIMELY_FLAGS")]
    pub(crate) cluster: Vec<String>,
    /// Run a network with one OS process per node instance (`bloomc node`), on loopback,
    /// supervised by this process, the coordinator (nodes send facts straight to each other).
    #[arg(long)]
    pub(crate) processes: bool,
    /// Be the coordinator of the cluster this file describes (see `bloomc node`): with
    /// `--processes`, start the nodes here; without, wait for them to connect.
    #[arg(long = "cluster", value_name = "CLUSTER.toml")]
    pub(crate) cluster_file: Option<std::path::PathBuf>,
    /// With `--processes`: every node delays each data frame it sends by this many
    /// milliseconds, and each request to the ordering service by twice as many (0 to
    /// 10,000), a model of a datacenter network for experiments.
    #[arg(long, value_name = "MS", value_parser = parse_link_delay)]
    pub(crate) link_delay_ms: Option<u64>,
    /// Across processes, the ordering service of sequenced replicated groups: `embedded`
    /// (`bloomc sequencer`, which the coordinator starts; the default) or `zookeeper://HOST:PORT` (Apache ZooKeeper). Also
    /// `order_service` in the cluster file.
    #[arg(long, value_name = "SERVICE", value_parser = parse_order_service)]
    pub(crate) order_service: Option<OrderServiceArg>,
    /// Across processes: a node whose process dies before the run is over comes back. With
    /// `--processes` the launcher starts it again (at most 10 times a node), each node keeping
    /// a journal in a private directory it makes, and the node recovers by replay; with only
    /// `--cluster`, the coordinator admits a node's new process once the old one is gone
    /// (start it with the same `bloomc node --journal DIR`).
    #[arg(long)]
    pub(crate) restart: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CoordinationArg {
    Auto,
    None,
    Order,
    Seal,
}
