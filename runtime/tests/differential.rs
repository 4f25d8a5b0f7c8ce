//! The dataflow runtime against the naive reference evaluator: the examples, Bud's semantic
//! cases, and random programs with random inputs, with one and two workers.

// A test fails by panicking: indexing a JSON report or a list that lacks the entry is
// such a failure.
#![allow(clippy::indexing_slicing)]

mod reference;

use bloomc_compiler::compile;
use bloomc_runtime::plan::plan;
use bloomc_runtime::run::{run, RunOptions};
use bloomc_runtime::value::Row;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

type Outputs = BTreeMap<String, BTreeMap<u64, BTreeSet<Row>>>;

fn normalize(o: Outputs) -> Outputs {
    o.into_iter().filter(|(_, m)| !m.is_empty()).collect()
}

/// Runs `src` on the dataflow (with `workers`) and on the reference; returns both.
fn both(src: &str, workers: usize) -> (Outputs, Outputs, u64, u64) {
    let c = compile("test.bl", src.as_bytes(), &[]);
    assert!(!c.has_errors(), "test program must compile:\n{src}");
    let p = c.program.expect("IR");
    let node = plan(&p, &[]).expect("one node");
    let got = run(&p, &node, &RunOptions { workers, max_ticks: 200, ..RunOptions::default() }).expect("runs");
    let want = reference::run(&p, &node, 200);
    assert_eq!(got.ticks, want.ticks, "tick counts differ for:\n{src}");
    let rejected: BTreeMap<String, u64> = got.rejected.iter().map(|(i, r)| (i.clone(), r.facts)).collect();
    assert_eq!(rejected, want.rejected, "rejected facts differ for:\n{src}");
    (normalize(got.all_by_tick()), normalize(want.outputs), got.eval_errors, want.errors.len() as u64)
}

fn check(src: &str) {
    for workers in [1, 2] {
        let (got, want, got_err, want_err) = both(src, workers);
        assert_eq!(got, want, "outputs differ with {workers} workers for:\n{src}");
        assert_eq!(got_err, want_err, "evaluation error counts differ for:\n{src}");
    }
}

#[test]
fn examples_match_the_reference() {
    for example in ["kvs.bl", "pubsub.bl"] {
        let path = format!("{}/../examples/{example}", env!("CARGO_MANIFEST_DIR"));
        let src = std::fs::read_to_string(&path).expect("example");
        let full = src.replace("use kvs;", bloomc_compiler::stdlib::source("kvs").unwrap_or(""));
        let full = full.replace("use pubsub;", bloomc_compiler::stdlib::source("pubsub").unwrap_or(""));
        check(&full);
    }
}

/// A one-node system around `module M`, fed with `feeds`.
fn system(module: &str, feeds: &str) -> String {
    format!("{module}\nsystem S {{ node m: M; {feeds} }}")
}

#[test]
fn bud_stratified_notin_with_column_pairs() {
    check(&system(
        "module M { input a(k: int, v: int); input b(x: int, y: int); output o(k: int, v: int);
           table seen(x: int, y: int);
           seen <= b;
           o <= from a p notin seen s on p.k == s.x and p.v == s.y select p.k, p.v; }",
        "feed m.a from generate(rows: 40, seed: 1, batch: 8) { k: uniform(0, 4), v: uniform(0, 3) };
         feed m.b from generate(rows: 20, seed: 2, batch: 4) { x: uniform(0, 4), y: uniform(0, 3) };",
    ));
}

#[test]
fn bud_group_by_aggregates() {
    check(&system(
        "module M { input a(k: int, v: int); output o(k: int, n: int, s: int, lo: int, hi: int);
           table t(k: int, v: int);
           t <= a;
           o <= from t x group by x.k select x.k, count(*) as n, sum(x.v) as s, min(x.v) as lo, max(x.v) as hi; }",
        "feed m.a from generate(rows: 60, seed: 3, batch: 7) { k: uniform(0, 5), v: uniform(0, 20) };",
    ));
}

#[test]
fn bud_delete_then_insert_in_one_tick_keeps_the_fact() {
    // Every tick deletes and re-inserts the same facts: deletions apply first, so the facts
    // stay; and a fact only deleted is gone the next tick.
    check(&system(
        "module M { input a(k: int); input d(k: int); output o(k: int); table t(k: int);
           t <+ a; t <- from d x, t y where x.k == y.k select y.k; t <+ from d x select x.k;
           o <= t; }",
        "feed m.a from generate(rows: 12, seed: 4, batch: 3) { k: uniform(0, 6) };
         feed m.d from generate(rows: 12, seed: 5, batch: 2) { k: uniform(0, 6) };",
    ));
}

#[test]
fn bud_deferred_merges_appear_next_tick() {
    check(&system(
        "module M { input a(k: int); output now(k: int); output later(k: int); scratch s(k: int);
           s <+ a; now <= a; later <= s; }",
        "feed m.a from generate(rows: 9, seed: 6, batch: 3) { k: row() };",
    ));
}

#[test]
fn bud_recursive_paths_with_aggregates_over_them() {
    check(&system(
        "module M { input e(src: int, dst: int); output reach(src: int, dst: int); output fanout(src: int, n: int);
           table edge(src: int, dst: int); scratch path(src: int, dst: int);
           edge <= e;
           path <= edge;
           path <= from path p, edge x where p.dst == x.src select p.src, x.dst;
           reach <= path;
           fanout <= from path p group by p.src select p.src, count(*) as n; }",
        "feed m.e from generate(rows: 30, seed: 9, batch: 4) { src: uniform(0, 8), dst: uniform(0, 8) };",
    ));
}

#[test]
fn a_keyed_input_rejects_repeats_on_every_path() {
    // Keys repeat within a tick (batch 4 over k = row % 3) and across ticks. The keyed input
    // feeds a transient path (a scratch through `notin`) and a table that is not unique (it
    // drops the key), besides a fold over a unique one.
    check(&system(
        "module M { input i(k: int, v: int) key (k); input j(k: int);
           table u(k: int, v: int); table w(v: int); scratch s(k: int, v: int);
           output o(v: int, n: int); output p(k: int, v: int); output q(v: int, n: int);
           u <= i; w <= from i x select x.v;
           s <= from i x notin j y on x.k == y.k;
           o <= from u x group by x.v select x.v, count(*);
           q <= from w x group by x.v select x.v, count(*);
           p <= s; }",
        "feed m.i from generate(rows: 11, seed: 3, batch: 4) { k: row() % 3 + row() / 8, v: row() % 2 };
         feed m.j from generate(rows: 2, seed: 4, batch: 1) { k: row() };",
    ));
}

#[test]
fn mutual_recursion_evolves_together() {
    check(&system(
        "module M { input e(a: int, b: int); output o(a: int, b: int); scratch even(a: int, b: int); scratch odd(a: int, b: int);
           odd <= e;
           even <= from odd x, e y where x.b == y.a select x.a, y.b;
           odd <= from even x, e y where x.b == y.a select x.a, y.b;
           o <= even; }",
        "feed m.e from generate(rows: 16, seed: 10, batch: 4) { a: uniform(0, 6), b: uniform(0, 6) };",
    ));
}

#[test]
fn async_sends_loop_back_next_tick() {
    check(&format!(
        "{}\nsystem S {{ node m: M; feed m.a from generate(rows: 6, seed: 7, batch: 2) {{ k: row() }}; m.o -> m.back broadcast; }}",
        "module M { input a(k: int); input back(k: int); output o(k: int); output seen(k: int);
           o <~ from a x where x.k < 100 select x.k + 10;
           o <= from a x where x.k == 0 select x.k + 1000;
           seen <= back; }"
    ));
}

#[test]
fn evaluation_errors_are_counted_not_hidden() {
    let src = system(
        "module M { input a(k: int, v: int); output o(k: int); o <= from a x where 100 / x.v > 10 select x.k; }",
        "feed m.a from generate(rows: 20, seed: 8, batch: 5) { k: row(), v: uniform(0, 4) };",
    );
    let (_, _, got, want) = both(&src, 1);
    assert!(got > 0, "division by zero must be counted");
    assert_eq!(got, want);
}

/// A random program: collections c0..c7 in a fixed order. Scans and joins may recurse
/// (read their own or later collections); negation, aggregation and arithmetic read only
/// earlier collections, so every program is stratifiable and every fixpoint finite.
fn random_program() -> impl Strategy<Value = String> {
    let rule = (0usize..8, 0usize..8, 0usize..8, 0usize..8, 0i64..5, 0usize..3);
    prop::collection::vec(rule, 1..10).prop_map(|rules| {
        // c0, c1 inputs; c2, c3 tables; c4, c5 scratches; c6, c7 outputs.
        let names = ["i0", "i1", "t0", "t1", "s0", "s1", "o0", "o1"];
        let mut body = String::from(
            "module M { input i0(a: int, b: int); input i1(a: int, b: int); table t0(a: int, b: int); table t1(a: int, b: int);
             scratch s0(a: int, b: int); scratch s1(a: int, b: int); output o0(a: int, b: int); output o1(a: int, b: int);\n",
        );
        for (target, x, y, shape, k, op) in rules {
            let target = 2 + target % 6;
            let (x, y) = (x % 8, y % 8);
            let t = names[target];
            // Scans, joins and filters may recurse (they are monotone and add no new values);
            // negation, aggregation and arithmetic read only earlier collections.
            let recursive_ok = shape <= 1 || shape >= 6;
            let instant = if recursive_ok { x <= target && y <= target } else { x < target && y < target };
            let op = match (names[target].as_bytes()[0], op, instant) {
                (b't', 1, _) => "<+",
                (b't', 2, _) => "<-",
                (b's', 1, _) => "<+",
                (b'o', 1, _) => "<~",
                (_, _, true) => "<=",
                (b'o', _, false) => "<~",
                (_, _, false) => "<+",
            };
            let (x, y) = (names[x], names[y]);
            let q = match shape {
                0 => format!("from {x} p select p.a, p.b"),
                1 => format!("from {x} p, {y} q where p.a == q.a select p.a, q.b"),
                2 => format!("from {x} p where p.b > {k} select p.a, p.b - 1"),
                3 => format!("from {x} p notin {y} q on p.a == q.a select p.a, p.b"),
                4 => format!("from {x} p group by p.a select p.a, count(*) as b"),
                6 => format!("from {x} p, {y} q where p.b == q.a and p.a < {k} + 2 select p.a, q.b"),
                // Joins on another column of the same collections: arrangements are shared by
                // collection and key columns (`dataflow::Shared`), never by collection alone.
                7 => format!("from {x} p, {y} q where p.a == q.b select q.a, p.b"),
                _ => format!("from {x} p group by p.a having max(p.b) > {k} select p.a, sum(p.b) as b"),
            };
            body.push_str(&format!("  {t} {op} {q};\n"));
        }
        body.push('}');
        format!(
            "{body}\nsystem S {{ node m: M;
               feed m.i0 from generate(rows: 24, seed: 11, batch: 6) {{ a: uniform(0, 4), b: uniform(0, 6) }};
               feed m.i1 from generate(rows: 10, seed: 12, batch: 3) {{ a: uniform(0, 4), b: uniform(0, 6) }}; }}"
        )
    })
}

proptest! {
    // A fixed seed keeps CI reproducible; `BLOOMC_EXPLORE=1` draws fresh programs.
    #![proptest_config(reference::proptest_config(1000, 0x5eed_b100))]

    #[test]
    fn random_programs_match_the_reference(src in random_program()) {
        let c = compile("random.bl", src.as_bytes(), &[]);
        prop_assume!(!c.has_errors());
        let p = c.program.expect("IR");
        let node = plan(&p, &[]).expect("one node");
        let want = reference::run(&p, &node, 60);
        for workers in [1, 2] {
            let got = run(&p, &node, &RunOptions { workers, max_ticks: 60, ..RunOptions::default() }).expect("runs");
            prop_assert_eq!(got.ticks, want.ticks, "ticks, {} workers:\n{}", workers, src);
            prop_assert_eq!(normalize(got.all_by_tick()), normalize(want.outputs.clone()), "{} workers:\n{}", workers, src);
            prop_assert_eq!(got.eval_errors, want.errors.len() as u64);
        }
    }
}

#[test]
fn group_level_errors_count_once_per_group_on_both_aggregation_paths() {
    // `count(*) / d.z` fails for every group; the count path (counts only) and the reduce
    // path (with a sum) must count the same failing groups.
    for head in ["count(*) / x.z", "sum(x.v) / x.z"] {
        let src = system(
            &format!(
                "module M {{ input a(k: int, v: int, z: int); output o(k: int, n: int); table t(k: int, v: int, z: int);
                   t <= a; o <= from t x group by x.k, x.z select x.k, {head} as n; }}"
            ),
            "feed m.a from generate(rows: 12, seed: 13, batch: 3) { k: uniform(0, 3), v: row(), z: 0 };",
        );
        let (_, _, got, want) = both(&src, 1);
        assert_eq!(got, want, "{head}");
        assert_eq!(got, 3, "{head}: one failure per group (three groups)");
    }
}

#[test]
fn a_recursive_table_settles_when_the_reference_does() {
    // Found by the random test: a recursive component can emit and cancel a fact within one
    // tick, which must not count as a change of state.
    check(&system(
        "module M { input i0(a: int, b: int); input i1(a: int, b: int); table t0(a: int, b: int);
           t0 <= from i0 p, i1 q where p.a == q.a select p.a, q.b;
           t0 <= from t0 p, i0 q where p.a == q.a select p.a, q.b; }",
        "feed m.i0 from generate(rows: 24, seed: 11, batch: 6) { a: uniform(0, 4), b: uniform(0, 6) };
         feed m.i1 from generate(rows: 10, seed: 12, batch: 3) { a: uniform(0, 4), b: uniform(0, 6) };",
    ));
}

#[test]
fn facts_of_different_collections_do_not_cancel_as_changes() {
    // Found by the random test: a table and a scratch changing by the same fact in one tick
    // are two changes, not none.
    check(&system(
        "module M { input i0(a: int, b: int); table t0(a: int, b: int); scratch s1(a: int, b: int);
           t0 <+ from s1 p group by p.a having max(p.b) > 0 select p.a, sum(p.b) as b;
           s1 <+ from i0 p where p.b > 2 select p.a, p.b - 1; }",
        "feed m.i0 from generate(rows: 24, seed: 11, batch: 6) { a: uniform(0, 4), b: uniform(0, 6) };",
    ));
}
