//! `bloomc analyze FILE`: the Blazes analysis of a program or of a grey-box YAML file.
//!
//! Prints one line per output stream with its label and the coordination each hazard needs
//! (or JSON, or DOT), and diagnostics at the nonmonotonic statements on stderr.

use super::common::{emit, read, report};
use super::{Format, ProgramArgs};
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

/// Analyses FILE (either kind); returns the analyses with their variant names, or the exit
/// code after reporting errors.
pub fn run_analysis(
    program: &ProgramArgs,
    variant: Option<&str>,
    notes: bool,
) -> Result<Result<Vec<(Option<String>, Analysis)>, ExitCode>, String> {
    let bytes = read(&program.file)?;
    let name = program.file.display().to_string();
    let format = program.format;
    if is_greybox(&program.file) {
        if !program.set.is_empty() {
            return Err("`--set` has no meaning for a grey-box file; use `--variant` to pick a query".to_string());
        }
        let run = analyze_greybox(&name, &bytes, &program.options(), variant);
        let shown: Vec<_> = run.diagnostics.iter().filter(|d| notes || d.severity() != Severity::Note).collect();
        print_diagnostics(&run.sources, &shown, format);
        if run.has_errors() {
            return Ok(Err(ExitCode::from(1)));
        }
        return Ok(Ok(run.analyses));
    }
    if variant.is_some() {
        return Err("`--variant` is for grey-box files; programs choose with `--set`".to_string());
    }
    let c: Compilation = compile_with(&name, &bytes, &program.options());
    if format == Format::Json {
        // JSON diagnostics go inside the one JSON document below.
        if c.has_errors() {
            report(&c, Format::Json, notes);
            return Ok(Err(ExitCode::from(1)));
        }
    } else {
        let shown: Vec<_> = c.diagnostics.iter().filter(|d| notes || d.severity() != Severity::Note).collect();
        print_diagnostics(&c.sources, &shown, format);
    }
    match c.analysis {
        Some(a) if !c.has_errors() => Ok(Ok(vec![(None, a)])),
        _ => Ok(Err(ExitCode::from(1))),
    }
}

fn print_diagnostics(
    sources: &bloomc_compiler::source::SourceMap,
    diags: &[&bloomc_compiler::diagnostic::Diagnostic],
    format: Format,
) {
    if format == Format::Json {
        return;
    }
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for d in diags {
        eprint!("{}", render::render_human(sources, d, color));
    }
}

impl Analyze {
    pub fn run(self) -> Result<ExitCode, String> {
        let analyses = match run_analysis(&self.program, self.variant.as_deref(), true)? {
            Ok(a) => a,
            Err(code) => return Ok(code),
        };
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
                let out = match docs.as_slice() {
                    [one] => one.clone(),
                    _ => serde_json::json!({ "variants": docs }),
                };
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
