//! One meaning per operator: random constant expressions evaluated by the compiler's constant
//! folding (`bloomc_compiler::resolve::expr::eval`, what a `param` default or a `when`
//! condition gets) and by the runtime's evaluator (`bloomc_runtime::eval::eval`, what a
//! rule's `where` and head get) must give the same value, bit for bit, or the same error;
//! and the edge cases docs/language.md (section 6.3, "Operator semantics") states.

use bloomc_compiler::ir::{self, Builtin, Expr, ExprKind, Type};
use bloomc_compiler::resolve::expr::eval as fold;
use bloomc_grammar::ast::{BinaryOp, UnaryOp};
use bloomc_grammar::span::{FileId, Span};
use bloomc_runtime::eval::{eval, Ctx};
use bloomc_runtime::value::{Row, Value};
use proptest::prelude::*;

fn node(kind: ExprKind, ty: Type) -> Expr {
    Expr { kind, ty, span: Span::new(FileId(0), 0, 0) }
}

fn lit(v: ir::Value) -> Expr {
    let ty = v.ty();
    node(ExprKind::Lit(v), ty)
}

fn un(op: UnaryOp, e: Expr) -> Expr {
    let ty = e.ty;
    node(ExprKind::Unary(op, Box::new(e)), ty)
}

fn bin(op: BinaryOp, a: Expr, b: Expr) -> Expr {
    use BinaryOp::*;
    let ty = match op {
        Add | Sub | Mul | Div | Rem => a.ty,
        _ => Type::Bool,
    };
    node(ExprKind::Binary(op, Box::new(a), Box::new(b)), ty)
}

fn str_of(e: Expr) -> Expr {
    node(ExprKind::Call(Builtin::Str, vec![e]), Type::String)
}

/// Evaluates `e` both ways; fails the test unless they agree, and returns the common result
/// (an error as its message).
fn both(e: &Expr) -> Result<Value, String> {
    let compiled = fold(e).map(|v| Value::from_ir(&v));
    let rows: &[&Row] = &[];
    let ran = eval(e, rows, &Ctx::default(), &[]).map_err(|err| err.to_string());
    assert_eq!(compiled, ran, "the compiler and the runtime disagree on {e:?}");
    compiled
}

const TYPES: [Type; 4] = [Type::Int, Type::Float, Type::String, Type::Bool];

fn leaf(ty: Type) -> BoxedStrategy<Expr> {
    match ty {
        Type::Int => prop_oneof![
            -4i64..=4,
            any::<i64>(),
            prop::sample::select(vec![i64::MIN, i64::MAX, i64::MIN + 1, -1, 0, 1 << 32]),
        ]
        .prop_map(|i| lit(ir::Value::Int(i)))
        .boxed(),
        Type::Float => prop_oneof![
            prop::sample::select(vec![
                0.0,
                -0.0,
                f64::NAN,
                -f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                1e20,
                0.1,
                -7.5,
                2.0,
                1.0,
                f64::MAX,
                f64::MIN_POSITIVE,
            ]),
            (-4i32..=4).prop_map(f64::from),
            any::<f64>(),
        ]
        .prop_map(|x| lit(ir::Value::Float(x)))
        .boxed(),
        Type::String => "[ab\u{e9}]{0,3}".prop_map(|s| lit(ir::Value::Str(s))).boxed(),
        Type::Bool => any::<bool>().prop_map(|b| lit(ir::Value::Bool(b))).boxed(),
    }
}

fn pick(ops: &[BinaryOp]) -> impl Strategy<Value = BinaryOp> {
    prop::sample::select(ops.to_vec())
}

/// Expressions of each type (in the order of `TYPES`) nesting at most `depth` deep.
fn exprs(depth: u32) -> [BoxedStrategy<Expr>; 4] {
    use BinaryOp::*;
    let mut level = TYPES.map(leaf);
    for _ in 0..depth {
        let [i, f, s, b] = level.clone();
        let arith = [Add, Sub, Mul, Div, Rem];
        let cmp = [Eq, Ne, Lt, Le, Gt, Ge];
        let num = |x: BoxedStrategy<Expr>, ty: Type| -> BoxedStrategy<Expr> {
            prop_oneof![
                leaf(ty),
                x.clone().prop_map(|e| un(UnaryOp::Neg, e)),
                (pick(&arith), x.clone(), x).prop_map(|(op, a, b)| bin(op, a, b)),
            ]
            .boxed()
        };
        let any_type = prop_oneof![i.clone(), f.clone(), s.clone(), b.clone()];
        let string = prop_oneof![
            leaf(Type::String),
            any_type.prop_map(str_of),
            (s.clone(), s.clone()).prop_map(|(a, b)| bin(Add, a, b)),
        ]
        .boxed();
        let boolean = prop_oneof![
            leaf(Type::Bool),
            b.clone().prop_map(|e| un(UnaryOp::Not, e)),
            (pick(&[And, Or, Eq, Ne]), b.clone(), b).prop_map(|(op, x, y)| bin(op, x, y)),
            (pick(&cmp), i.clone(), i.clone()).prop_map(|(op, x, y)| bin(op, x, y)),
            (pick(&cmp), f.clone(), f.clone()).prop_map(|(op, x, y)| bin(op, x, y)),
            (pick(&cmp), s.clone(), s).prop_map(|(op, x, y)| bin(op, x, y)),
        ]
        .boxed();
        level = [num(i, Type::Int), num(f, Type::Float), string, boolean];
    }
    level
}

fn any_expr() -> impl Strategy<Value = Expr> {
    let [i, f, s, b] = exprs(4);
    prop_oneof![i, f, s, b]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn the_compiler_and_the_runtime_agree(e in any_expr()) {
        let _ = both(&e);
    }
}

fn int(i: i64) -> Expr {
    if i < 0 {
        // As the parser builds it: there are no negative literals.
        match i.checked_neg() {
            Some(n) => un(UnaryOp::Neg, lit(ir::Value::Int(n))),
            None => lit(ir::Value::Int(i)),
        }
    } else {
        lit(ir::Value::Int(i))
    }
}

fn float(x: f64) -> Expr {
    lit(ir::Value::Float(x))
}

fn ok(v: Value) -> Result<Value, String> {
    Ok(v)
}

#[test]
fn integer_division_truncates_toward_zero() {
    assert_eq!(both(&bin(BinaryOp::Div, int(7), int(-2))), ok(Value::Int(-3)));
    assert_eq!(both(&bin(BinaryOp::Div, int(-7), int(2))), ok(Value::Int(-3)));
    assert_eq!(both(&bin(BinaryOp::Rem, int(-7), int(2))), ok(Value::Int(-1)));
    assert_eq!(both(&bin(BinaryOp::Rem, int(7), int(-2))), ok(Value::Int(1)));
}

#[test]
fn integer_errors() {
    let overflow = Err("integer overflow".to_string());
    assert_eq!(both(&bin(BinaryOp::Div, int(i64::MIN), int(-1))), overflow);
    assert_eq!(both(&bin(BinaryOp::Rem, int(i64::MIN), int(-1))), overflow);
    assert_eq!(both(&bin(BinaryOp::Add, int(i64::MAX), int(1))), overflow);
    assert_eq!(both(&un(UnaryOp::Neg, int(i64::MIN))), overflow);
    assert_eq!(both(&bin(BinaryOp::Div, int(1), int(0))), Err("division by zero".to_string()));
    assert_eq!(both(&bin(BinaryOp::Rem, int(1), int(0))), Err("division by zero".to_string()));
}

#[test]
fn float_equality_is_the_total_order() {
    let t = ok(Value::Bool(true));
    let f = ok(Value::Bool(false));
    let neg_zero = un(UnaryOp::Neg, float(0.0));
    assert_eq!(both(&bin(BinaryOp::Eq, float(0.0), neg_zero.clone())), f);
    assert_eq!(both(&bin(BinaryOp::Lt, neg_zero, float(0.0))), t);
    let nan = || bin(BinaryOp::Div, float(0.0), float(0.0));
    assert_eq!(both(&bin(BinaryOp::Eq, nan(), nan())), t);
    assert_eq!(both(&bin(BinaryOp::Eq, nan(), un(UnaryOp::Neg, nan()))), t);
    assert_eq!(both(&bin(BinaryOp::Gt, nan(), bin(BinaryOp::Div, float(1.0), float(0.0)))), t);
    assert_eq!(
        both(&bin(BinaryOp::Rem, float(-7.5), float(2.0))),
        ok(Value::Float(bloomc_runtime::value::Float(-1.5)))
    );
}

#[test]
fn and_or_short_circuit() {
    let fails = bin(BinaryOp::Eq, bin(BinaryOp::Div, int(1), int(0)), int(1));
    let no = lit(ir::Value::Bool(false));
    assert_eq!(both(&bin(BinaryOp::And, no.clone(), fails.clone())), ok(Value::Bool(false)));
    assert_eq!(both(&bin(BinaryOp::Or, no, fails)), Err("division by zero".to_string()));
}

#[test]
fn floats_print() {
    let shown = |e: Expr| match both(&str_of(e)) {
        Ok(Value::Str(s)) => s,
        other => panic!("str() gave {other:?}"),
    };
    assert_eq!(shown(float(1e20)), "1e20");
    assert_eq!(shown(float(0.1)), "0.1");
    assert_eq!(shown(float(2.0)), "2.0");
    assert_eq!(shown(un(UnaryOp::Neg, float(0.0))), "-0.0");
    assert_eq!(shown(bin(BinaryOp::Div, float(1.0), float(0.0))), "inf");
    assert_eq!(shown(bin(BinaryOp::Div, float(0.0), float(0.0))), "NaN");
    assert_eq!(shown(float(1.5e-7)), "1.5e-7");
}

/// Through the whole compiler: a parameter's default is folded with the same equality.
#[test]
fn a_folded_parameter_uses_the_total_order() {
    let src = "param same: bool = 0.0 == -0.0;\nparam nan: bool = 0.0 / 0.0 == 0.0 / 0.0;\nmodule M { }\n";
    let c = bloomc_compiler::compile("p.bl", src.as_bytes(), &[]);
    let p = c.program.expect("IR");
    let value = |name: &str| p.params.iter().find(|x| x.name == name).map(|x| x.value.clone());
    assert_eq!(value("same"), Some(ir::Value::Bool(false)));
    assert_eq!(value("nan"), Some(ir::Value::Bool(true)));
}
