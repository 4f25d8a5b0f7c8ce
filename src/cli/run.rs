//! `bloomc run FILE`: compile, then run the program's node on timely/differential dataflow
//! until it is quiescent; print each output's facts (or write them to files) and a summary.

use super::args::{CoordinationArg, Run};
use super::common::{load, report};
use super::io::{print_output, read_inputs, write_csv, Inputs};
use super::settings::{NetworkRun, NodeCommand, Shown};
use bloomc_compiler::ir::Program;
use bloomc_grammar::ast::CollectionKind;
use bloomc_runtime::plan::NodePlan;
use bloomc_runtime::run::{run, RunOptions, RunResult};
use std::collections::BTreeSet;
use std::process::ExitCode;

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
        if bloomc_compiler::rewrite::is_network(p) {
            return self.network(&c, p);
        }
        self.refuse_network_options(p)?;
        let (plan, skipped) = self.plan_node(&c, p)?;
        let result = self.execute(p, &plan)?;
        self.print_node(p, &plan, &result, skipped)
    }

    /// A network: the options of a one-node run that it does not take are refused, not
    /// ignored; then `network.rs` runs it.
    fn network(&self, c: &bloomc_compiler::Compilation, p: &Program) -> Result<ExitCode, String> {
        let unsupported = [
            (self.workers > 1, "--workers above 1"),
            (!self.inputs.is_empty(), "--input"),
            (!self.cluster.is_empty(), "timely cluster flags"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(on, _)| *on) {
            return Err(format!(
                "{what}: not supported when the system has several nodes (each node runs one worker; inputs come from the system's feeds)"
            ));
        }
        let (files, skipped) = read_inputs(&self.inputs(), p)?;
        let digest = super::clusterfile::program_digest(c, self.batch, self.skip_bad_rows, self.coordination);
        super::network::run_network(&self.network_settings(), p, c.analysis.as_ref(), &files, skipped, digest)
    }

    /// The settings of a network run, from the command line.
    fn network_settings(&self) -> NetworkRun {
        let mut args: Vec<String> = Vec::new();
        for (k, v) in &self.program.set {
            args.extend(["--set".to_string(), format!("{k}={v}")]);
        }
        for (stream, cols) in &self.program.seal {
            args.extend(["--seal".to_string(), format!("{stream}={}", cols.join(","))]);
        }
        if self.program.allow.contains(&super::args::Allow::Nondeterminism) {
            args.extend(["--allow".to_string(), "nondeterminism".to_string()]);
        }
        args.extend(["--batch".to_string(), self.batch.to_string()]);
        args.extend([
            "--coordination".to_string(),
            super::coordination::strategy(self.coordination).as_str().to_string(),
        ]);
        args.extend(["--max-input-bytes".to_string(), self.limits.max_input_bytes.to_string()]);
        args.extend(["--max-field-bytes".to_string(), self.limits.max_field_bytes.to_string()]);
        if self.skip_bad_rows {
            args.push("--skip-bad-rows".to_string());
        }
        if let Some(ms) = self.link_delay_ms {
            args.extend(["--link-delay-ms".to_string(), ms.to_string()]);
        }
        NetworkRun {
            coordination: self.coordination,
            max_ticks: self.max_ticks,
            processes: self.processes,
            cluster_file: self.cluster_file.clone(),
            order_service: self.order_service.clone(),
            restart: self.restart,
            link_delay_ms: self.link_delay_ms,
            node: NodeCommand { file: self.program.file.clone(), args },
            shown: Shown {
                outputs: self.outputs.clone(),
                limit: self.show.unwrap_or(super::args::Show::First(super::args::NETWORK_SHOW)).limit(),
                per_tick: self.per_tick,
                latency: self.latency.clone(),
                summary_json: self.summary_json.clone(),
            },
        }
    }

    /// One node: the options of a network are refused, not ignored.
    fn refuse_network_options(&self, p: &Program) -> Result<(), String> {
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
        Ok(())
    }

    /// The node's plan, its inputs read (`--input` replacing the program's generated feeds
    /// of the same input), with the seals the analysis assumed on its feeds; and the number
    /// of bad rows skipped.
    fn plan_node(&self, c: &bloomc_compiler::Compilation, p: &Program) -> Result<(NodePlan, usize), String> {
        let (files, skipped) = read_inputs(&self.inputs(), p)?;
        let mut plan = bloomc_runtime::plan::plan(p, &files)?;
        let overridden: BTreeSet<_> = files.iter().map(|(c, _, _)| *c).collect();
        plan.feeds.retain(|f| {
            matches!(f.source, bloomc_runtime::feed::Source::Rows { .. } | bloomc_runtime::feed::Source::Columns { .. })
                || !overridden.contains(&f.input)
        });
        bloomc_runtime::coordination::seal_feeds(p, std::slice::from_mut(&mut plan), c.analysis.as_ref());
        for (name, _) in &self.outputs {
            if !plan.collections(p, CollectionKind::Output).iter().any(|&o| p.collection_name(o) == name) {
                return Err(format!("`--output {name}`: node `{}` has no output interface `{name}`", plan.node_name));
            }
        }
        Ok((plan, skipped))
    }

    /// Runs the node, with a progress bar on a terminal (logs and pipes get the summary
    /// line alone).
    fn execute(&self, p: &Program, plan: &NodePlan) -> Result<RunResult, String> {
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
        let result = run(p, plan, &options)?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(result)
    }

    /// Prints (or writes) the node's outputs, its `--summary-json` and its summary line.
    fn print_node(&self, p: &Program, plan: &NodePlan, result: &RunResult, skipped: usize) -> Result<ExitCode, String> {
        let names: Vec<String> = if result.gathered { result.changes.keys().cloned().collect() } else { Vec::new() };
        for name in &names {
            if let Some((_, path)) = self.outputs.iter().find(|(n, _)| n == name) {
                write_csv(path, result, name)?;
                continue;
            }
            print_output(name, result, name, self.per_tick, self.show.and_then(super::args::Show::limit));
        }
        if let (Some(path), true) = (&self.summary_json, result.gathered) {
            let outputs =
                plan.collections(p, CollectionKind::Output).iter().map(|&o| p.collection_name(o).to_string()).collect();
            let node = super::summary::NodeSummary {
                name: &plan.node_name,
                result,
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
        super::summary::report_rejected(&plan.node_name, result);
        Ok(if result.quiescent { ExitCode::SUCCESS } else { ExitCode::from(1) })
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
