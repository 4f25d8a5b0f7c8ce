//! The bloomc front end: a logos lexer, a lalrpop grammar and the AST they produce.
//!
//! The generated parser hides behind [`parse`]. The parser never fails: it returns the tree
//! (with `Error` nodes where it recovered) and the list of every syntax error it met. No
//! tree nests deeper than `nesting::MAX_DEPTH`: deeper input is a syntax error (E0008).

pub mod ast;
pub mod nesting;
pub mod span;
pub mod token;

#[allow(clippy::all, clippy::pedantic, clippy::indexing_slicing, clippy::unwrap_used, unused_parens, dead_code)]
mod generated {
    lalrpop_util::lalrpop_mod!(pub grammar);
}

use lalrpop_util::ParseError;
use span::{FileId, Span};
use token::{LexErrorKind, Lexer, Tok};

/// Why the text at `span` is not part of a valid program.
#[derive(Debug, Clone, PartialEq)]
pub enum SyntaxErrorKind {
    Lex(LexErrorKind),
    /// An unexpected token; `expected` lists what the grammar would have accepted.
    Unexpected {
        found: String,
        expected: Vec<String>,
    },
    UnexpectedEof {
        expected: Vec<String>,
    },
    /// Brackets or a run of prefix operators (found before parsing: `before` holds which),
    /// or an expression, nest deeper than `nesting::MAX_DEPTH`; the span is the bracket or
    /// operator where the limit is passed.
    TooDeep {
        before: Option<nesting::Deep>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub kind: SyntaxErrorKind,
    pub span: Span,
}

/// Parses one source file. Always returns a tree; `errors` is empty iff the text is valid.
pub fn parse(file: FileId, src: &str) -> (ast::SourceFile, Vec<SyntaxError>) {
    if let Some(e) = too_deep_brackets(file, src) {
        return (ast::SourceFile { items: Vec::new() }, vec![e]);
    }
    let mut lexer = Lexer::new(src);
    let mut recovered = Vec::new();
    let mut nest = nesting::Nesting::default();
    let result = generated::grammar::SourceFileParser::new().parse(file, &mut recovered, &mut nest, &mut lexer);
    let mut errors: Vec<SyntaxError> = lexer
        .errors
        .iter()
        .map(|e| SyntaxError { kind: SyntaxErrorKind::Lex(e.kind.clone()), span: Span::new(file, e.start, e.end) })
        .collect();
    errors.extend(recovered.into_iter().map(|r| convert(file, src, r.error)));
    errors.extend(too_deep(&nest));
    let tree = match result {
        Ok(tree) => tree,
        Err(e) => {
            errors.push(convert(file, src, e));
            ast::SourceFile { items: Vec::new() }
        }
    };
    errors.sort_by_key(|e| (e.span.start, e.span.end));
    errors.dedup();
    (tree, errors)
}

/// Parses a standalone expression, as used by `--set name=value` on the command line.
pub fn parse_expr(file: FileId, src: &str) -> Result<ast::Expr, Vec<SyntaxError>> {
    if let Some(e) = too_deep_brackets(file, src) {
        return Err(vec![e]);
    }
    let mut lexer = Lexer::new(src);
    let mut recovered = Vec::new();
    let mut nest = nesting::Nesting::default();
    let result = generated::grammar::ExprParser::new().parse(file, &mut recovered, &mut nest, &mut lexer);
    let mut errors: Vec<SyntaxError> = lexer
        .errors
        .iter()
        .map(|e| SyntaxError { kind: SyntaxErrorKind::Lex(e.kind.clone()), span: Span::new(file, e.start, e.end) })
        .collect();
    errors.extend(recovered.into_iter().map(|r| convert(file, src, r.error)));
    errors.extend(too_deep(&nest));
    match result {
        Ok(e) if errors.is_empty() => Ok(e),
        Ok(_) => Err(errors),
        Err(e) => {
            errors.push(convert(file, src, e));
            Err(errors)
        }
    }
}

/// The error for brackets or prefix operators nested too deeply, if they are: such a file is
/// not parsed.
fn too_deep_brackets(file: FileId, src: &str) -> Option<SyntaxError> {
    let (what, start, end) = nesting::scan(src)?;
    Some(SyntaxError { kind: SyntaxErrorKind::TooDeep { before: Some(what) }, span: Span::new(file, start, end) })
}

/// The errors for expressions the parser replaced because they nest too deeply.
fn too_deep(nest: &nesting::Nesting) -> impl Iterator<Item = SyntaxError> + '_ {
    nest.exceeded.iter().map(|&span| SyntaxError { kind: SyntaxErrorKind::TooDeep { before: None }, span })
}

fn convert(file: FileId, src: &str, e: ParseError<usize, Tok<'_>, std::convert::Infallible>) -> SyntaxError {
    match e {
        ParseError::InvalidToken { location } => SyntaxError {
            kind: SyntaxErrorKind::Lex(LexErrorKind::UnknownCharacter),
            span: Span::new(file, location, location + 1),
        },
        ParseError::UnrecognizedEof { location, expected } => {
            // Point at the last character rather than past the end so renderers show a line.
            let at = location.min(src.len());
            let start = src[..at].char_indices().next_back().map_or(0, |(i, _)| i);
            SyntaxError {
                kind: SyntaxErrorKind::UnexpectedEof { expected: tidy(expected) },
                span: Span::new(file, start, at),
            }
        }
        ParseError::UnrecognizedToken { token: (l, tok, r), expected } => SyntaxError {
            kind: SyntaxErrorKind::Unexpected { found: tok.describe(), expected: tidy(expected) },
            span: Span::new(file, l, r),
        },
        ParseError::ExtraToken { token: (l, tok, r) } => SyntaxError {
            kind: SyntaxErrorKind::Unexpected { found: tok.describe(), expected: Vec::new() },
            span: Span::new(file, l, r),
        },
        ParseError::User { error } => match error {},
    }
}

/// Turns lalrpop's terminal names (`"\"module\""`, `IDENT`) into readable ones.
fn tidy(expected: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = expected
        .into_iter()
        .map(|t| match t.as_str() {
            "IDENT" => "identifier".to_string(),
            "INT" => "integer".to_string(),
            "FLOAT" => "number".to_string(),
            "STR" => "string".to_string(),
            other => format!("`{}`", other.trim_matches('"')),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
