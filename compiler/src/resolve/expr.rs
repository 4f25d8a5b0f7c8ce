//! Typing of expressions: rule bodies, generator fields and constant contexts share one
//! checker, parameterised by what the context allows.

use super::Resolver;
use crate::aggregates::Argument;
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::ir::{AggFn, Builtin, ColRef, Collection, Expr, ExprKind, Type, Value};
use crate::ops::{self, OpError};
use bloomc_grammar::ast::{self, BinaryOp, UnaryOp};
use bloomc_grammar::span::Span;

/// What an expression may refer to.
pub struct Ctx<'a> {
    /// Aliases in scope and the collection each binds (rule bodies only).
    pub scope: &'a [(String, &'a Collection)],
    /// Aggregates are allowed (the `select` and `having` of an aggregating rule).
    pub aggregates: bool,
    /// Generator functions (`row`, `uniform`, `pick`) are allowed.
    pub generator: bool,
    /// `instance()` is allowed (rules and generators, not constants).
    pub runtime: bool,
    /// Describes the context in "not allowed here" messages.
    pub what: &'static str,
}

impl<'a> Ctx<'a> {
    pub fn constant(what: &'static str) -> Ctx<'static> {
        Ctx { scope: &[], aggregates: false, generator: false, runtime: false, what }
    }
}

impl Resolver<'_> {
    /// Types and evaluates a constant expression (`what` names it in errors: "a parameter's
    /// default").
    pub(crate) fn constant(&mut self, e: &ast::Expr, what: &'static str) -> Option<Value> {
        let ctx = Ctx::constant(what);
        let typed = self.expr(e, &ctx)?;
        match eval(&typed) {
            Ok(v) => Some(v),
            Err(why) => {
                self.report(Diagnostic::new(
                    Code::NotConstant,
                    format!("cannot evaluate {}: {why}", ctx.what),
                    e.span,
                    why,
                ));
                None
            }
        }
    }

    /// Types `e`; reports problems and returns `None` so callers do not cascade.
    pub(super) fn expr(&mut self, e: &ast::Expr, ctx: &Ctx<'_>) -> Option<Expr> {
        let span = e.span;
        let (kind, ty) = match &e.kind {
            ast::ExprKind::Int(i) => (ExprKind::Lit(Value::Int(*i)), Type::Int),
            ast::ExprKind::Float(x) => (ExprKind::Lit(Value::Float(*x)), Type::Float),
            ast::ExprKind::Str(s) => (ExprKind::Lit(Value::Str(s.clone())), Type::String),
            ast::ExprKind::Bool(b) => (ExprKind::Lit(Value::Bool(*b)), Type::Bool),
            ast::ExprKind::Name(name) => {
                let value = self.param_value(name)?;
                let ty = value.ty();
                (ExprKind::Lit(value), ty)
            }
            ast::ExprKind::Column { alias, column } => {
                let (col, ty) = self.column(alias, column, ctx)?;
                (ExprKind::Col(col), ty)
            }
            ast::ExprKind::Star => {
                self.report(
                    Diagnostic::new(Code::UnexpectedToken, "`*` is only allowed as `count(*)`", span, "not a value")
                        .with_help("write `count(*)`, or name a column"),
                );
                return None;
            }
            ast::ExprKind::Unary { op, operand } => {
                let inner = self.expr(operand, ctx)?;
                let ty = match (op, inner.ty) {
                    (UnaryOp::Neg, Type::Int | Type::Float) => inner.ty,
                    (UnaryOp::Not, Type::Bool) => Type::Bool,
                    (UnaryOp::Neg, t) => {
                        return self.type_error(
                            span,
                            &format!("cannot negate a value of type {t}"),
                            "a number is needed here",
                        )
                    }
                    (UnaryOp::Not, t) => {
                        return self.type_error(
                            span,
                            &format!("`not` needs a bool, found {t}"),
                            "a bool is needed here",
                        )
                    }
                };
                (ExprKind::Unary(*op, Box::new(inner)), ty)
            }
            ast::ExprKind::Binary { op, lhs, rhs } => {
                let l = self.expr(lhs, ctx);
                let r = self.expr(rhs, ctx);
                let (l, r) = (l?, r?);
                let ty = self.binary_type(*op, &l, &r, span)?;
                (ExprKind::Binary(*op, Box::new(l), Box::new(r)), ty)
            }
            ast::ExprKind::Call { func, args } => return self.call(func, args, span, ctx),
            // Only in a tree with a syntax error (E0008), which is never resolved.
            ast::ExprKind::Error => return None,
        };
        Some(Expr { kind, ty, span })
    }

    fn type_error<T>(&mut self, span: Span, message: &str, label: &str) -> Option<T> {
        self.report(Diagnostic::new(Code::TypeMismatch, message, span, label));
        None
    }

    fn binary_type(&mut self, op: BinaryOp, l: &Expr, r: &Expr, span: Span) -> Option<Type> {
        use BinaryOp::*;
        let numeric = |t: Type| matches!(t, Type::Int | Type::Float);
        let ok = match op {
            Add => l.ty == r.ty && (numeric(l.ty) || l.ty == Type::String),
            Sub | Mul | Div | Rem => l.ty == r.ty && numeric(l.ty),
            Eq | Ne => l.ty == r.ty,
            Lt | Le | Gt | Ge => l.ty == r.ty && l.ty != Type::Bool,
            And | Or => l.ty == Type::Bool && r.ty == Type::Bool,
        };
        if !ok {
            let mut d = Diagnostic::new(
                Code::TypeMismatch,
                format!("`{}` cannot combine {} and {}", op.symbol(), l.ty, r.ty),
                span,
                format!("{} {} {}", l.ty, op.symbol(), r.ty),
            )
            .with_label(l.span, format!("this is {}", l.ty))
            .with_label(r.span, format!("this is {}", r.ty));
            d = d.with_help(match op {
                And | Or => "both sides of `and`/`or` must be bool".to_string(),
                Add => "`+` adds two numbers of one type or joins two strings; use str(..) to turn a value into text"
                    .to_string(),
                _ if l.ty != r.ty => "both sides must have the same type; bloomc never converts implicitly".to_string(),
                _ => format!("`{}` is not defined for {}", op.symbol(), l.ty),
            });
            self.report(d);
            return None;
        }
        Some(match op {
            Add | Sub | Mul | Div | Rem => l.ty,
            _ => Type::Bool,
        })
    }

    fn column(&mut self, alias: &ast::Ident, column: &ast::Ident, ctx: &Ctx<'_>) -> Option<(ColRef, Type)> {
        if ctx.scope.is_empty() {
            self.report(
                Diagnostic::new(
                    Code::NotConstant,
                    format!("column `{}.{}` used in {}", alias.name, column.name, ctx.what),
                    alias.span.to(column.span),
                    "columns are not available here",
                )
                .with_help(format!("{} may only use literals, parameters and operators", ctx.what)),
            );
            return None;
        }
        let Some(atom) = ctx.scope.iter().position(|(a, _)| *a == alias.name) else {
            let mut d = Diagnostic::new(
                Code::UnknownAlias,
                format!("no binding named `{}` in this rule", alias.name),
                alias.span,
                "unknown alias",
            );
            let names: Vec<&str> = ctx.scope.iter().map(|(a, _)| a.as_str()).collect();
            d = d.with_help(match did_you_mean(&alias.name, names.iter().copied()) {
                Some(s) => s,
                None => format!("bindings in scope: {}", names.join(", ")),
            });
            self.report(d);
            return None;
        };
        let coll = ctx.scope.get(atom)?.1;
        let Some(index) = coll.column_index(&column.name) else {
            let names: Vec<&str> = coll.columns.iter().map(|c| c.name.as_str()).collect();
            let d = Diagnostic::new(
                Code::UnknownColumn,
                format!("`{}` has no column `{}`", coll.name, column.name),
                column.span,
                "unknown column",
            )
            .with_label(coll.span, format!("`{}` is declared here", coll.name))
            .with_help(match did_you_mean(&column.name, names.iter().copied()) {
                Some(s) => s,
                None => format!("its columns are: {}", names.join(", ")),
            });
            self.report(d);
            return None;
        };
        let ty = coll.columns.get(index)?.ty;
        Some((ColRef { atom, column: index }, ty))
    }

    fn call(&mut self, func: &ast::Ident, args: &[ast::Expr], span: Span, ctx: &Ctx<'_>) -> Option<Expr> {
        if let Some(agg) = AggFn::from_name(&func.name) {
            return self.aggregate(agg, func, args, span, ctx);
        }
        let builtin = match func.name.as_str() {
            "instance" => Builtin::Instance,
            "str" => Builtin::Str,
            "row" => Builtin::Row,
            "uniform" => Builtin::Uniform,
            "pick" => Builtin::Pick,
            _ => {
                let known = ["count", "sum", "min", "max", "avg", "instance", "str", "row", "uniform", "pick"];
                let help = did_you_mean(&func.name, known)
                    .unwrap_or_else(|| format!("the functions are: {}", known.join(", ")));
                self.report(
                    Diagnostic::new(
                        Code::UnknownFunction,
                        format!("unknown function `{}`", func.name),
                        func.span,
                        "not a function",
                    )
                    .with_help(help),
                );
                return None;
            }
        };
        let allowed = match builtin {
            Builtin::Str => true,
            Builtin::Instance => ctx.runtime,
            Builtin::Row | Builtin::Uniform | Builtin::Pick => ctx.generator,
        };
        if !allowed {
            self.report(
                Diagnostic::new(
                    Code::UnknownFunction,
                    format!("`{}()` cannot be used in {}", func.name, ctx.what),
                    func.span,
                    "not available here",
                )
                .with_help(match builtin {
                    Builtin::Instance => "instance() is known only when a node runs: use it in rules or generators",
                    _ => "row(), uniform() and pick() exist only in the fields of `generate { .. }`",
                }),
            );
            return None;
        }
        let typed: Vec<Option<Expr>> = args.iter().map(|a| self.expr(a, ctx)).collect();
        let typed: Vec<Expr> = typed.into_iter().collect::<Option<_>>()?;
        let arity_ok = match builtin {
            Builtin::Instance | Builtin::Row => typed.is_empty(),
            Builtin::Str => typed.len() == 1,
            Builtin::Uniform => typed.len() == 2,
            Builtin::Pick => !typed.is_empty(),
        };
        if !arity_ok {
            let want = match builtin {
                Builtin::Instance | Builtin::Row => "no arguments",
                Builtin::Str => "one argument",
                Builtin::Uniform => "two arguments (lo, hi)",
                Builtin::Pick => "at least one argument",
            };
            self.report(Diagnostic::new(
                Code::UnknownFunction,
                format!("`{}` takes {want}, found {}", func.name, typed.len()),
                span,
                "wrong number of arguments",
            ));
            return None;
        }
        let ty = match builtin {
            Builtin::Instance | Builtin::Row => Type::Int,
            Builtin::Str => Type::String,
            Builtin::Uniform => {
                for a in &typed {
                    if a.ty != Type::Int {
                        return self.type_error(
                            a.span,
                            &format!("uniform() bounds must be int, found {}", a.ty),
                            "expected int",
                        );
                    }
                }
                Type::Int
            }
            Builtin::Pick => {
                let first = typed.first()?.ty;
                if let Some(bad) = typed.iter().find(|a| a.ty != first) {
                    return self.type_error(
                        bad.span,
                        &format!("pick() choices must share one type: {first} and {}", bad.ty),
                        "different type",
                    );
                }
                first
            }
        };
        Some(Expr { kind: ExprKind::Call(builtin, typed), ty, span })
    }

    fn aggregate(
        &mut self,
        agg: AggFn,
        func: &ast::Ident,
        args: &[ast::Expr],
        span: Span,
        ctx: &Ctx<'_>,
    ) -> Option<Expr> {
        if !ctx.aggregates {
            self.report(
                Diagnostic::new(
                    Code::AggregateMisuse,
                    format!("aggregate `{}` used in {}", agg.name(), ctx.what),
                    span,
                    "aggregates are not allowed here",
                )
                .with_help(
                    "aggregates belong in the `select` or `having` clause of a rule; filter their result with `having`",
                ),
            );
            return None;
        }
        let [arg] = args else {
            self.report(Diagnostic::new(
                Code::UnknownFunction,
                format!("`{}` takes exactly one argument, found {}", func.name, args.len()),
                span,
                "wrong number of arguments",
            ));
            return None;
        };
        let facts = agg.facts();
        if matches!(arg.kind, ast::ExprKind::Star) {
            if !facts.takes_star {
                return self.type_error(
                    arg.span,
                    &format!("`{}(*)` is meaningless: only count takes `*`", agg.name()),
                    "name a column",
                );
            }
            return Some(Expr { kind: ExprKind::Agg(agg, None), ty: facts.result(None), span });
        }
        let inner_ctx = Ctx {
            scope: ctx.scope,
            aggregates: false,
            generator: false,
            runtime: ctx.runtime,
            what: "an aggregate's argument",
        };
        let inner = self.expr(arg, &inner_ctx)?;
        if !facts.accepts(inner.ty) {
            let (message, label) = match facts.argument {
                Argument::Number => ("needs numbers", "not a number"),
                Argument::Ordered | Argument::Anything => ("needs an ordered type", "bool has no order here"),
            };
            return self.type_error(inner.span, &format!("{}() {message}, found {}", agg.name(), inner.ty), label);
        }
        let ty = facts.result(Some(inner.ty));
        Some(Expr { kind: ExprKind::Agg(agg, Some(Box::new(inner))), ty, span })
    }
}

/// Evaluates a constant expression (literals, folded parameters, operators, `str`), with the
/// operator semantics of `crate::ops`, as the runtime evaluates it: `and` and `or`
/// short-circuit.
pub fn eval(e: &Expr) -> Result<Value, String> {
    Ok(match &e.kind {
        ExprKind::Lit(v) => v.clone(),
        ExprKind::Unary(op, x) => unary(*op, eval(x)?)?,
        ExprKind::Binary(op, a, b) => match eval(a)? {
            Value::Bool(l) if ops::short_circuits(*op, l) => Value::Bool(l),
            l => binary(*op, l, eval(b)?)?,
        },
        ExprKind::Call(Builtin::Str, args) => match args.first() {
            Some(a) => Value::Str(match eval(a)? {
                Value::Str(s) => s,
                v => v.to_string(),
            }),
            None => return Err("str() takes one argument".into()),
        },
        ExprKind::Col(_) | ExprKind::Call(..) | ExprKind::Agg(..) => return Err("not a constant".into()),
    })
}

/// The value of a unary operator (`crate::ops`).
pub fn unary(op: UnaryOp, v: Value) -> Result<Value, String> {
    Ok(match (op, v) {
        (UnaryOp::Neg, Value::Int(i)) => Value::Int(ops::int_neg(i).map_err(|e| e.to_string())?),
        (UnaryOp::Neg, Value::Float(f)) => Value::Float(ops::float_neg(f)),
        (UnaryOp::Not, Value::Bool(b)) => Value::Bool(!b),
        (UnaryOp::Neg, _) => return Err("cannot negate".into()),
        (UnaryOp::Not, _) => return Err("`not` needs a bool".into()),
    })
}

/// The value of a binary operator on two values of matching types (`crate::ops`).
pub fn binary(op: BinaryOp, a: Value, b: Value) -> Result<Value, String> {
    let (ta, tb) = (a.ty(), b.ty());
    let out = match (a, b) {
        (Value::Int(x), Value::Int(y)) => ops::int(op, x, y).map(|o| wrap(o, Value::Int)),
        (Value::Float(x), Value::Float(y)) => ops::float(op, x, y).map(|o| wrap(o, Value::Float)),
        (Value::Str(x), Value::Str(y)) => ops::string(op, x, &y).map(|o| wrap(o, Value::Str)),
        (Value::Bool(x), Value::Bool(y)) => ops::boolean(op, x, y).map(Value::Bool),
        _ => Err(OpError::Type),
    };
    out.map_err(|e| match e {
        OpError::Type => format!("`{}` is not defined for {ta} and {tb}", op.symbol()),
        e => e.to_string(),
    })
}

fn wrap<T>(out: ops::Out<T>, same: fn(T) -> Value) -> Value {
    match out {
        ops::Out::Same(v) => same(v),
        ops::Out::Bool(b) => Value::Bool(b),
    }
}
