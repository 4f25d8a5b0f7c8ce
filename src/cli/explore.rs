//! `bloomc explore FILE`: runs the program under many schedules in a deterministic simulator
//! (`bloomc_runtime::sim`) and sets every output stream's label next to what the schedules
//! did. An Async or Seal label on a stream that emitted a wrong fact in some schedule, or
//! replicas that disagree behind their sequencer, is an analysis error: exit code 3, with
//! the counterexample printed as a trace.

use super::args::CoordinationArg;
use super::args::ProgramArgs;
use super::common::{emit, load, report};
use super::io::{read_inputs, Inputs};
use bloomc_compiler::analysis::labels::Label;
use bloomc_compiler::ir::Program;
use bloomc_runtime::sim::explore::{explore, replay, Exploration, Observed, Options, ScheduleId};
use bloomc_runtime::sim::world::{Outcome, Setup};
use bloomc_runtime::value::show;
use std::fmt::Write;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Explore {
    #[command(flatten)]
    program: ProgramArgs,
    /// Feed an input interface from a CSV or JSON-lines file: `--input click=clicks.csv`.
    #[arg(long = "input", value_name = "INPUT=PATH", value_parser = super::args::parse_set)]
    inputs: Vec<(String, String)>,
    /// Random schedules to run (and an eighth as many complete-input runs, 8 to 200).
    #[arg(long, default_value_t = 200)]
    schedules: u64,
    /// The seed the random schedules are drawn from.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Enumerate every schedule instead of drawing them, up to `--max-schedules` per family.
    #[arg(long)]
    exhaustive: bool,
    /// With `--exhaustive`: the most schedules to enumerate per family.
    #[arg(long, default_value_t = 20_000)]
    max_schedules: u64,
    /// A bound on every node's ticks in a schedule; schedules that reach it are left out
    /// and counted.
    #[arg(long, default_value_t = 64)]
    max_ticks: u64,
    /// The coordination to explore with, as `bloomc run` applies it (the labels assume
    /// `auto`, the default). Without coordination chosen, `none` is explored too.
    #[arg(long, value_enum, default_value_t = CoordinationArg::Auto)]
    coordination: CoordinationArg,
    /// Run one schedule, by the id `explore` printed, and print its trace.
    #[arg(long, value_name = "ID")]
    replay: Option<String>,
    /// Skip malformed rows of `--input` files (and report how many).
    #[arg(long)]
    skip_bad_rows: bool,
    #[command(flatten)]
    limits: super::args::InputLimits,
}

impl Explore {
    pub fn run(self) -> Result<ExitCode, String> {
        if self.schedules == 0 || self.max_schedules == 0 || self.max_ticks == 0 {
            return Err("`--schedules`, `--max-schedules` and `--max-ticks` must be at least 1".to_string());
        }
        let format = self.program.text_format()?;
        let c = load(&self.program)?;
        let (errors, _) = report(&c, format, false);
        let (Some(p), 0) = (c.program.as_ref(), errors) else {
            return Ok(ExitCode::from(1));
        };
        let inputs = Inputs {
            program: &self.program,
            inputs: &self.inputs,
            batch: 1,
            skip_bad_rows: self.skip_bad_rows,
            limits: self.limits,
        };
        let (files, _) = read_inputs(&inputs, p)?;
        let plans = match &p.system {
            Some(_) => bloomc_runtime::plan::plan_network(p, &files)?,
            None => vec![bloomc_runtime::plan::plan(p, &files)?],
        };
        let original = p;
        let (inserted, rewritten) = super::coordination::rewritten(p, c.analysis.as_ref(), self.coordination)?;
        let p = &rewritten;
        let setup = bloomc_runtime::sim::setup(p, plans.clone(), c.analysis.as_ref(), self.max_ticks)?;
        if let Some(id) = &self.replay {
            let id: ScheduleId = id.parse()?;
            let o = replay(&setup, &id, true);
            emit(&trace(&setup, &o, usize::MAX));
            return Ok(ExitCode::SUCCESS);
        }
        let options = Options {
            schedules: self.schedules,
            seed: self.seed,
            exhaustive: self.exhaustive.then_some(self.max_schedules),
        };
        let with = explore(&setup, &options);
        // Explored without what the rewriter inserted too (the program as written).
        let chose_something = !inserted.orders.is_empty() || !inserted.holds.is_empty();
        let without = if chose_something {
            // As written, with the `--seal` seals declared (they say what the input is).
            let declared = bloomc_compiler::rewrite::with_seals(original, c.analysis.as_ref());
            let bare = bloomc_runtime::sim::setup(&declared, plans, c.analysis.as_ref(), self.max_ticks)?;
            Some(explore(&bare, &options))
        } else {
            None
        };
        let labels: Vec<(String, Label)> =
            c.analysis.as_ref().map(|a| a.streams().into_iter().map(|(n, l, _)| (n, l)).collect()).unwrap_or_default();
        let (text, unsound) = summary(
            &setup,
            &with,
            without.as_ref(),
            &labels,
            &options,
            &super::coordination::describe(original, self.coordination, &inserted),
        );
        emit(&text);
        Ok(if unsound > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS })
    }
}

/// The report, and how many verdicts failed (unsound labels and replica disagreements).
fn summary(
    setup: &Setup<'_>,
    with: &Exploration,
    without: Option<&Exploration>,
    labels: &[(String, Label)],
    options: &Options,
    coordination: &str,
) -> (String, usize) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "explored {} and {} (seed {}{}), coordination {coordination}; {} left out at --max-ticks",
        common_plural(with.general as usize, "schedule"),
        common_plural(with.complete as usize, "complete-input run"),
        options.seed,
        if with.exhausted { ", exhaustive" } else { "" },
        with.truncated
    );
    let width = with.streams.iter().map(|(s, _)| s.name.len()).max().unwrap_or(6).max(6);
    let lwidth = labels.iter().map(|(_, l)| l.to_string().len()).max().unwrap_or(5).max(5);
    let _ = write!(out, "{:width$}  {:lwidth$}  {:34}", "stream", "label", "observed");
    if without.is_some() {
        let _ = write!(out, "  without coordination");
    }
    out.push('\n');
    let unsound: Vec<(String, Label, Observed)> = bloomc_runtime::sim::explore::unsound(labels, with)
        .into_iter()
        .map(|(s, l, o)| (s.name.clone(), l, o.clone()))
        .collect();
    for (i, (s, observed)) in with.streams.iter().enumerate() {
        let label = labels.iter().find(|(n, _)| *n == s.name).map(|(_, l)| l.clone());
        let word = observed.as_ref().map_or("no complete schedule", Observed::word);
        let shown = label.as_ref().map_or("-".to_string(), ToString::to_string);
        let _ = write!(out, "{:width$}  {shown:lwidth$}  {word:34}", s.name);
        if let Some(w) = without {
            let other = w.streams.get(i).and_then(|(_, o)| o.as_ref()).map_or("no complete schedule", Observed::word);
            let _ = write!(out, "  {other}");
        }
        out.push('\n');
    }
    for (name, label, o) in &unsound {
        if let Observed::Differs { wrong, reference, facts } = o {
            let shown: Vec<String> = facts.iter().take(5).map(|f| format!("{name}({})", show(f))).collect();
            let _ = writeln!(
                out,
                "\nerror: `{name}` is labelled {label}, but schedule {wrong} (coordination {coordination}) emitted {} that no complete-input run emits: {}",
                common_plural(facts.len(), "fact"),
                shown.join(", ")
            );
            let _ = writeln!(out, "schedule {wrong} (replay with --replay {wrong}):");
            out.push_str(&trace(setup, &replay(setup, wrong, true), 40));
            let _ = writeln!(out, "complete-input schedule {reference}:");
            out.push_str(&trace(setup, &replay(setup, reference, true), 40));
        }
    }
    for d in &with.disagreements {
        let _ = writeln!(
            out,
            "\nerror: the replicas of `{}` disagree at their tick {} in schedule {} (replay with --replay {}), behind their sequencer",
            d.group, d.tick, d.schedule, d.schedule
        );
    }
    let failed = unsound.len() + with.disagreements.len();
    let checked = with
        .streams
        .iter()
        .filter(|(s, o)| o.is_some() && labels.iter().any(|(n, l)| *n == s.name && l.deterministic()))
        .count();
    let _ = writeln!(
        out,
        "verdicts: {checked} Seal or Async labels checked, {} unsound, {} replica disagreements",
        unsound.len(),
        with.disagreements.len()
    );
    let trimmed: String = out.lines().map(|l| format!("{}\n", l.trim_end())).collect();
    (trimmed, failed)
}

fn common_plural(n: usize, w: &str) -> String {
    super::common::plural(n, w)
}

/// A schedule as text: which node took which facts in which tick, and what it emitted.
fn trace(setup: &Setup<'_>, o: &Outcome, limit: usize) -> String {
    let p: &Program = setup.program;
    let mut out = String::new();
    for step in o.log.iter().take(limit) {
        let name = setup.plans.get(step.node).map_or("?", |n| n.node_name.as_str());
        let took: Vec<String> =
            step.took.iter().map(|(c, r)| format!("{}({})", p.collection_name(*c), show(r))).collect();
        let _ = write!(
            out,
            "  {name} tick {}: took {}",
            step.tick,
            if took.is_empty() { "nothing".to_string() } else { took.join(", ") }
        );
        let emitted: Vec<String> = step
            .emitted
            .iter()
            .flat_map(|(c, facts)| facts.iter().map(move |r| format!("{}({})", p.collection_name(*c), show(r))))
            .collect();
        if !emitted.is_empty() {
            let _ = write!(out, "; emitted {}", emitted.join(", "));
        }
        out.push('\n');
    }
    if o.log.len() > limit {
        let _ = writeln!(out, "  ... {} more ticks", o.log.len() - limit);
    }
    if o.truncated {
        let _ = writeln!(out, "  (a node reached --max-ticks)");
    }
    out
}
