//! The bloomc compiler core: sources in, IR and diagnostics out.
//!
//! This crate is pure: it reads no files and prints nothing. The driver [`compile`] runs the
//! stages in order (decode, parse, load the standard library, resolve, stratify), and each
//! stage consumes the previous stage's type. Only the CLI prints and exits.

pub mod aggregates;
pub mod analysis;
pub mod diagnostic;
pub mod dump;
pub mod ir;
pub mod ops;
pub mod render;
pub mod resolve;
pub mod rewrite;
pub mod source;
pub mod stdlib;
pub mod stratify;

use bloomc_grammar::ast;
use bloomc_grammar::span::{FileId, Span};
use diagnostic::{Code, Diagnostic, Severity};
use source::SourceMap;

/// Everything a compilation produced. `program` is `None` when parsing failed; `analysis`
/// is `None` when the program has errors.
pub struct Compilation {
    pub sources: SourceMap,
    pub files: Vec<(FileId, ast::SourceFile)>,
    pub program: Option<ir::Program>,
    pub analysis: Option<analysis::report::Analysis>,
    pub diagnostics: Vec<Diagnostic>,
}

/// What the command line can change about a compilation.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--set name=value`.
    pub overrides: Vec<(String, String)>,
    /// `--seal stream=col,col`: `group.input` or an input name, and the seal key.
    pub seals: Vec<(String, Vec<String>)>,
    /// `--allow nondeterminism`: no nondeterminism warnings.
    pub allow_nondeterminism: bool,
}

impl Compilation {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity() == Severity::Error)
    }
}

/// Compiles one program file. `overrides` are `--set name=value` pairs from the command line.
pub fn compile(name: &str, bytes: &[u8], overrides: &[(String, String)]) -> Compilation {
    compile_with(name, bytes, &Options { overrides: overrides.to_vec(), ..Options::default() })
}

/// Compiles one program file and, when it has no errors, analyses it.
pub fn compile_with(name: &str, bytes: &[u8], options: &Options) -> Compilation {
    let overrides = &options.overrides;
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
                format!("invalid byte 0x{:02x} at offset {at}", bytes.get(at).copied().unwrap_or(0)),
            )
            .with_help("save the file as UTF-8");
            return Compilation { sources, files: Vec::new(), program: None, analysis: None, diagnostics: vec![diag] };
        }
    };
    let main = sources.add(name, text);
    let mut diagnostics = Vec::new();
    let mut files = Vec::new();
    let mut pending = vec![main];
    let mut loaded: Vec<String> = Vec::new();
    while let Some(file) = pending.pop() {
        let text = sources.get(file).map(|f| f.text.clone()).unwrap_or_default();
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
                        .unwrap_or_else(|| format!("the standard library has: {}", names.join(", ")));
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
        return Compilation { sources, files, program: None, analysis: None, diagnostics };
    }
    let trees: Vec<&ast::SourceFile> = files.iter().map(|(_, t)| t).collect();
    let (mut program, resolve_diags) = resolve::resolve(&trees, &overrides);
    diagnostics.extend(resolve_diags);
    diagnostics.extend(stratify::stratify(&mut program));
    let mut analysis = None;
    if !diagnostics.iter().any(|d| d.severity() == Severity::Error) {
        let (a, diags) = analyse(&mut sources, &program, options);
        diagnostics.extend(diags);
        analysis = a;
    }
    sort(&mut diagnostics);
    Compilation { sources, files, program: Some(program), analysis, diagnostics }
}

fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| (d.primary.span.file, d.primary.span.start, d.primary.span.end));
}

fn syntax_diagnostic(e: bloomc_grammar::SyntaxError) -> Diagnostic {
    use bloomc_grammar::nesting::{Deep, MAX_DEPTH};
    use bloomc_grammar::token::LexErrorKind;
    use bloomc_grammar::SyntaxErrorKind;
    let expected = |list: &[String]| -> String {
        match list {
            [] => "remove it".to_string(),
            [one] => format!("expected {one}"),
            // After a collection's columns the identifier can only be the contextual `key`.
            [semi, ident] if semi == "`;`" && ident == "identifier" => {
                "expected `;` (or, on an input, `key (..)`)".to_string()
            }
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
                LexErrorKind::BadFloat => {
                    (Code::UnknownCharacter, "malformed number", "not a number", "write numbers like 1.5 or 2.0e3")
                }
            };
            Diagnostic::new(code, message, e.span, label).with_help(help)
        }
        SyntaxErrorKind::Unexpected { found, expected: list } => {
            Diagnostic::new(Code::UnexpectedToken, format!("unexpected {found}"), e.span, "unexpected here")
                .with_help(expected(&list))
        }
        SyntaxErrorKind::UnexpectedEof { expected: list } => {
            Diagnostic::new(Code::UnexpectedEof, "unexpected end of file", e.span, "the file ends here")
                .with_help(expected(&list))
        }
        SyntaxErrorKind::TooDeep { before: Some(Deep::Brackets) } => Diagnostic::new(
            Code::TooDeep,
            format!("brackets nest more than {MAX_DEPTH} deep"),
            e.span,
            format!("bracket {} deep", MAX_DEPTH + 1),
        )
        .with_help("nest `(`, `[` and `{` (and so `when` blocks) less deeply; the file was not parsed further"),
        SyntaxErrorKind::TooDeep { before: Some(Deep::Prefix) } => Diagnostic::new(
            Code::TooDeep,
            format!("more than {MAX_DEPTH} `not` or `-` in a row"),
            e.span,
            format!("operator {} in a row", MAX_DEPTH + 1),
        )
        .with_help(format!("each one nests: write at most {MAX_DEPTH} levels; the file was not parsed further")),
        SyntaxErrorKind::TooDeep { before: None } => Diagnostic::new(
            Code::TooDeep,
            format!("expression nests more than {MAX_DEPTH} deep"),
            e.span,
            format!("operator {} deep", MAX_DEPTH + 1),
        )
        .with_help(format!(
            "a chain like `a + b + ...` counts one level per operator: write at most {MAX_DEPTH} levels"
        )),
    }
}

/// Runs the Blazes analysis on a clean program; `--seal` names that match no stream are
/// errors located in a virtual file holding the argument.
fn analyse(
    sources: &mut SourceMap,
    program: &ir::Program,
    options: &Options,
) -> (Option<analysis::report::Analysis>, Vec<Diagnostic>) {
    let args: Vec<analysis::build::SealArg> = options
        .seals
        .iter()
        .map(|(stream, key)| analysis::build::SealArg { stream: stream.clone(), key: key.clone() })
        .collect();
    let (graph, unmatched) = analysis::build::graph(program, &args);
    let mut diags = Vec::new();
    for problem in unmatched {
        diags.push(seal_problem(sources, &graph, &problem));
    }
    if !diags.is_empty() {
        return (None, diags);
    }
    let a = analysis::report::Analysis::new(graph, false);
    let system_allows = program.system.as_ref().is_some_and(|s| s.allow_nondeterminism);
    // Nondeterminism diagnostics point at rules; those of an allowing module stay silent.
    let allowed: std::collections::HashSet<Span> = program
        .modules
        .iter()
        .filter(|m| m.allow_nondeterminism)
        .flat_map(|m| m.rules.iter().filter_map(|&r| program.rule(r).map(|r| r.span)))
        .collect();
    // Timing findings of every analysed module (white box only).
    let modules: std::collections::BTreeSet<ir::ModuleId> = match &program.system {
        Some(s) => s.groups.iter().map(|g| g.module).collect(),
        None => program.modules.iter().map(|m| m.id).collect(),
    };
    let timing = modules.into_iter().flat_map(|m| analysis::timing::diagnostics(program, m));
    for d in a.diagnostics().into_iter().chain(timing) {
        let silenced = matches!(d.code, Code::Nondeterministic | Code::TransientJoin)
            && (options.allow_nondeterminism || system_allows || allowed.contains(&d.primary.span));
        if !silenced {
            diags.push(d);
        }
    }
    (Some(a), diags)
}

/// The analysis of a grey-box annotation file: one result per variant (or one, unnamed, for
/// a file without variants).
pub struct GreyBoxRun {
    pub sources: SourceMap,
    pub diagnostics: Vec<Diagnostic>,
    pub analyses: Vec<(Option<String>, analysis::report::Analysis)>,
}

impl GreyBoxRun {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity() == Severity::Error)
    }
}

/// Reads a grey-box YAML file and analyses it. `variant` picks one query variant; without it
/// every variant is analysed. `options.seals` add seals; `--set` has no meaning here.
pub fn analyze_greybox(name: &str, bytes: &[u8], options: &Options, variant: Option<&str>) -> GreyBoxRun {
    let mut sources = SourceMap::new();
    let Ok(text) = std::str::from_utf8(bytes) else {
        let at = std::str::from_utf8(bytes).err().map_or(0, |e| e.valid_up_to());
        let file = sources.add(name, String::from_utf8_lossy(bytes).into_owned());
        let d = Diagnostic::new(
            Code::InvalidUtf8,
            "the file is not valid UTF-8",
            Span::new(file, at, at + 3),
            "invalid byte",
        )
        .with_help("save the file as UTF-8");
        return GreyBoxRun { sources, diagnostics: vec![d], analyses: Vec::new() };
    };
    let file = sources.add(name, text);
    let grey = match analysis::greybox::parse(file, text) {
        Ok(g) => g,
        Err(diagnostics) => return GreyBoxRun { sources, diagnostics, analyses: Vec::new() },
    };
    let names: Vec<String> = grey.variants.iter().map(|(n, _, _)| n.clone()).collect();
    let chosen: Vec<Option<String>> = match variant {
        Some(v) if names.iter().any(|n| n == v) => vec![Some(v.to_string())],
        Some(v) => {
            let vfile = sources.add("--variant", v);
            let help = diagnostic::did_you_mean(v, names.iter().map(String::as_str)).unwrap_or_else(|| {
                if names.is_empty() {
                    "this file has no variants".to_string()
                } else {
                    format!("the variants are: {}", names.join(", "))
                }
            });
            let d = Diagnostic::new(
                Code::UnknownVariant,
                format!("no variant `{v}` in `{name}`"),
                Span::new(vfile, 0, v.len()),
                "unknown variant",
            )
            .with_help(help);
            return GreyBoxRun { sources, diagnostics: vec![d], analyses: Vec::new() };
        }
        None if names.is_empty() => vec![None],
        None => names.iter().cloned().map(Some).collect(),
    };
    let args: Vec<analysis::build::SealArg> = options
        .seals
        .iter()
        .map(|(stream, key)| analysis::build::SealArg { stream: stream.clone(), key: key.clone() })
        .collect();
    let mut diagnostics = Vec::new();
    let mut analyses = Vec::new();
    for v in chosen {
        let mut graph = grey.graph(v.as_deref());
        for problem in analysis::build::apply_seal_args(&mut graph, &args) {
            let d = seal_problem(&mut sources, &graph, &problem);
            if !diagnostics.iter().any(|x: &Diagnostic| x.message == d.message) {
                diagnostics.push(d);
            }
        }
        let a = analysis::report::Analysis::new(graph, true);
        for d in a.diagnostics() {
            if (!options.allow_nondeterminism || d.code != Code::Nondeterministic) && !diagnostics.contains(&d) {
                diagnostics.push(d);
            }
        }
        analyses.push((v, a));
    }
    sort(&mut diagnostics);
    GreyBoxRun { sources, diagnostics, analyses }
}

/// The diagnostic for a `--seal` argument that cannot apply, located in a virtual file that
/// holds the argument.
fn seal_problem(
    sources: &mut SourceMap,
    graph: &analysis::model::Graph,
    problem: &analysis::build::SealProblem,
) -> Diagnostic {
    use analysis::build::SealProblem;
    match problem {
        SealProblem::UnknownStream(name) => {
            let inputs: Vec<String> =
                graph.components.iter().flat_map(|c| c.inputs.iter().map(move |i| format!("{}.{i}", c.name))).collect();
            let file = sources.add(format!("--seal {name}"), name.clone());
            let help = diagnostic::did_you_mean(name, inputs.iter().map(String::as_str))
                .unwrap_or_else(|| format!("the input streams are: {}", inputs.join(", ")));
            Diagnostic::new(
                Code::UnknownStream,
                format!("`--seal {name}`: no input stream has this name"),
                Span::new(file, 0, name.len()),
                "unknown stream",
            )
            .with_help(help)
        }
        SealProblem::UnknownColumn { stream, column, columns } => {
            let text = format!("{stream}={column}");
            let file = sources.add(format!("--seal {stream}"), text.clone());
            let help = diagnostic::did_you_mean(column, columns.iter().map(String::as_str))
                .unwrap_or_else(|| format!("its columns are: {}", columns.join(", ")));
            Diagnostic::new(
                Code::UnknownColumn,
                format!("`--seal {stream}`: the stream has no column `{column}`"),
                Span::new(file, stream.len() + 1, text.len()),
                "unknown column",
            )
            .with_help(help)
        }
    }
}
