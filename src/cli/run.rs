//! `bloomc run FILE`: compile, then run the program's node on timely/differential dataflow
//! until it is quiescent; print each output's facts (or write them to files) and a summary.

use super::common::{emit, load, report};
use super::ProgramArgs;
use bloomc_compiler::ir::{FeedSource, Program};
use bloomc_grammar::ast::CollectionKind;
use bloomc_runtime::run::{run, RunOptions, RunResult};
use bloomc_runtime::value::{show, Row};
use std::collections::BTreeSet;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Run {
    #[command(flatten)]
    pub(crate) program: ProgramArgs,
    /// Timely worker threads for the node, 1 to 1024 (results are identical for any count).
    #[arg(long, short = 'w', default_value_t = 1, value_parser = super::parse_workers)]
    pub(crate) workers: usize,
    /// Stop after this many ticks even if the node has not become quiescent.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) max_ticks: u64,
    /// Print every output's contents at every tick where they changed, not only the facts.
    #[arg(long)]
    pub(crate) per_tick: bool,
    /// Feed an input interface from a CSV or JSON-lines file (`-` for standard input):
    /// `--input click=clicks.csv`. Replaces the program's feeds of that input.
    #[arg(long = "input", value_name = "INPUT=PATH", value_parser = super::parse_set)]
    pub(crate) inputs: Vec<(String, String)>,
    /// Rows of a file input per tick (1 to 1,000,000).
    #[arg(long, default_value_t = 1000, value_parser = super::parse_batch)]
    pub(crate) batch: usize,
    #[command(flatten)]
    pub(crate) limits: super::InputLimits,
    /// Skip malformed input rows (and report how many) instead of stopping at the first.
    #[arg(long)]
    pub(crate) skip_bad_rows: bool,
    /// Write an output's facts to a CSV file instead of standard output: `--output response=out.csv`.
    #[arg(long = "output", value_name = "OUTPUT=PATH", value_parser = super::parse_set)]
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
    #[arg(long, value_name = "QUESTION=ANSWER", value_parser = super::parse_set)]
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
    #[arg(long, value_name = "MS", value_parser = super::parse_link_delay)]
    pub(crate) link_delay_ms: Option<u64>,
    /// Across processes, the ordering service of sequenced replicated groups: `embedded`
    /// (the coordinator; the default) or `zookeeper://HOST:PORT` (Apache ZooKeeper). Also
    /// `order_service` in the cluster file.
    #[arg(long, value_name = "SERVICE", value_parser = super::parse_order_service)]
    pub(crate) order_service: Option<super::OrderServiceArg>,
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

/// What `read_inputs` needs of the command line.
pub(crate) struct Inputs<'a> {
    pub(crate) program: &'a ProgramArgs,
    pub(crate) inputs: &'a [(String, String)],
    pub(crate) batch: usize,
    pub(crate) skip_bad_rows: bool,
    pub(crate) limits: super::InputLimits,
}

impl Run {
    fn inputs(&self) -> Inputs<'_> {
        Inputs {
            program: &self.program,
            inputs: &self.inputs,
            batch: self.batch,
            skip_bad_rows: self.skip_bad_rows,
            limits: self.limits,
        }
    }
}

/// Reads the file feeds of the program and the `--input` files; returns them and the number
/// of bad rows skipped.
pub(crate) fn read_inputs(
    run: &Inputs<'_>,
    p: &Program,
) -> Result<(Vec<(bloomc_compiler::ir::CollectionId, Vec<Row>, usize)>, usize), String> {
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

impl Run {
    pub fn run(self) -> Result<ExitCode, String> {
        let c = load(&self.program)?;
        let (errors, _) = report(&c, self.program.text_format()?, false);
        if errors > 0 {
            return Ok(ExitCode::from(1));
        }
        let Some(p) = &c.program else { return Ok(ExitCode::from(1)) };
        if self.workers == 0 {
            return Err("`--workers` must be at least 1".to_string());
        }
        if super::network::is_network(p) {
            // Options of a one-node run that a network does not take yet are refused, not ignored.
            let unsupported = [
                (self.workers > 1, "--workers above 1"),
                (!self.inputs.is_empty(), "--input"),
                (!self.outputs.is_empty(), "--output"),
                (!self.cluster.is_empty(), "timely cluster flags"),
            ];
            if let Some((_, what)) = unsupported.iter().find(|(on, _)| *on) {
                return Err(format!(
                    "{what}: not supported when the system has several nodes (each node runs one worker; inputs come from the system's feeds)"
                ));
            }
            let (files, skipped) = read_inputs(&self.inputs(), p)?;
            let digest = super::cluster::program_digest(&c, self.batch, self.skip_bad_rows, self.coordination);
            return super::network::run_network(&self, p, c.analysis.as_ref(), &files, skipped, digest);
        }
        if self.latency.is_some() {
            return Err("`--latency` measures answers between the nodes of a network; this program runs on one node"
                .to_string());
        }
        if self.processes || self.cluster_file.is_some() || self.link_delay_ms.is_some() || self.order_service.is_some()
        {
            return Err(
                "`--processes`, `--cluster`, `--link-delay-ms` and `--order-service` run a network's nodes as processes; this program runs on one node (span it with timely's flags after `--`)".to_string()
            );
        }
        if !matches!(self.coordination, CoordinationArg::None | CoordinationArg::Auto) {
            return Err(
                "`--coordination` applies to networks (several nodes); this program runs on one node".to_string()
            );
        }
        if p.system.as_ref().is_some_and(|s| !s.coordination.is_empty()) {
            return Err(
                "`order`, `punctuate` and `hold` coordinate the nodes of a network; this program runs on one node"
                    .to_string(),
            );
        }
        let (files, skipped) = read_inputs(&self.inputs(), p)?;
        let mut plan = bloomc_runtime::plan::plan(p, &files)?;
        // `--input` replaces the program's generated feeds of the same input.
        let overridden: BTreeSet<_> = files.iter().map(|(c, _, _)| *c).collect();
        plan.feeds.retain(|f| {
            matches!(f.source, bloomc_runtime::plan::Source::Rows { .. } | bloomc_runtime::plan::Source::Columns { .. })
                || !overridden.contains(&f.input)
        });
        bloomc_runtime::coordination::seal_feeds(p, std::slice::from_mut(&mut plan), c.analysis.as_ref());
        for (name, _) in &self.outputs {
            if !plan.collections(p, CollectionKind::Output).iter().any(|&o| p.collection_name(o) == name) {
                return Err(format!("`--output {name}`: node `{}` has no output interface `{name}`", plan.node_name));
            }
        }
        // Progress only on a terminal: logs and pipes get the summary line alone.
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = indicatif::ProgressBar::new(plan.feed_ticks().max(1));
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} tick {pos}/{len} {wide_bar} {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        let progress: Option<bloomc_runtime::run::Progress> = bar.clone().map(|bar| {
            std::sync::Arc::new(move |done: u64, feeds: u64| {
                bar.set_length(feeds.max(done));
                bar.set_position(done);
            }) as bloomc_runtime::run::Progress
        });
        let options =
            RunOptions { workers: self.workers, max_ticks: self.max_ticks, cluster: self.cluster.clone(), progress };
        let result = run(p, &plan, &options)?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let names: Vec<String> = if result.gathered { result.changes.keys().cloned().collect() } else { Vec::new() };
        for name in &names {
            if let Some((_, path)) = self.outputs.iter().find(|(n, _)| n == name) {
                let mut w = csv::Writer::from_path(path).map_err(|e| format!("cannot write `{path}`: {e}"))?;
                for row in result.all_facts(name) {
                    w.write_record(row.iter().map(ToString::to_string))
                        .map_err(|e| format!("cannot write `{path}`: {e}"))?;
                }
                w.flush().map_err(|e| format!("cannot write `{path}`: {e}"))?;
                continue;
            }
            print_output(name, &result, name, self.per_tick);
        }
        if let (Some(path), true) = (&self.summary_json, result.gathered) {
            let outputs =
                plan.collections(p, CollectionKind::Output).iter().map(|&o| p.collection_name(o).to_string()).collect();
            let node = super::summary::NodeSummary {
                name: &plan.node_name,
                result: &result,
                messages_in: 0,
                messages_out: 0,
                outputs,
                frames_from: None,
            };
            super::summary::write(path, p, "none", &[node], result.elapsed_s, result.quiescent, Default::default())?;
        }
        let rate = if result.elapsed_s > 0.0 { result.facts_in as f64 / result.elapsed_s } else { 0.0 };
        eprintln!(
            "{}: {} ticks{}, {} facts in, {:.3} s, {:.0} facts/s, peak memory {}, {} evaluation errors, {} generator errors, {} bad input rows skipped",
            plan.node_name,
            result.ticks,
            if result.quiescent { " (quiescent)" } else { " (stopped at --max-ticks)" },
            result.facts_in,
            result.elapsed_s,
            rate,
            peak_memory(),
            result.eval_errors,
            result.feed_errors,
            skipped
        );
        super::summary::report_rejected(&plan.node_name, &result);
        Ok(if result.quiescent { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }
}

/// Prints one output's facts, each line named `label`: every fact emitted during the run
/// (outputs are per-tick events), or with `per_tick` the contents at each tick they changed.
pub(crate) fn print_output(label: &str, result: &RunResult, name: &str, per_tick: bool) {
    if per_tick {
        for (t, rows) in result.by_tick(name) {
            emit(&format!("-- {label} at tick {t}: {} facts\n", rows.len()));
            for row in &rows {
                emit(&format!("{label}({})\n", show(row)));
            }
        }
    } else {
        let rows = result.all_facts(name);
        emit(&format!("-- {label}: {} facts emitted\n", rows.len()));
        for row in rows {
            emit(&format!("{label}({})\n", show(&row)));
        }
    }
}

/// The process's peak resident memory, from `/proc/self/status` (Linux); "unknown" elsewhere.
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}
