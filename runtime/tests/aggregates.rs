//! The table of aggregate facts (`bloomc_compiler::aggregates`) checked against the
//! evaluator that computes aggregates (`eval::aggregate`): on random groups, each
//! aggregate's value has the type the table gives, moves the way the table says as its
//! group gains bindings (the promise the analysis builds its thresholds on), and the
//! aggregates the table lets fold agree with a fold over the bindings one by one.

use bloomc_compiler::aggregates::{Accumulator, Moves, AGGREGATES};
use bloomc_compiler::ir::{AggFn, ColRef, Expr, ExprKind, Type};
use bloomc_grammar::span::Span;
use bloomc_runtime::eval::{aggregate, Ctx, Flat};
use bloomc_runtime::value::{Float, Row, Value};
use proptest::prelude::*;
use std::collections::BTreeSet;

fn span() -> Span {
    Span::default()
}

/// `f(column 0)` over a one-column table of type `ty`.
fn agg(f: AggFn, ty: Type) -> Expr {
    let arg = Expr { kind: ExprKind::Col(ColRef { atom: 0, column: 0 }), ty, span: span() };
    Expr { kind: ExprKind::Agg(f, Some(Box::new(arg))), ty: f.facts().result(Some(ty)), span: span() }
}

/// The aggregate over a group of distinct one-column rows.
fn value(e: &Expr, rows: &BTreeSet<Value>) -> Option<Value> {
    let rows: Vec<Row> = rows.iter().map(|v| std::iter::once(v.clone()).collect()).collect();
    let offsets = [0];
    let group: Vec<Flat<'_>> = rows.iter().map(|row| Flat { row, offsets: &offsets }).collect();
    aggregate(e, &group, &Ctx::default()).ok()
}

fn type_of(v: &Value) -> Type {
    match v {
        Value::Int(_) => Type::Int,
        Value::Float(_) => Type::Float,
        Value::Str(_) => Type::String,
        Value::Bool(_) => Type::Bool,
    }
}

/// Values of `ty`: small ints (non-negative when `non_negative`), finite floats, strings.
fn values(ty: Type, non_negative: bool) -> BoxedStrategy<Value> {
    match ty {
        Type::Int if non_negative => (0i64..1000).prop_map(Value::Int).boxed(),
        Type::Int => (-1000i64..1000).prop_map(Value::Int).boxed(),
        Type::Float if non_negative => (0.0f64..1000.0).prop_map(|f| Value::Float(Float(f))).boxed(),
        Type::Float => (-1000.0f64..1000.0).prop_map(|f| Value::Float(Float(f))).boxed(),
        _ => "[a-c]{0,3}".prop_map(Value::Str).boxed(),
    }
}

/// An aggregate, an argument type the table accepts, a group and the bindings it gains.
fn case() -> impl Strategy<Value = (AggFn, Type, BTreeSet<Value>, BTreeSet<Value>)> {
    let kinds: Vec<(AggFn, Type)> = AGGREGATES
        .iter()
        .flat_map(|f| {
            [Type::Int, Type::Float, Type::String, Type::Bool]
                .into_iter()
                .filter(|t| f.accepts(*t))
                .map(|t| (f.function, t))
                .collect::<Vec<_>>()
        })
        .collect();
    proptest::sample::select(kinds).prop_flat_map(|(f, ty)| {
        let non_negative = f.facts().moves == Moves::UpWhenArgumentNonNegative;
        let vals = values(ty, non_negative);
        (
            Just(f),
            Just(ty),
            proptest::collection::btree_set(vals.clone(), 1..8),
            proptest::collection::btree_set(vals, 0..8),
        )
    })
}

/// A fold of the accumulator over the bindings one at a time, in the order given.
fn fold(acc: Accumulator, rows: &[Value]) -> Option<Value> {
    let mut it = rows.iter().cloned();
    match acc {
        Accumulator::Count => Some(Value::Int(rows.len() as i64)),
        Accumulator::Sum => {
            let mut total: i128 = 0;
            for v in it {
                let Value::Int(i) = v else { return None };
                total += i128::from(i);
            }
            i64::try_from(total).ok().map(Value::Int)
        }
        Accumulator::Min => it.next().map(|first| it.fold(first, |m, v| if v < m { v } else { m })),
        Accumulator::Max => it.next().map(|first| it.fold(first, |m, v| if v > m { v } else { m })),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn every_aggregate_keeps_the_promises_of_its_row((f, ty, group, more) in case()) {
        let facts = f.facts();
        let e = agg(f, ty);
        let before = value(&e, &group).expect("small groups evaluate");
        prop_assert_eq!(type_of(&before), facts.result(Some(ty)));
        let grown: BTreeSet<Value> = group.union(&more).cloned().collect();
        let after = value(&e, &grown).expect("small groups evaluate");
        match facts.moves {
            Moves::Up | Moves::UpWhenArgumentNonNegative => prop_assert!(after >= before, "{} went down", facts.name),
            Moves::Down => prop_assert!(after <= before, "{} went up", facts.name),
            Moves::Either => {}
        }
        if let Some(acc) = facts.fold(Some(ty)) {
            // Folded in any order (here: descending), the accumulator gives the value.
            let rows: Vec<Value> = grown.iter().rev().cloned().collect();
            prop_assert_eq!(fold(acc, &rows), Some(after));
        }
    }
}

#[test]
fn an_average_moves_both_ways_so_the_table_promises_nothing_of_it() {
    assert_eq!(AggFn::Avg.facts().moves, Moves::Either);
    let e = agg(AggFn::Avg, Type::Int);
    let one: BTreeSet<Value> = [Value::Int(2)].into();
    let up: BTreeSet<Value> = [Value::Int(2), Value::Int(4)].into();
    let down: BTreeSet<Value> = [Value::Int(2), Value::Int(0)].into();
    assert!(value(&e, &up) > value(&e, &one));
    assert!(value(&e, &down) < value(&e, &one));
}

#[test]
fn a_sum_with_a_negative_binding_can_go_down() {
    let e = agg(AggFn::Sum, Type::Int);
    let one: BTreeSet<Value> = [Value::Int(2)].into();
    let more: BTreeSet<Value> = [Value::Int(2), Value::Int(-5)].into();
    assert!(value(&e, &more) < value(&e, &one));
}
