//! `bloomc run FILE`: compile, then run the program's node on timely/differential dataflow
//! until it is quiescent; print each output's final contents and a summary.

use super::common::{emit, load, report};
use super::ProgramArgs;
use bloomc_runtime::run::{run, RunOptions};
use bloomc_runtime::value::show;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Run {
    #[command(flatten)]
    program: ProgramArgs,
    /// Timely worker threads for the node (results are identical for any count).
    #[arg(long, short = 'w', default_value_t = 1)]
    workers: usize,
    /// Stop after this many ticks even if the node has not become quiescent.
    #[arg(long, default_value_t = 100_000)]
    max_ticks: u64,
    /// Print every output's contents at every tick where they changed, not only at the end.
    #[arg(long)]
    per_tick: bool,
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
        let plan = bloomc_runtime::plan::plan(p, &[])?;
        let result = run(p, &plan, &RunOptions { workers: self.workers, max_ticks: self.max_ticks })?;
        for (name, ticks) in &result.outputs {
            if self.per_tick {
                for (t, rows) in ticks {
                    emit(&format!("-- {name} at tick {t}: {} facts\n", rows.len()));
                    for row in rows {
                        emit(&format!("{name}({})\n", show(row)));
                    }
                }
            } else {
                // Outputs are per-tick events: print every fact emitted during the run.
                let rows = result.all_facts(name);
                emit(&format!("-- {name}: {} facts emitted\n", rows.len()));
                for row in rows {
                    emit(&format!("{name}({})\n", show(&row)));
                }
            }
        }
        let rate = if result.elapsed_s > 0.0 { result.facts_in as f64 / result.elapsed_s } else { 0.0 };
        eprintln!(
            "{}: {} ticks{}, {} facts in, {:.3} s, {:.0} facts/s, {} evaluation errors, {} generator errors",
            plan.node_name,
            result.ticks,
            if result.quiescent { " (quiescent)" } else { " (stopped at --max-ticks)" },
            result.facts_in,
            result.elapsed_s,
            rate,
            result.eval_errors,
            result.feed_errors
        );
        Ok(if result.quiescent { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }
}
