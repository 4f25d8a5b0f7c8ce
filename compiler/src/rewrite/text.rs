//! The rewritten program as source, for `bloomc rewrite`: the program file's own text (so
//! its comments survive) with three kinds of edit. A parameter `--set` overrode gets that
//! value as its default; a `--seal` becomes a `G.I sealed on (..);` declaration (in place of
//! a declared seal of the same stream); and the operators the rewriter inserted are written
//! as system items before the system's closing brace. The result compiles, with no option,
//! to the rewritten IR.

use crate::analysis::report::Analysis;
use crate::ir::{Coordination, Endpoint, Program, Value};
use crate::source::SourceMap;
use bloomc_grammar::ast;
use bloomc_grammar::span::FileId;

/// What `render` needs of a compilation.
pub struct Compiled<'a> {
    pub sources: &'a SourceMap,
    /// The program file (the first file of the compilation) and its tree.
    pub file: (FileId, &'a ast::SourceFile),
    pub program: &'a Program,
    pub analysis: Option<&'a Analysis>,
}

/// The source of `c`'s program with `ops` inserted; `strategy` names them in a comment.
pub fn render(c: &Compiled<'_>, ops: &Coordination, strategy: super::Strategy) -> Result<String, String> {
    let (file, tree) = c.file;
    let text = c.sources.get(file).map(|f| f.text.as_str()).ok_or("internal error: no program file")?;
    let p = c.program;
    // (start, end, replacement) in the program file, never overlapping.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for item in &tree.items {
        let ast::Item::Param(decl) = item else { continue };
        let Some(param) = p.params.iter().find(|x| x.name == decl.name.name && x.overridden) else { continue };
        let span = decl.default.span;
        edits.push((span.start as usize, span.end as usize, literal(&param.value)?));
    }
    let mut lines: Vec<String> = Vec::new();
    for (end, key) in seal_args(c)? {
        let decl = format!("{} sealed on ({});", stream(p, end), key.join(", "));
        let declared = p.system.iter().flat_map(|s| s.seals.iter()).find(|s| s.stream == end);
        match declared {
            Some(s) if s.span.file == file => edits.push((s.span.start as usize, s.span.end as usize, decl)),
            Some(_) => return Err(format!("cannot write `{decl}` in place of a seal outside the program file")),
            None => lines.push(decl),
        }
    }
    lines.extend(operators(p, ops));
    if !lines.is_empty() {
        let system = tree.items.iter().find_map(|i| match i {
            ast::Item::System(s) => Some(s),
            _ => None,
        });
        let Some(system) = system else {
            return Err("the rewritten program needs a system, and this program has none".to_string());
        };
        let (start, end) = (system.span.start as usize, system.span.end as usize);
        let close = text.get(start..end).and_then(|s| s.rfind('}')).map(|i| start + i).ok_or("no closing brace")?;
        let mut block = format!("\n  // Inserted by `bloomc rewrite --coordination {}`:\n", strategy.as_str());
        for l in &lines {
            block.push_str("  ");
            block.push_str(l);
            block.push('\n');
        }
        edits.push((close, close, block));
    }
    edits.sort_by_key(|(s, e, _)| (*s, *e));
    let mut out = String::with_capacity(text.len() + 256);
    let mut at = 0;
    for (s, e, r) in edits {
        out.push_str(text.get(at..s).ok_or("internal error: overlapping edits")?);
        out.push_str(&r);
        at = e;
    }
    out.push_str(text.get(at..).unwrap_or(""));
    Ok(out)
}

/// The operators as system items, in the order orders, holds, punctuations.
pub fn operators(p: &Program, ops: &Coordination) -> Vec<String> {
    let mut out = Vec::new();
    let group = |g| p.system.iter().flat_map(|s| s.groups.iter()).find(|x| x.id == g).map_or("?", |x| x.name.as_str());
    for o in &ops.orders {
        out.push(format!("order {};", group(o.group)));
    }
    for h in &ops.holds {
        let cols = columns(p, h.stream, &h.columns);
        out.push(match h.until {
            None => format!("hold {} until sealed on ({cols});", stream(p, h.stream)),
            Some(s) if h.columns.is_empty() => format!("hold {} until {} sealed;", stream(p, h.stream), stream(p, s)),
            Some(s) => format!("hold {} on ({cols}) until {} sealed;", stream(p, h.stream), stream(p, s)),
        });
    }
    for pu in &ops.punctuations {
        let cols = columns(p, pu.to, &pu.columns);
        out.push(format!("punctuate {} on ({cols}) -> {};", stream(p, pu.from), stream(p, pu.to)));
    }
    out
}

fn stream(p: &Program, e: Endpoint) -> String {
    let g = p.system.iter().flat_map(|s| s.groups.iter()).find(|x| x.id == e.group).map_or("?", |x| x.name.as_str());
    format!("{g}.{}", p.collection_name(e.collection))
}

fn columns(p: &Program, e: Endpoint, cols: &[usize]) -> String {
    let c = p.collection(e.collection);
    let names: Vec<&str> =
        cols.iter().filter_map(|&i| c.and_then(|c| c.columns.get(i)).map(|x| x.name.as_str())).collect();
    names.join(", ")
}

/// The seals the analysis used that the program does not declare as such (from `--seal`).
fn seal_args(c: &Compiled<'_>) -> Result<Vec<(Endpoint, Vec<String>)>, String> {
    let Some(a) = c.analysis else { return Ok(Vec::new()) };
    let p = c.program;
    let mut out = Vec::new();
    for d in &a.graph.seals {
        let comp = a.graph.components.get(d.component);
        let name = comp.and_then(|x| x.inputs.get(d.input)).map_or("?", String::as_str);
        let Some(s) = &p.system else {
            return Err(format!("cannot write the seal of `{name}` into a program without a system"));
        };
        let Some(end) = comp.and_then(|x| super::input(p, s, &x.name, name)) else { continue };
        let declared = s.seals.iter().find(|x| x.stream == end);
        let same = declared.is_some_and(|x| {
            let names: Vec<String> = columns(p, end, &x.columns).split(", ").map(str::to_string).collect();
            names == d.key
        });
        if !same {
            out.push((end, d.key.clone()));
        }
    }
    Ok(out)
}

/// `v` as a literal of the language.
fn literal(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Float(x) if !x.is_finite() => return Err(format!("the value {x} has no literal")),
        Value::Float(x) => {
            let s = crate::ops::format_float(*x);
            match s.split_once('e') {
                Some((m, e)) if !m.contains('.') => format!("{m}.0e{e}"),
                _ => s,
            }
        }
        Value::Str(s) => {
            let mut out = String::from("\"");
            for ch in s.chars() {
                match ch {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => {
                        return Err(format!("the string {s:?} has no literal (a control character)"))
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
    })
}
