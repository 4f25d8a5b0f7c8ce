//! `bloomc dump ast|ir FILE`: print one compiler stage, for review and snapshot tests.

use super::args::CoordinationArg;
use super::args::ProgramArgs;
use super::common::{emit, load, report};
use clap::ValueEnum;
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
enum Stage {
    /// The syntax tree of the program file, with byte spans.
    Ast,
    /// The resolved, typed IR of the whole program.
    Ir,
    /// What `bloomc run` builds for the program's node: feeds, and each rule's operators.
    Plan,
}

#[derive(clap::Args)]
pub struct Dump {
    #[arg(value_enum)]
    stage: Stage,
    #[command(flatten)]
    program: ProgramArgs,
}

impl Dump {
    pub fn run(self) -> Result<ExitCode, String> {
        let c = load(&self.program)?;
        let (errors, _) = report(&c, self.program.text_format()?, false);
        match self.stage {
            Stage::Ast => {
                // The AST exists even with syntax errors: show what was recovered.
                if let Some((_, tree)) = c.files.iter().find(|(id, _)| id.0 == 0) {
                    emit(&format!("{tree:#?}\n"));
                }
            }
            Stage::Plan => {
                if errors > 0 {
                    return Ok(ExitCode::from(1));
                }
                if let Some(p) = &c.program {
                    // File feeds are described from the program; they are read only by `run`.
                    if bloomc_compiler::rewrite::is_network(p) {
                        // The program `bloomc run` runs by default: rewritten for `--coordination auto`.
                        let (_, rewritten) =
                            super::coordination::rewritten(p, c.analysis.as_ref(), CoordinationArg::Auto)?;
                        let p = &rewritten;
                        let plans = bloomc_runtime::plan::network_without_files(p)?;
                        emit(&bloomc_runtime::describe::coordination(p, &plans)?);
                        for plan in &plans {
                            emit(&bloomc_runtime::describe::describe(p, plan));
                        }
                    } else {
                        let plan = bloomc_runtime::plan::plan_without_files(p)?;
                        emit(&bloomc_runtime::describe::describe(p, &plan));
                    }
                }
            }
            Stage::Ir => {
                if errors > 0 {
                    return Ok(ExitCode::from(1));
                }
                if let Some(p) = &c.program {
                    emit(&bloomc_compiler::dump::program(p));
                }
            }
        }
        Ok(if errors > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
    }
}
