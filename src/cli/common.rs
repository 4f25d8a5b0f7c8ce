//! What every subcommand shares: reading the program file and printing diagnostics.

use super::args::{Format, ProgramArgs};
use bloomc_compiler::diagnostic::{Diagnostic, Severity};
use bloomc_compiler::{compile_with, render, Compilation};
use std::io::IsTerminal;

/// Files larger than this are refused before parsing (spans are 32-bit).
const MAX_SOURCE: u64 = 256 * 1024 * 1024;

/// Reads a program file with the checks every subcommand needs.
pub fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if meta.is_dir() {
        return Err(format!("`{shown}` is a directory; give the path of a .bl file"));
    }
    if meta.len() > MAX_SOURCE {
        return Err(format!("`{shown}` is {} bytes; bloomc reads programs of at most {MAX_SOURCE} bytes", meta.len()));
    }
    std::fs::read(path).map_err(|e| format!("cannot read `{shown}`: {e}"))
}

/// Reads and compiles the program; I/O problems are errors for exit code 2.
pub fn load(args: &ProgramArgs) -> Result<Compilation, String> {
    let bytes = read(&args.file)?;
    let shown = args.file.display();
    Ok(compile_with(&shown.to_string(), &bytes, &args.options()))
}

/// Prints the diagnostics (stderr for people, stdout for JSON) and returns (errors, warnings).
/// `notes` includes the analysis's notes (for `analyze`); `check` shows errors and warnings.
pub fn report(c: &Compilation, format: Format, notes: bool) -> (usize, usize) {
    let shown: Vec<&Diagnostic> = c.diagnostics.iter().filter(|d| notes || d.severity() != Severity::Note).collect();
    let errors = shown.iter().filter(|d| d.severity() == Severity::Error).count();
    let warnings = shown.iter().filter(|d| d.severity() == Severity::Warning).count();
    match format {
        Format::Human | Format::Dot => {
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let mut human = render::Human::new(&c.sources, color);
            for d in &shown {
                eprint!("{}", human.render(d));
            }
        }
        Format::Json => {
            let diags: Vec<serde_json::Value> = shown.iter().map(|d| render::to_json(&c.sources, d)).collect();
            let out = serde_json::json!({ "diagnostics": diags, "errors": errors, "warnings": warnings });
            emit(&format!("{out}\n"));
        }
    }
    (errors, warnings)
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Writes to stdout, ignoring a closed pipe (`bloomc dump ir x.bl | head` is not an error).
pub fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
