//! Operator semantics: the one definition of what the language's operators do to values,
//! over primitive Rust values. The compiler's constant evaluator (`resolve::expr`) and the
//! runtime's evaluator (`bloomc_runtime::eval`) are thin adapters over these functions, so a
//! `param` default, a `when` condition and a rule's `where` clause can never disagree.
//!
//! The decisions (docs/language.md, section 6.3, "Operator semantics"):
//! - integer arithmetic is checked: overflow is [`OpError::Overflow`], and `/` or `%` by zero
//!   is [`OpError::DivisionByZero`]; `/` and `%` truncate toward zero (the sign of `%` is the
//!   dividend's), and `i64::MIN / -1` and `i64::MIN % -1` overflow;
//! - float arithmetic is IEEE 754 (division by zero gives an infinity or NaN, never an
//!   error), except that every NaN an operator produces is the one positive NaN
//!   ([`canonical`]): hardware NaNs differ in sign (x86's `0.0 / 0.0` is negative);
//! - float equality and order are the total order `f64::total_cmp`, the order values are
//!   sorted, hashed and joined by at run time: `-0.0 < 0.0`, `-0.0 != 0.0`, NaN equals NaN
//!   and sorts above infinity;
//! - strings concatenate with `+` and compare bytewise (their UTF-8 bytes, which is
//!   code-point order);
//! - floats print as Rust's `{:?}` prints them ([`fmt_float`]): `1.0`, `0.1`, `-0.0`,
//!   `1e20`, `1e-5`, `inf`, `-inf`, `NaN`.

use bloomc_grammar::ast::BinaryOp;
use std::cmp::Ordering;
use std::fmt;

/// Why an operator has no value. Each evaluator maps it to its own error type; the texts
/// of [`fmt::Display`] are the messages users see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpError {
    Overflow,
    DivisionByZero,
    /// The operator is not defined for these operands; type checking rules this out.
    Type,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpError::Overflow => "integer overflow",
            OpError::DivisionByZero => "division by zero",
            OpError::Type => "value of the wrong type",
        })
    }
}

/// The result of a binary operator on two operands of type `T`: a `T` (arithmetic) or a
/// `bool` (comparison).
#[derive(Debug, Clone, PartialEq)]
pub enum Out<T> {
    Same(T),
    Bool(bool),
}

/// The outcome of comparison `op` given the operands' order, or `None` when `op` is not a
/// comparison. `ord` is asked only for a comparison.
#[inline]
pub fn compare(op: BinaryOp, ord: impl FnOnce() -> Ordering) -> Option<bool> {
    let holds: fn(Ordering) -> bool = match op {
        BinaryOp::Eq => Ordering::is_eq,
        BinaryOp::Ne => Ordering::is_ne,
        BinaryOp::Lt => Ordering::is_lt,
        BinaryOp::Le => Ordering::is_le,
        BinaryOp::Gt => Ordering::is_gt,
        BinaryOp::Ge => Ordering::is_ge,
        _ => return None,
    };
    Some(holds(ord()))
}

/// Checked integer arithmetic: `+ - * / %`, with `/` and `%` truncating toward zero.
#[inline]
pub fn int_arith(op: BinaryOp, a: i64, b: i64) -> Result<i64, OpError> {
    let r = match op {
        BinaryOp::Add => a.checked_add(b),
        BinaryOp::Sub => a.checked_sub(b),
        BinaryOp::Mul => a.checked_mul(b),
        BinaryOp::Div | BinaryOp::Rem if b == 0 => return Err(OpError::DivisionByZero),
        BinaryOp::Div => a.checked_div(b),
        BinaryOp::Rem => a.checked_rem(b),
        _ => return Err(OpError::Type),
    };
    r.ok_or(OpError::Overflow)
}

/// Any binary operator on two integers.
#[inline]
pub fn int(op: BinaryOp, a: i64, b: i64) -> Result<Out<i64>, OpError> {
    match compare(op, || a.cmp(&b)) {
        Some(holds) => Ok(Out::Bool(holds)),
        None => int_arith(op, a, b).map(Out::Same),
    }
}

/// Unary minus on an integer: `-i64::MIN` overflows.
#[inline]
pub fn int_neg(a: i64) -> Result<i64, OpError> {
    a.checked_neg().ok_or(OpError::Overflow)
}

/// `x`, with any NaN replaced by the one NaN of the language (`f64::NAN`, positive).
#[inline]
pub fn canonical(x: f64) -> f64 {
    if x.is_nan() {
        f64::NAN
    } else {
        x
    }
}

/// IEEE float arithmetic `+ - * / %` (`%` is the remainder of truncating division, with the
/// dividend's sign, like C's `fmod`), NaN results made [`canonical`].
#[inline]
pub fn float_arith(op: BinaryOp, a: f64, b: f64) -> Result<f64, OpError> {
    Ok(canonical(match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Rem => a % b,
        _ => return Err(OpError::Type),
    }))
}

/// Unary minus on a float: the sign flipped (`-0.0` from `0.0`); NaN stays the one NaN.
#[inline]
pub fn float_neg(a: f64) -> f64 {
    canonical(-a)
}

/// The order of floats: `f64::total_cmp`. `-0.0 < 0.0`; NaN is above infinity (a negative
/// NaN, which only input can hold, below minus infinity).
#[inline]
pub fn float_cmp(a: f64, b: f64) -> Ordering {
    a.total_cmp(&b)
}

/// Float equality, the equality of [`float_cmp`]: `0.0 != -0.0`, `NaN == NaN`.
#[inline]
pub fn float_eq(a: f64, b: f64) -> bool {
    float_cmp(a, b).is_eq()
}

/// Any binary operator on two floats.
#[inline]
pub fn float(op: BinaryOp, a: f64, b: f64) -> Result<Out<f64>, OpError> {
    match compare(op, || float_cmp(a, b)) {
        Some(holds) => Ok(Out::Bool(holds)),
        None => float_arith(op, a, b).map(Out::Same),
    }
}

/// The order of strings: bytewise over their UTF-8 (so by code point; no locale).
#[inline]
pub fn str_cmp(a: &str, b: &str) -> Ordering {
    a.as_bytes().cmp(b.as_bytes())
}

/// Any binary operator on two strings: `+` appends `b` to `a` (reusing `a`'s buffer), the
/// comparisons are [`str_cmp`].
#[inline]
pub fn string(op: BinaryOp, mut a: String, b: &str) -> Result<Out<String>, OpError> {
    match op {
        BinaryOp::Add => {
            a.push_str(b);
            Ok(Out::Same(a))
        }
        // Equal exactly when `str_cmp` says so; comparing lengths first is cheaper.
        BinaryOp::Eq => Ok(Out::Bool(a == b)),
        BinaryOp::Ne => Ok(Out::Bool(a != b)),
        _ => compare(op, || str_cmp(&a, b)).map(Out::Bool).ok_or(OpError::Type),
    }
}

/// Any binary operator on two booleans: `and`, `or`, `==`, `!=` (booleans have no order).
/// The evaluators short-circuit `and` and `or` before they get here.
#[inline]
pub fn boolean(op: BinaryOp, a: bool, b: bool) -> Result<bool, OpError> {
    Ok(match op {
        BinaryOp::And => a && b,
        BinaryOp::Or => a || b,
        BinaryOp::Eq => a == b,
        BinaryOp::Ne => a != b,
        _ => return Err(OpError::Type),
    })
}

/// Whether `a op b` is decided by `a` alone (`false and ..`, `true or ..`): then its value
/// is `a` and the right operand is not evaluated, so its errors do not happen.
#[inline]
pub fn short_circuits(op: BinaryOp, a: bool) -> bool {
    matches!((op, a), (BinaryOp::And, false) | (BinaryOp::Or, true))
}

/// Writes a float as `str()` and every printed output show it (Rust's `{:?}`: the shortest
/// text that reads back as the same float, with a `.0` on integral values and an exponent
/// below 1e-4 and from 1e16).
#[inline]
pub fn fmt_float(x: f64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{x:?}")
}

/// [`fmt_float`] as a `String`.
pub fn format_float(x: f64) -> String {
    struct Text(f64);
    impl fmt::Display for Text {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt_float(self.0, f)
        }
    }
    Text(x).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use BinaryOp::*;

    #[test]
    fn integer_division_truncates_toward_zero() {
        assert_eq!(int_arith(Div, 7, -2), Ok(-3));
        assert_eq!(int_arith(Div, -7, 2), Ok(-3));
        assert_eq!(int_arith(Rem, -7, 2), Ok(-1));
        assert_eq!(int_arith(Rem, 7, -2), Ok(1));
    }

    #[test]
    fn integer_errors() {
        assert_eq!(int_arith(Div, i64::MIN, -1), Err(OpError::Overflow));
        assert_eq!(int_arith(Rem, i64::MIN, -1), Err(OpError::Overflow));
        assert_eq!(int_arith(Div, 1, 0), Err(OpError::DivisionByZero));
        assert_eq!(int_arith(Rem, 1, 0), Err(OpError::DivisionByZero));
        assert_eq!(int_arith(Add, i64::MAX, 1), Err(OpError::Overflow));
        assert_eq!(int_arith(Mul, i64::MIN, -1), Err(OpError::Overflow));
        assert_eq!(int_neg(i64::MIN), Err(OpError::Overflow));
        assert_eq!(int_arith(Eq, 1, 1), Err(OpError::Type));
    }

    #[test]
    fn float_order_is_total() {
        assert_eq!(float(Eq, 0.0, -0.0), Ok(Out::Bool(false)));
        assert_eq!(float(Lt, -0.0, 0.0), Ok(Out::Bool(true)));
        assert_eq!(float(Eq, f64::NAN, f64::NAN), Ok(Out::Bool(true)));
        assert_eq!(float(Gt, f64::NAN, f64::INFINITY), Ok(Out::Bool(true)));
        assert_eq!(float(Lt, -f64::NAN, f64::NEG_INFINITY), Ok(Out::Bool(true)));
    }

    #[test]
    fn float_arithmetic_is_ieee_with_one_nan() {
        assert_eq!(float_arith(Div, 1.0, 0.0), Ok(f64::INFINITY));
        assert_eq!(float_arith(Div, -1.0, 0.0), Ok(f64::NEG_INFINITY));
        assert_eq!(float_arith(Rem, -7.5, 2.0), Ok(-1.5));
        let zero = std::hint::black_box(0.0);
        for nan in
            [float_arith(Div, zero, zero), float_arith(Rem, 1.0, zero), float_arith(Sub, f64::INFINITY, f64::INFINITY)]
        {
            assert_eq!(nan.map(f64::to_bits), Ok(f64::NAN.to_bits()));
        }
        assert_eq!(float_neg(f64::NAN).to_bits(), f64::NAN.to_bits());
        assert_eq!(float_neg(0.0).to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn strings() {
        assert_eq!(string(Add, "k".into(), "3"), Ok(Out::Same("k3".to_string())));
        assert_eq!(string(Lt, "B".into(), "a"), Ok(Out::Bool(true)));
        assert_eq!(string(Lt, "z".into(), "é"), Ok(Out::Bool(true)));
        assert_eq!(string(Sub, "a".into(), "b"), Err(OpError::Type));
    }

    #[test]
    fn floats_print() {
        let shown: Vec<String> =
            [1.0, 0.1, -0.0, 1e20, 1e15, 1e-5, f64::INFINITY, f64::NEG_INFINITY, f64::NAN].map(format_float).into();
        assert_eq!(shown, ["1.0", "0.1", "-0.0", "1e20", "1000000000000000.0", "1e-5", "inf", "-inf", "NaN"]);
    }
}
