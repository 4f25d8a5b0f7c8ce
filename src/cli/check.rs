//! `bloomc check FILE`: compile and report; print nothing else on success but a summary.

use super::args::{Format, ProgramArgs};
use super::common::{emit, load, plural, report};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Check {
    #[command(flatten)]
    program: ProgramArgs,
}

impl Check {
    pub fn run(self) -> Result<ExitCode, String> {
        let c = load(&self.program)?;
        let (errors, warnings) = report(&c, self.program.text_format()?, false);
        if self.program.format == Format::Human {
            let name = self.program.file.display();
            if errors > 0 {
                eprintln!("error: `{name}` has {} and {}", plural(errors, "error"), plural(warnings, "warning"));
            } else if let Some(p) = &c.program {
                let nodes = p.system.as_ref().map_or(0, |s| s.groups.len());
                emit(&format!(
                    "{name}: ok ({}, {}, {}, {})\n",
                    plural(p.modules.len(), "module"),
                    plural(p.rules.len(), "rule"),
                    plural(nodes, "node group"),
                    plural(warnings, "warning")
                ));
            }
        }
        Ok(if errors > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
    }
}
