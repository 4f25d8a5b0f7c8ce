//! The bloomc compiler core: sources in, IR and diagnostics out.
//!
//! This crate is pure: it reads no files and prints nothing. The driver [`compile`] runs the
//! stages in order (decode, parse, load the standard library, resolve, stratify), and each
//! stage consumes the previous stage's type. Only the CLI prints and exits.

pub mod analysis;
pub mod diagnostic;
pub mod dump;
pub mod ir;
pub mod render;
pub mod resolve;
pub mod source;
pub mod stdlib;
pub mod stratify;

use bloomc_grammar::ast;
use bloomc_grammar::span::{FileId, Span};
use diagnostic::{Code, Diagnostic, Severity};
use source::SourceMap;

/// Everything a compilation produced. `program` is `None` when parsing failed.
pub struct Compilation {
    pub sources: SourceMap,
    pub files: Vec<(FileId, ast::SourceFile)>,
    pub program: Option<ir::Program>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Compilation {
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity() == Severity::Error)
    }
}

/// Compiles one program file. `overrides` are `--set name=value` pairs from the command line.
pub fn compile(name: &str, bytes: &[u8], overrides: &[(String, String)]) -> Compilation {
    let mut sources = SourceMap::new();
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.to_string(),
        Err(e) => {
            let at = e.valid_up_to();
            let file = sources.add(name, String::from_utf8_lossy(bytes).into_owned());
            // The lossy text replaces the bad byte with U+FFFD (3 bytes) at the same offset.
            let diag = Diagnostic::new(
                Code::InvalidUtf8,
                "the file is not valid UTF-8",
                Span::new(file, at, at + 3),
                format!(
                    "invalid byte 0x{:02x} at offset {at}",
                    bytes.get(at).copied().unwrap_or(0)
                ),
            )
            .with_help("save the file as UTF-8");
            return Compilation {
                sources,
                files: Vec::new(),
                program: None,
                diagnostics: vec![diag],
            };
        }
    };
    let main = sources.add(name, text);
    let mut diagnostics = Vec::new();
    let mut files = Vec::new();
    let mut pending = vec![main];
    let mut loaded: Vec<String> = Vec::new();
    while let Some(file) = pending.pop() {
        let text = sources
            .get(file)
            .map(|f| f.text.clone())
            .unwrap_or_default();
        let (tree, errors) = bloomc_grammar::parse(file, &text);
        diagnostics.extend(errors.into_iter().map(syntax_diagnostic));
        for item in &tree.items {
            let ast::Item::Use(lib) = item else { continue };
            if loaded.contains(&lib.name) {
                continue;
            }
            match stdlib::source(&lib.name) {
                Some(src) => {
                    loaded.push(lib.name.clone());
                    pending.push(sources.add(format!("<stdlib>/{}.bl", lib.name), src));
                }
                None => {
                    let names: Vec<&str> = stdlib::LIBRARIES.iter().map(|(n, _)| *n).collect();
                    let help = diagnostic::did_you_mean(&lib.name, names.iter().copied())
                        .unwrap_or_else(|| {
                            format!("the standard library has: {}", names.join(", "))
                        });
                    diagnostics.push(
                        Diagnostic::new(
                            Code::UnknownLibrary,
                            format!("no standard library module `{}`", lib.name),
                            lib.span,
                            "unknown library",
                        )
                        .with_help(help),
                    );
                }
            }
        }
        files.push((file, tree));
    }
    let overrides: Vec<resolve::Override> = overrides
        .iter()
        .map(|(name, value)| {
            let file = sources.add(format!("--set {name}"), format!("{name}={value}"));
            resolve::Override {
                name: name.clone(),
                name_span: Span::new(file, 0, name.len()),
                value: value.clone(),
                value_span: Span::new(file, name.len() + 1, name.len() + 1 + value.len()),
            }
        })
        .collect();
    if !diagnostics.is_empty() {
        // Syntax errors: resolving a partial tree would only add cascades.
        sort(&mut diagnostics);
        return Compilation {
            sources,
            files,
            program: None,
            diagnostics,
        };
    }
    let trees: Vec<&ast::SourceFile> = files.iter().map(|(_, t)| t).collect();
    let (mut program, resolve_diags) = resolve::resolve(&trees, &overrides);
    diagnostics.extend(resolve_diags);
    diagnostics.extend(stratify::stratify(&mut program));
    sort(&mut diagnostics);
    Compilation {
        sources,
        files,
        program: Some(program),
        diagnostics,
    }
}

fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| {
        (
            d.primary.span.file,
            d.primary.span.start,
            d.primary.span.end,
        )
    });
}

fn syntax_diagnostic(e: bloomc_grammar::SyntaxError) -> Diagnostic {
    use bloomc_grammar::token::LexErrorKind;
    use bloomc_grammar::SyntaxErrorKind;
    let expected = |list: &[String]| -> String {
        match list {
            [] => "remove it".to_string(),
            [one] => format!("expected {one}"),
            many if many.len() <= 8 => format!("expected one of {}", many.join(", ")),
            many => format!(
                "expected one of {} and {} more",
                many.iter().take(8).cloned().collect::<Vec<_>>().join(", "),
                many.len() - 8
            ),
        }
    };
    match e.kind {
        SyntaxErrorKind::Lex(kind) => {
            let (code, message, label, help) = match kind {
                LexErrorKind::UnknownCharacter => (
                    Code::UnknownCharacter,
                    "unexpected character",
                    "not part of the language",
                    "remove it; comments start with `//`",
                ),
                LexErrorKind::UnterminatedString => (
                    Code::UnterminatedString,
                    "unterminated string",
                    "this string never ends",
                    "close it with `\"` on the same line",
                ),
                LexErrorKind::BadEscape => (
                    Code::BadEscape,
                    "unknown escape in string",
                    "unknown escape",
                    "the escapes are \\n, \\t, \\\\ and \\\"",
                ),
                LexErrorKind::IntegerOverflow => (
                    Code::IntegerOverflow,
                    "integer literal too large",
                    "does not fit in 64 bits",
                    "integer literals range up to 9223372036854775807",
                ),
                LexErrorKind::BadFloat => (
                    Code::UnknownCharacter,
                    "malformed number",
                    "not a number",
                    "write numbers like 1.5 or 2.0e3",
                ),
            };
            Diagnostic::new(code, message, e.span, label).with_help(help)
        }
        SyntaxErrorKind::Unexpected {
            found,
            expected: list,
        } => Diagnostic::new(
            Code::UnexpectedToken,
            format!("unexpected {found}"),
            e.span,
            "unexpected here",
        )
        .with_help(expected(&list)),
        SyntaxErrorKind::UnexpectedEof { expected: list } => Diagnostic::new(
            Code::UnexpectedEof,
            "unexpected end of file",
            e.span,
            "the file ends here",
        )
        .with_help(expected(&list)),
    }
}
