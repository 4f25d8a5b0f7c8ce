//! `bloomc analyze FILE`: the Blazes analysis of a program or of a grey-box YAML file.
//!
//! Prints one line per output stream with its label and the coordination each hazard needs
//! (or JSON, or DOT), and diagnostics at the nonmonotonic statements on stderr.

use super::args::{Format, ProgramArgs};
use super::common::{emit, read};
use bloomc_compiler::analysis::report::Analysis;
use bloomc_compiler::diagnostic::Severity;
use bloomc_compiler::{analyze_greybox, compile_with, render, Compilation};
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Analyze {
    #[command(flatten)]
    program: ProgramArgs,
    /// Print each output's derivation in the paper's notation.
    #[arg(long)]
    explain: bool,
    /// Grey-box files only: analyse one query variant (the paper's POOR, THRESH, ...).
    #[arg(long)]
    variant: Option<String>,
}

pub fn is_greybox(path: &std::path::Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yml" | "yaml"))
}

/// What an analysis run produced: the analyses with their variant names (none when the
/// input has errors), and the diagnostics as JSON values (for `--format json`).
pub struct Outcome {
    pub analyses: Vec<(Option<String>, Analysis)>,
    pub diagnostics: Vec<serde_json::Value>,
    pub errors: usize,
}

/// Analyses FILE (either kind). Diagnostics are printed for people, or returned as JSON.
pub fn run_analysis(program: &ProgramArgs, variant: Option<&str>, notes: bool) -> Result<Outcome, String> {
    let bytes = read(&program.file)?;
    let name = program.file.display().to_string();
    let (sources, diagnostics, analyses) = if is_greybox(&program.file) {
        if !program.set.is_empty() {
            return Err("`--set` has no meaning for a grey-box file; use `--variant` to pick a query".to_string());
        }
        let run = analyze_greybox(&name, &bytes, &program.options(), variant);
        (run.sources, run.diagnostics, run.analyses)
    } else {
        if variant.is_some() {
            return Err("`--variant` is for grey-box files; programs choose with `--set`".to_string());
        }
        let c: Compilation = compile_with(&name, &bytes, &program.options());
        let errors = c.has_errors();
        let analyses = match c.analysis {
            Some(a) if !errors => vec![(None, a)],
            _ => Vec::new(),
        };
        (c.sources, c.diagnostics, analyses)
    };
    let shown: Vec<_> = diagnostics.iter().filter(|d| notes || d.severity() != Severity::Note).collect();
    let errors = shown.iter().filter(|d| d.severity() == Severity::Error).count();
    if program.format == Format::Json {
        let json = shown.iter().map(|d| render::to_json(&sources, d)).collect();
        return Ok(Outcome { analyses: if errors > 0 { Vec::new() } else { analyses }, diagnostics: json, errors });
    }
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut human = render::Human::new(&sources, color);
    for d in &shown {
        eprint!("{}", human.render(d));
    }
    Ok(Outcome { analyses: if errors > 0 { Vec::new() } else { analyses }, diagnostics: Vec::new(), errors })
}

impl Analyze {
    pub fn run(self) -> Result<ExitCode, String> {
        let outcome = run_analysis(&self.program, self.variant.as_deref(), true)?;
        if outcome.errors > 0 {
            if self.program.format == Format::Json {
                let out = serde_json::json!({ "diagnostics": outcome.diagnostics, "errors": outcome.errors });
                emit(&format!("{out}\n"));
            }
            return Ok(ExitCode::from(1));
        }
        let analyses = outcome.analyses;
        let many = analyses.len() > 1;
        match self.program.format {
            Format::Json => {
                let docs: Vec<serde_json::Value> = analyses
                    .iter()
                    .map(|(v, a)| {
                        let mut j = a.json();
                        if let (Some(v), Some(obj)) = (v, j.as_object_mut()) {
                            obj.insert("variant".to_string(), serde_json::Value::String(v.clone()));
                        }
                        j
                    })
                    .collect();
                let mut out = match docs.as_slice() {
                    [one] => one.clone(),
                    _ => serde_json::json!({ "variants": docs }),
                };
                if let Some(obj) = out.as_object_mut() {
                    obj.insert("diagnostics".to_string(), serde_json::Value::Array(outcome.diagnostics));
                }
                emit(&format!("{out}\n"));
            }
            Format::Dot => {
                if many {
                    return Err(
                        "this file has several variants: pick one with `--variant` for `--format dot`".to_string()
                    );
                }
                for (_, a) in &analyses {
                    emit(&a.dot());
                }
            }
            Format::Human => {
                for (v, a) in &analyses {
                    if let Some(v) = v {
                        emit(&format!("== variant {v}\n"));
                    }
                    emit(&a.human());
                    if self.explain {
                        emit("\nderivations:\n");
                        emit(&a.explain());
                    }
                    if many {
                        emit("\n");
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
