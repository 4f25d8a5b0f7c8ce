//! `bloomc rewrite FILE [--coordination ..]`: prints the program as the rewriter makes it for
//! a run (`bloomc_compiler::rewrite`): its own text with the `--set` values as the
//! parameters' defaults, the `--seal` seals declared, and the inserted `order`, `punctuate`
//! and `hold` items at the end of the system. The output passes `bloomc check`, and
//! `bloomc run OUT --coordination none` runs what `bloomc run FILE --coordination ..` runs.

use super::args::CoordinationArg;
use super::args::{Format, ProgramArgs};
use super::common::{emit, load, report};
use bloomc_compiler::rewrite::text::{render, Compiled};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Rewrite {
    #[command(flatten)]
    program: ProgramArgs,
    /// The coordination to insert: `auto` (what the analysis chose), `none` (nothing),
    /// `order` (every replicated group sequenced) or `seal` (every seal enforced).
    #[arg(long, value_enum, default_value_t = CoordinationArg::Auto)]
    coordination: CoordinationArg,
}

impl Rewrite {
    pub fn run(self) -> Result<ExitCode, String> {
        if self.program.format != Format::Human {
            return Err("`bloomc rewrite` prints source text; `--format` takes only `human` here".to_string());
        }
        let c = load(&self.program)?;
        let (errors, _) = report(&c, Format::Human, false);
        let (Some(p), 0) = (c.program.as_ref(), errors) else {
            return Ok(ExitCode::from(1));
        };
        let (inserted, _) = super::coordination::rewritten(p, c.analysis.as_ref(), self.coordination)?;
        let (id, tree) = c.files.first().ok_or("internal error: no program file")?;
        let compiled = Compiled { sources: &c.sources, file: (*id, tree), program: p, analysis: c.analysis.as_ref() };
        let text = render(&compiled, &inserted, super::coordination::strategy(self.coordination))?;
        emit(&text);
        Ok(ExitCode::SUCCESS)
    }
}
