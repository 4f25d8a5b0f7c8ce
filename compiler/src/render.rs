//! The one place diagnostics become text: ariadne reports for people, JSON for tools.

use crate::diagnostic::{Diagnostic, Severity};
use crate::source::SourceMap;
use ariadne::{Color, Config, IndexType, Label, Report, ReportKind};
use bloomc_grammar::span::Span;
use serde::Serialize;

type ASpan = (String, std::ops::Range<usize>);

fn aspan(sources: &SourceMap, span: Span) -> ASpan {
    (sources.name(span.file).to_string(), span.range())
}

/// Renders one diagnostic with ariadne. `color` is for terminals; tests render without.
/// Each call indexes every source's lines; to render many diagnostics, use [`Human`].
pub fn render_human(sources: &SourceMap, diag: &Diagnostic, color: bool) -> String {
    Human::new(sources, color).render(diag)
}

/// How ariadne's cache fetches a source's text by its name.
type Fetch = Box<dyn Fn(&String) -> Result<String, Box<dyn std::fmt::Debug>>>;

/// Renders diagnostics of one compilation with ariadne, indexing the sources' lines once:
/// rendering n diagnostics of a file of n lines is then linear, not quadratic.
pub struct Human<'s> {
    sources: &'s SourceMap,
    color: bool,
    cache: ariadne::FnCache<String, Fetch, String>,
}

impl<'s> Human<'s> {
    pub fn new(sources: &'s SourceMap, color: bool) -> Self {
        let texts: std::collections::HashMap<String, String> =
            sources.files().map(|(_, f)| (f.name.clone(), f.text.clone())).collect();
        let fetch: Fetch = Box::new(move |name| {
            texts
                .get(name)
                .cloned()
                .ok_or_else(|| Box::new(format!("unknown file `{name}`")) as Box<dyn std::fmt::Debug>)
        });
        Human { sources, color, cache: ariadne::FnCache::new(fetch) }
    }

    pub fn render(&mut self, diag: &Diagnostic) -> String {
        render_with(self.sources, diag, self.color, &mut self.cache)
    }
}

fn render_with<C: ariadne::Cache<String>>(sources: &SourceMap, diag: &Diagnostic, color: bool, cache: C) -> String {
    let kind = match diag.severity() {
        Severity::Error => ReportKind::Error,
        Severity::Warning => ReportKind::Warning,
        Severity::Note => ReportKind::Advice,
    };
    let (primary_color, secondary_color) = match diag.severity() {
        Severity::Error => (Color::Red, Color::Blue),
        Severity::Warning => (Color::Yellow, Color::Blue),
        Severity::Note => (Color::Cyan, Color::Blue),
    };
    let config = Config::default().with_color(color).with_index_type(IndexType::Byte);
    let mut builder = Report::build(kind, aspan(sources, diag.primary.span))
        .with_config(config)
        .with_code(diag.code.as_str())
        .with_message(&diag.message)
        .with_label(
            Label::new(aspan(sources, diag.primary.span))
                .with_message(&diag.primary.message)
                .with_color(primary_color)
                .with_priority(1),
        );
    for (i, label) in diag.secondary.iter().enumerate() {
        builder = builder.with_label(
            Label::new(aspan(sources, label.span))
                .with_message(&label.message)
                .with_color(secondary_color)
                .with_order(i32::try_from(i).unwrap_or(i32::MAX)),
        );
    }
    for note in &diag.notes {
        builder = builder.with_note(note);
    }
    if let Some(help) = &diag.help {
        builder = builder.with_help(help);
    }
    let mut out = Vec::new();
    if builder.finish().write(cache, &mut out).is_err() {
        // ariadne only fails when a span names an unknown file; fall back to a plain line.
        let (file, line, col) = location(sources, diag.primary.span);
        return format!("{}[{}]: {} at {file}:{line}:{col}\n", kind_word(diag), diag.code.as_str(), diag.message);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn kind_word(diag: &Diagnostic) -> &'static str {
    match diag.severity() {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

fn location(sources: &SourceMap, span: Span) -> (String, usize, usize) {
    let (line, col) = sources.get(span.file).map_or((1, 1), |f| f.line_col(span.start as usize));
    (sources.name(span.file).to_string(), line, col)
}

#[derive(Serialize)]
struct JsonLabel {
    file: String,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    message: String,
}

#[derive(Serialize)]
struct JsonDiagnostic {
    code: &'static str,
    severity: &'static str,
    message: String,
    file: String,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    labels: Vec<JsonLabel>,
    help: Option<String>,
    notes: Vec<String>,
}

fn json_label(sources: &SourceMap, span: Span, message: &str) -> JsonLabel {
    let (file, line, column) = location(sources, span);
    let (end_line, end_column) = sources.get(span.file).map_or((1, 1), |f| f.line_col(span.end as usize));
    JsonLabel { file, line, column, end_line, end_column, message: message.to_string() }
}

/// One JSON object per diagnostic: code, severity, message, primary location, every label.
pub fn to_json(sources: &SourceMap, diag: &Diagnostic) -> serde_json::Value {
    let primary = json_label(sources, diag.primary.span, &diag.primary.message);
    let mut labels = vec![json_label(sources, diag.primary.span, &diag.primary.message)];
    labels.extend(diag.secondary.iter().map(|l| json_label(sources, l.span, &l.message)));
    let value = JsonDiagnostic {
        code: diag.code.as_str(),
        severity: kind_word(diag),
        message: diag.message.clone(),
        file: primary.file,
        line: primary.line,
        column: primary.column,
        end_line: primary.end_line,
        end_column: primary.end_column,
        labels,
        help: diag.help.clone(),
        notes: diag.notes.clone(),
    };
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}
