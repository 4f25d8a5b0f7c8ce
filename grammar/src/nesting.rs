//! The bound on how deep the parser's tree may be. Every later stage (the resolver, constant
//! folding, the IR dump, the runtime's evaluator, `Drop` of the boxes) walks expressions and
//! `when` blocks recursively, so the front end refuses input that would nest them deeper than
//! [`MAX_DEPTH`], with an error at the place where the limit is passed (E0008), and never
//! builds such a tree: the recursion of every stage is bounded by the limit, not the input.
//!
//! Two checks, both linear:
//! - [`scan`], before parsing: `(`, `[` and `{` nest at most [`MAX_DEPTH`] deep, and no run
//!   of `not` and `-` is longer than `MAX_DEPTH` (such a run nests a unary operator per
//!   token but perhaps the first, above an operand, so it could never pass the second check). This bounds
//!   the nesting of `when` blocks (each has braces), parentheses and calls, and the parser's
//!   own stack (a `Vec`, not recursion), which grows with brackets and prefix operators and
//!   would otherwise take hundreds of megabytes for a million of them. A file that fails it
//!   is not parsed at all.
//! - [`Nesting`], while parsing: each expression's depth (an operator chain `1 + 1 + ... + 1`
//!   is a tree as deep as it is long, and so is `not not ... x`) is computed bottom up from
//!   its children's, kept in a table by span. An expression past the limit is replaced by an
//!   error node, so the tree stays shallow and one error is reported per offending expression.

use crate::ast::{Expr, ExprKind};
use crate::span::Span;
use crate::token::{Lexer, Tok};
use std::collections::HashMap;

/// How deep expressions, `when` blocks and brackets may nest.
pub const MAX_DEPTH: u32 = 256;

/// The depth of each expression built so far, by span, and where the limit was passed.
#[derive(Default)]
pub struct Nesting {
    depths: HashMap<(u32, u32), u32>,
    pub exceeded: Vec<Span>,
}

/// The depth recorded for a node replaced because it was too deep: its parents are too deep
/// as well, and are replaced without another error.
const POISONED: u32 = MAX_DEPTH + 1;

impl Nesting {
    fn depth(&self, span: Span) -> u32 {
        self.depths.get(&(span.start, span.end)).copied().unwrap_or(1)
    }

    /// Records expression `e`; returns it, or an error node in its place when it is deeper
    /// than the limit. `at` (its operator, say) is where the error points.
    pub fn expr(&mut self, e: Expr, at: Span) -> Expr {
        let deepest = match &e.kind {
            ExprKind::Unary { operand, .. } => self.depth(operand.span),
            ExprKind::Binary { lhs, rhs, .. } => self.depth(lhs.span).max(self.depth(rhs.span)),
            ExprKind::Call { args, .. } => args.iter().map(|a| self.depth(a.span)).max().unwrap_or(0),
            // A leaf is not recorded: a span not in the table has depth 1.
            _ => return e,
        };
        if self.record(e.span, deepest, at) {
            e
        } else {
            // `e` is dropped here, at most `MAX_DEPTH` deep.
            Expr { kind: ExprKind::Error, span: e.span }
        }
    }

    fn record(&mut self, span: Span, deepest_child: u32, at: Span) -> bool {
        let depth = deepest_child.saturating_add(1);
        if depth <= MAX_DEPTH {
            self.depths.insert((span.start, span.end), depth);
            return true;
        }
        if deepest_child < POISONED {
            self.exceeded.push(at);
        }
        self.depths.insert((span.start, span.end), POISONED);
        false
    }
}

/// What the scan before parsing found nested too deeply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deep {
    Brackets,
    Prefix,
}

/// The first bracket that opens deeper than [`MAX_DEPTH`], or the `not` or `-` that makes a
/// run longer than `MAX_DEPTH`, with its byte range, if any.
pub fn scan(src: &str) -> Option<(Deep, usize, usize)> {
    let (mut depth, mut run) = (0u32, 0u32);
    for (start, tok, end) in Lexer::new(src).flatten() {
        run = if matches!(tok, Tok::Not | Tok::Minus) { run + 1 } else { 0 };
        if run > MAX_DEPTH {
            return Some((Deep::Prefix, start, end));
        }
        match tok {
            Tok::LParen | Tok::LBracket | Tok::LBrace => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some((Deep::Brackets, start, end));
                }
            }
            Tok::RParen | Tok::RBracket | Tok::RBrace => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}
