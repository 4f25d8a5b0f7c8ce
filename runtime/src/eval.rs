//! Scalar expression evaluation over rows: the one definition of what an expression means at
//! run time, shared by the dataflow and by the reference evaluator the tests use.
//!
//! What each operator does is `bloomc_compiler::ops`, which the compiler's constant folding
//! calls too; `unary` and `binary` here only map runtime values to it. Integer overflow and
//! division by zero are evaluation errors: the binding that caused one produces no fact, and
//! the run counts and reports it (never silently).
//!
//! Evaluation recurses over the expression tree. That is safe on a timely worker's stack
//! because the parser refuses any expression deeper than 256 (E0008,
//! `bloomc_grammar::nesting`), and resolution does not deepen the tree;
//! `tests/deep.rs` runs a rule at the limit on one and two workers.

use crate::value::{Float, Row, Value};
use bloomc_compiler::ir::{AggFn, Builtin, Expr, ExprKind};
use bloomc_compiler::ops::{self, OpError, Out};
use bloomc_grammar::ast::{BinaryOp, UnaryOp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalError {
    Overflow,
    DivisionByZero,
    /// A value of the wrong type; resolution rules this out, so it means a bug.
    Type,
}

impl From<OpError> for EvalError {
    #[inline]
    fn from(e: OpError) -> EvalError {
        match e {
            OpError::Overflow => EvalError::Overflow,
            OpError::DivisionByZero => EvalError::DivisionByZero,
            OpError::Type => EvalError::Type,
        }
    }
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EvalError::Overflow => "integer overflow",
            EvalError::DivisionByZero => "division by zero",
            EvalError::Type => "value of the wrong type (internal error)",
        })
    }
}

/// What builtins can see: the node instance, and for generators the row number and seed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ctx {
    pub instance: u32,
    pub row: u64,
    /// The generator's seed mixed with the field's position, so fields draw independently.
    pub seed: u64,
}

/// SplitMix64: a tiny, well-mixed hash used to derive generator values from (seed, row,
/// position), so a generated value never depends on which worker produced it.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

/// The rows a rule body has bound, one per atom.
pub trait Bindings {
    fn get(&self, atom: usize, column: usize) -> Option<&Value>;
}

impl Bindings for [&Row] {
    fn get(&self, atom: usize, column: usize) -> Option<&Value> {
        <[&Row]>::get(self, atom).and_then(|r| r.get(column))
    }
}

/// A binding stored as one flat row: the atoms' columns one after another.
pub struct Flat<'a> {
    pub row: &'a Row,
    pub offsets: &'a [usize],
}

impl Bindings for Flat<'_> {
    fn get(&self, atom: usize, column: usize) -> Option<&Value> {
        self.offsets.get(atom).and_then(|o| self.row.get(o + column))
    }
}

/// Evaluates `e` against the bindings of a rule body. `aggs` supplies the values of
/// aggregate nodes, in the order `collect_aggs` lists them.
pub fn eval<B: Bindings + ?Sized>(e: &Expr, rows: &B, ctx: &Ctx, aggs: &[Value]) -> Result<Value, EvalError> {
    let mut next = 0;
    eval_inner(e, rows, ctx, aggs, &mut next, 0)
}

fn eval_inner<B: Bindings + ?Sized>(
    e: &Expr,
    rows: &B,
    ctx: &Ctx,
    aggs: &[Value],
    next: &mut usize,
    salt: u64,
) -> Result<Value, EvalError> {
    Ok(match &e.kind {
        ExprKind::Lit(v) => Value::from_ir(v),
        ExprKind::Col(c) => rows.get(c.atom, c.column).cloned().ok_or(EvalError::Type)?,
        ExprKind::Unary(op, x) => unary(*op, eval_inner(x, rows, ctx, aggs, next, salt)?)?,
        ExprKind::Binary(op, a, b) => {
            // `and`/`or` short-circuit, as a reader expects.
            let l = eval_inner(a, rows, ctx, aggs, next, salt.wrapping_mul(31).wrapping_add(1))?;
            // A short-circuit skips the right side's aggregates too: the values in `aggs`
            // are positional, and later aggregates must still find theirs.
            if matches!(l, Value::Bool(x) if ops::short_circuits(*op, x)) {
                *next += aggregates_in(b);
                return Ok(l);
            }
            let r = eval_inner(b, rows, ctx, aggs, next, salt.wrapping_mul(31).wrapping_add(2))?;
            binary(*op, l, r)?
        }
        ExprKind::Call(f, args) => {
            let mut vals = Vec::with_capacity(args.len());
            for (i, a) in args.iter().enumerate() {
                vals.push(eval_inner(a, rows, ctx, aggs, next, salt.wrapping_mul(31).wrapping_add(3 + i as u64))?);
            }
            call(*f, &vals, ctx, salt)?
        }
        ExprKind::Agg(..) => {
            let v = aggs.get(*next).cloned().ok_or(EvalError::Type)?;
            *next += 1;
            v
        }
    })
}

fn call(f: Builtin, args: &[Value], ctx: &Ctx, salt: u64) -> Result<Value, EvalError> {
    let draw = || mix(ctx.seed ^ mix(ctx.row ^ mix(salt ^ (u64::from(ctx.instance) << 32))));
    Ok(match (f, args) {
        (Builtin::Instance, []) => Value::Int(i64::from(ctx.instance)),
        (Builtin::Row, []) => Value::Int(i64::try_from(ctx.row).map_err(|_| EvalError::Overflow)?),
        (Builtin::Str, [v]) => Value::Str(v.to_string()),
        (Builtin::Uniform, [Value::Int(lo), Value::Int(hi)]) => {
            if hi <= lo {
                Value::Int(*lo)
            } else {
                let span = hi.abs_diff(*lo);
                let off = draw() % span;
                Value::Int(lo.wrapping_add(off as i64))
            }
        }
        (Builtin::Pick, choices) if !choices.is_empty() => {
            let i = (draw() % choices.len() as u64) as usize;
            choices.get(i).cloned().ok_or(EvalError::Type)?
        }
        _ => return Err(EvalError::Type),
    })
}

/// The value of a unary operator (`bloomc_compiler::ops`).
#[inline]
pub fn unary(op: UnaryOp, v: Value) -> Result<Value, EvalError> {
    Ok(match (op, v) {
        (UnaryOp::Neg, Value::Int(i)) => Value::Int(ops::int_neg(i)?),
        (UnaryOp::Neg, Value::Float(f)) => Value::Float(Float(ops::float_neg(f.0))),
        (UnaryOp::Not, Value::Bool(b)) => Value::Bool(!b),
        _ => return Err(EvalError::Type),
    })
}

/// The value of a binary operator on two values of matching types (`bloomc_compiler::ops`).
#[inline]
pub fn binary(op: BinaryOp, a: Value, b: Value) -> Result<Value, EvalError> {
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => wrap(ops::int(op, x, y)?, Value::Int),
        (Value::Float(x), Value::Float(y)) => wrap(ops::float(op, x.0, y.0)?, |f| Value::Float(Float(f))),
        (Value::Str(x), Value::Str(y)) => wrap(ops::string(op, x, &y)?, Value::Str),
        (Value::Bool(x), Value::Bool(y)) => Value::Bool(ops::boolean(op, x, y)?),
        _ => return Err(EvalError::Type),
    })
}

#[inline]
fn wrap<T>(out: Out<T>, same: impl FnOnce(T) -> Value) -> Value {
    match out {
        Out::Same(v) => same(v),
        Out::Bool(b) => Value::Bool(b),
    }
}

/// How many aggregate nodes `e` holds (counted without collecting them: a short-circuit in
/// `eval_inner` asks on every evaluation).
fn aggregates_in(e: &Expr) -> usize {
    match &e.kind {
        ExprKind::Agg(..) => 1,
        ExprKind::Lit(_) | ExprKind::Col(_) => 0,
        ExprKind::Unary(_, x) => aggregates_in(x),
        ExprKind::Binary(_, a, b) => aggregates_in(a) + aggregates_in(b),
        ExprKind::Call(_, args) => args.iter().map(aggregates_in).sum(),
    }
}

/// The aggregate nodes of `e`, in evaluation order.
pub fn collect_aggs<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &e.kind {
        ExprKind::Agg(..) => out.push(e),
        ExprKind::Lit(_) | ExprKind::Col(_) => {}
        ExprKind::Unary(_, x) => collect_aggs(x, out),
        ExprKind::Binary(_, a, b) => {
            collect_aggs(a, out);
            collect_aggs(b, out);
        }
        ExprKind::Call(_, args) => args.iter().for_each(|a| collect_aggs(a, out)),
    }
}

/// The value of one aggregate over a group's distinct bindings.
pub fn aggregate<B: Bindings>(agg: &Expr, group: &[B], ctx: &Ctx) -> Result<Value, EvalError> {
    let ExprKind::Agg(f, arg) = &agg.kind else { return Err(EvalError::Type) };
    let values = || -> Result<Vec<Value>, EvalError> {
        let arg = arg.as_deref().ok_or(EvalError::Type)?;
        group.iter().map(|rows| eval(arg, rows, ctx, &[])).collect()
    };
    Ok(match f {
        AggFn::Count => Value::Int(i64::try_from(group.len()).map_err(|_| EvalError::Overflow)?),
        AggFn::Sum => {
            let vals = values()?;
            match vals.first() {
                Some(Value::Float(_)) => {
                    let total = vals.iter().map(|v| if let Value::Float(f) = v { f.0 } else { 0.0 }).sum();
                    Value::Float(Float(ops::canonical(total)))
                }
                _ => {
                    // Exact: the total, not a partial sum, must fit (so order never matters).
                    let mut acc: i128 = 0;
                    for v in &vals {
                        let Value::Int(i) = v else { return Err(EvalError::Type) };
                        acc += i128::from(*i);
                    }
                    Value::Int(i64::try_from(acc).map_err(|_| EvalError::Overflow)?)
                }
            }
        }
        AggFn::Min => values()?.into_iter().min().ok_or(EvalError::Type)?,
        AggFn::Max => values()?.into_iter().max().ok_or(EvalError::Type)?,
        AggFn::Avg => {
            let vals = values()?;
            let n = vals.len().max(1) as f64;
            let total: f64 = vals
                .iter()
                .map(|v| match v {
                    Value::Int(i) => *i as f64,
                    Value::Float(f) => f.0,
                    _ => 0.0,
                })
                .sum();
            Value::Float(Float(ops::canonical(total / n)))
        }
    })
}

/// A grouped expression (a `select` item or `having` of an aggregating rule), compiled
/// once so that it evaluates from the group's key values alone: sub-expressions equal to a
/// grouping key read that key's value, and each aggregate reads its position among the
/// values passed in (the order `collect_aggs` lists them). Used where no binding of the
/// group is kept.
#[derive(Debug, Clone)]
pub enum Grouped {
    Key(usize),
    Lit(Value),
    Agg(usize),
    /// A column that is not a grouping key: an error when evaluated.
    Col,
    Unary(UnaryOp, Box<Grouped>),
    Binary(BinaryOp, Box<Grouped>, Box<Grouped>),
    Call(Builtin, Vec<Grouped>),
}

impl Grouped {
    pub fn compile(e: &Expr, keys: &[Expr]) -> Grouped {
        let mut next = 0;
        Grouped::build(e, keys, &mut next)
    }

    fn build(e: &Expr, keys: &[Expr], next: &mut usize) -> Grouped {
        if let Some(i) = keys.iter().position(|k| k.same(e)) {
            return Grouped::Key(i);
        }
        match &e.kind {
            ExprKind::Lit(v) => Grouped::Lit(Value::from_ir(v)),
            ExprKind::Agg(..) => {
                *next += 1;
                Grouped::Agg(*next - 1)
            }
            ExprKind::Col(_) => Grouped::Col,
            ExprKind::Unary(op, x) => Grouped::Unary(*op, Box::new(Grouped::build(x, keys, next))),
            ExprKind::Binary(op, a, b) => {
                let a = Grouped::build(a, keys, next);
                Grouped::Binary(*op, Box::new(a), Box::new(Grouped::build(b, keys, next)))
            }
            ExprKind::Call(f, args) => Grouped::Call(*f, args.iter().map(|a| Grouped::build(a, keys, next)).collect()),
        }
    }

    /// Whether the expression reads a grouping key.
    pub fn reads_key(&self) -> bool {
        match self {
            Grouped::Key(_) => true,
            Grouped::Lit(_) | Grouped::Agg(_) | Grouped::Col => false,
            Grouped::Unary(_, x) => x.reads_key(),
            Grouped::Binary(_, a, b) => a.reads_key() || b.reads_key(),
            Grouped::Call(_, args) => args.iter().any(Grouped::reads_key),
        }
    }

    pub fn eval(&self, key_values: &Row, ctx: &Ctx, aggs: &[Value]) -> Result<Value, EvalError> {
        Ok(match self {
            Grouped::Key(i) => key_values.get(*i).cloned().ok_or(EvalError::Type)?,
            Grouped::Lit(v) => v.clone(),
            Grouped::Agg(i) => aggs.get(*i).cloned().ok_or(EvalError::Type)?,
            Grouped::Col => return Err(EvalError::Type),
            Grouped::Unary(op, x) => unary(*op, x.eval(key_values, ctx, aggs)?)?,
            Grouped::Binary(op, a, b) => {
                // Aggregates have fixed positions, so a short-circuit needs no bookkeeping.
                let l = a.eval(key_values, ctx, aggs)?;
                if matches!(l, Value::Bool(x) if ops::short_circuits(*op, x)) {
                    return Ok(l);
                }
                binary(*op, l, b.eval(key_values, ctx, aggs)?)?
            }
            Grouped::Call(f, args) => {
                let vals: Result<Vec<Value>, EvalError> = args.iter().map(|a| a.eval(key_values, ctx, aggs)).collect();
                call(*f, &vals?, ctx, 0)?
            }
        })
    }
}
