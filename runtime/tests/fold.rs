//! The fold path (monotone aggregates over insert-only tables) against the naive reference
//! evaluator: random fold programs over inputs that repeat facts across ticks, with one and
//! two workers, each checked to really take the fold path: on one worker the driver folds
//! the facts before the dataflow (`prefold.rs`), on two the dataflow's fold operator does.

mod reference;

use bloomc_compiler::compile;
use bloomc_runtime::feed::Source;
use bloomc_runtime::paths::paths;
use bloomc_runtime::plan::{plan, NodePlan};
use bloomc_runtime::run::{run, RunOptions};
use bloomc_runtime::value::Row;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

type Outputs = BTreeMap<String, BTreeMap<u64, BTreeSet<Row>>>;

fn normalize(o: Outputs) -> Outputs {
    o.into_iter().filter(|(_, m)| !m.is_empty()).collect()
}

/// Compiles `src`, checks that `folds` of its rules take the fold path, and compares the
/// dataflow with the reference on 1 and 2 workers.
fn check(src: &str, folds: usize) -> Result<(), TestCaseError> {
    let c = compile("fold.bl", src.as_bytes(), &[]);
    prop_assert!(!c.has_errors(), "test program must compile:\n{}", src);
    let p = c.program.expect("IR");
    let node = plan(&p, &[]).expect("one node");
    check_plan(&p, &node, src, folds)
}

/// [`check`] for a program's plan, whose feeds the caller may have changed.
fn check_plan(p: &bloomc_compiler::ir::Program, node: &NodePlan, src: &str, folds: usize) -> Result<(), TestCaseError> {
    let (p, node) = (p.clone(), node.clone());
    let paths = paths(&p, &node);
    prop_assert!(paths.column_folds.is_subset(&paths.prefolded), "column folds are driver folds:\n{}", src);
    prop_assert_eq!(paths.folds.len(), folds, "fold rules in:\n{}", src);
    prop_assert_eq!(paths.prefolded.len(), folds, "folds the driver computes in:\n{}", src);
    // A keyed input copied into `t0` alone makes it unique: its folds keep no set of rows.
    prop_assert_eq!(paths.unique.len(), usize::from(src.contains(") key (")), "unique tables in:\n{}", src);
    let want = reference::run(&p, &node, 100);
    for workers in [1, 2] {
        let got = run(&p, &node, &RunOptions { workers, max_ticks: 100, ..RunOptions::default() }).expect("runs");
        prop_assert_eq!(got.ticks, want.ticks, "ticks, {} workers:\n{}", workers, src);
        prop_assert_eq!(normalize(got.all_by_tick()), normalize(want.outputs.clone()), "{} workers:\n{}", workers, src);
        prop_assert_eq!(got.eval_errors, want.errors.len() as u64, "errors, {} workers:\n{}", workers, src);
        let rejected: BTreeMap<String, u64> = got.rejected.iter().map(|(i, r)| (i.clone(), r.facts)).collect();
        prop_assert_eq!(&rejected, &want.rejected, "rejected facts, {} workers:\n{}", workers, src);
    }
    Ok(())
}

const AGGS: [&str; 8] = [
    "count(*)",
    "sum(p.b)",
    "min(p.b)",
    "max(p.b)",
    "count(*) + max(p.a)",
    "sum(p.b) / (max(p.a) - 1)",
    "min(p.b * 4611686018427387904)",
    "sum(p.b * 4611686018427387904)",
];

/// Tables fed only by inputs, grouped by rules whose aggregates are all folds. Inputs draw
/// from small domains, so facts repeat within and across ticks; some aggregates overflow or
/// divide by zero, to check that failing groups match the reference. In half of the
/// programs `i0` declares a key, which its repeated facts break, and alone fills `t0` (`i1`
/// fills `t1`, which nothing reads).
fn fold_program() -> impl Strategy<Value = (String, usize)> {
    let rule = (0usize..2, 0usize..8, 0usize..8, 0usize..7, 0i64..5);
    (prop::collection::vec(rule, 1..5), 0usize..3, 0usize..6).prop_map(|(rules, feed, keyed)| {
        let fill = "from i1 p where p.a != 3 and 6 / p.b != 1 select p.a, p.b + 1";
        let mut src = match ["a", "b", "b, a"].get(keyed) {
            None => format!(
                "module M {{ input i0(a: int, b: int); input i1(a: int, b: int);
                   table t0(a: int, b: int); output o0(a: int, n: int); output o1(a: int, n: int);
                   t0 <= i0; t0 <= {fill};\n"
            ),
            Some(key) => format!(
                "module M {{ input i0(a: int, b: int) key ({key}); input i1(a: int, b: int);
                   table t0(a: int, b: int); table t1(a: int, b: int);
                   output o0(a: int, n: int); output o1(a: int, n: int);
                   t0 <= i0; t1 <= {fill};\n"
            ),
        };
        for (n, (target, agg, agg2, shape, k)) in rules.iter().enumerate() {
            let pick = |i: usize| AGGS.get(i % AGGS.len()).copied().unwrap_or("count(*)");
            let (agg, agg2) = (pick(*agg), pick(*agg2));
            let q = match shape {
                0 => format!("from t0 p group by p.a select p.a, {agg}"),
                1 => format!("from t0 p group by p.a having {agg2} > {k} select p.a, {agg}"),
                2 => format!("from t0 p where p.b != {k} group by p.a select p.a, {agg}"),
                3 => format!("from t0 p group by p.a % 2 select p.a % 2, {agg} + {n}"),
                // The head omits the key: two groups can yield one row, so a set is built.
                4 => format!("from t0 p group by p.b select {agg} % 3, {n}"),
                // A head without aggregates: only `having` decides whether its row changes.
                6 => format!("from t0 p group by p.a having {agg2} > {k} select p.a, {n}"),
                // `and` short-circuits past an aggregate that a later one follows.
                _ => format!(
                    "from t0 p group by p.a having ({agg2} > {k} and {agg} > 1) or {agg2} < 2 select p.a, {agg2}"
                ),
            };
            src.push_str(&format!("  o{target} <= {q};\n"));
        }
        src.push('}');
        let batch = [1, 4, 9].get(feed).copied().unwrap_or(1);
        let full = format!(
            "{src}\nsystem S {{ node m: M;
               feed m.i0 from generate(rows: 30, seed: 21, batch: {batch}) {{ a: uniform(0, 5), b: uniform(-3, 4) }};
               feed m.i1 from generate(rows: 12, seed: 22, batch: 2) {{ a: uniform(0, 5), b: uniform(0, 3) }}; }}"
        );
        (full, rules.len())
    })
}

proptest! {
    #![proptest_config(reference::proptest_config(300, 0xf01d))]

    #[test]
    fn fold_programs_match_the_reference((src, folds) in fold_program()) {
        check(&src, folds)?;
    }
}

#[test]
fn a_fact_repeated_in_later_ticks_counts_once() {
    // Every tick brings the same two facts again; the table is a set, so counts stay at 2.
    let src = "module M { input i(a: int, b: int); table t(a: int, b: int); output o(a: int, n: int);
                 t <= i; o <= from t p group by p.a select p.a, count(*) + sum(p.b); }
               system S { node m: M; feed m.i from generate(rows: 12, seed: 1, batch: 2) { a: 1, b: row() % 2 }; }";
    check(src, 1).expect("matches the reference");
    let c = compile("fold.bl", src.as_bytes(), &[]);
    let p = c.program.expect("IR");
    let node = plan(&p, &[]).expect("one node");
    let got = run(&p, &node, &RunOptions::default()).expect("runs");
    let facts: Vec<String> = got.final_contents("o").iter().map(bloomc_runtime::value::show).collect();
    assert_eq!(facts, ["1, 3"], "two distinct facts: count 2 plus sum 1");
}

/// From `groups::LARGE` (32,768) groups on, a fold looks its rows up in a pipeline (`groups.rs`):
/// a program with 50k groups, in ticks whose rows fall into groups both new and old, with
/// aggregates that read arguments and fail, and heads with and without aggregates.
#[test]
fn a_fold_with_many_groups_matches_the_reference() {
    let src = "module M { input i(a: int, b: int); table t(a: int, b: int);
                 output o0(a: int, n: int); output o1(a: int, s: int, m: int); output o2(a: int, n: int);
                 t <= i;
                 o0 <= from t p group by p.a having count(*) > 2 select p.a, 1;
                 o1 <= from t p group by p.a select p.a, sum(p.b), min(p.b) + max(p.b);
                 o2 <= from t p group by p.a having sum(p.b * 4611686018427387904) > 0 select p.a, count(*); }
               system S { node m: M;
                 feed m.i from generate(rows: 120000, seed: 7, batch: 30000) { a: uniform(0, 50000), b: uniform(-3, 4) }; }";
    check(src, 3).expect("matches the reference");
}

/// The column fold (`colfold.rs`): a keyed input of `int` columns copied into a table that
/// folds of plain columns read. Keys repeat and go back (rejected facts) after ascending
/// runs; 40k groups (the prefetched lookups, the table growing within a tick); sums that
/// overflow; heads with and without aggregates; `having` thresholds either way round, one
/// on a sum that overflows; from a generator (rows gathered into columns) and from columns handed over
/// (`Source::Columns`, read in place).
#[test]
fn column_folds_match_the_reference() {
    let src = "module M { input i(k: int, a: int, b: int, c: int) key (k); table t(k: int, a: int, b: int, c: int);
                 output o0(a: int); output o1(a: int, b: int, s: int, lo: int, hi: int, n: int); output o2(n: int); output o3(a: int);
                 t <= i;
                 o0 <= from t p group by p.a having count(*) < 3 select p.a;
                 o1 <= from t p group by p.a, p.b select p.a, p.b, sum(p.b), min(p.k), max(p.c), count(*);
                 o2 <= from t p group by p.b having sum(p.c) > 0 select count(*);
                 o3 <= from t p group by p.a having 4611686018427387904 <= sum(p.c) select p.a; }
               system S { node m: M;
                 feed m.i from generate(rows: 80000, seed: 3, batch: 30000) {
                   k: row() % 60000 - 30000, a: uniform(0, 40000), b: uniform(-3, 4), c: uniform(0, 3) * 4611686018427387904 }; }";
    check(src, 4).expect("matches the reference");
    let c = compile("fold.bl", src.as_bytes(), &[]);
    let p = c.program.expect("IR");
    let mut node = plan(&p, &[]).expect("one node");
    let paths = paths(&p, &node);
    assert_eq!((paths.column_folded.len(), paths.column_folds.len()), (1, 4), "the column fold is planned");
    let feed = node.feeds.first().cloned().expect("a feed");
    let types = vec![bloomc_compiler::ir::Type::Int; 4];
    let mut columns = bloomc_runtime::columns::Columns::new(&types, 0);
    let mut errors = 0;
    for t in 0..feed.ticks() {
        for row in feed.batch(t, 0, 0, 1, &mut errors) {
            assert!(columns.push(&row));
        }
    }
    node.feeds = vec![bloomc_runtime::feed::Feed {
        input: feed.input,
        source: Source::Columns { columns: std::sync::Arc::new(columns), batch: 25000 },
    }];
    check_plan(&p, &node, src, 4).expect("columns match the reference");
}

/// A fold of more key columns than the column fold holds in registers (eight) takes the row
/// fold, and still matches the reference.
#[test]
fn a_fold_of_nine_key_columns_is_not_column_folded() {
    let src = "module M { input i(k: int, a: int, b: int, c: int, d: int, e: int, f: int, g: int, h: int, j: int) key (k);
                 table t(k: int, a: int, b: int, c: int, d: int, e: int, f: int, g: int, h: int, j: int);
                 output o(a: int, n: int);
                 t <= i;
                 o <= from t p group by p.a, p.b, p.c, p.d, p.e, p.f, p.g, p.h, p.j having count(*) < 2 select p.a, count(*); }
               system S { node m: M;
                 feed m.i from generate(rows: 3000, seed: 5, batch: 1000) {
                   k: row(), a: uniform(0, 3), b: uniform(0, 2), c: uniform(0, 2), d: 0, e: 1, f: uniform(0, 2), g: 2, h: 3, j: uniform(0, 2) }; }";
    check(src, 1).expect("matches the reference");
    let c = compile("fold.bl", src.as_bytes(), &[]);
    let p = c.program.expect("IR");
    let node = plan(&p, &[]).expect("one node");
    assert!(paths(&p, &node).column_folds.is_empty(), "nine key columns are folded row by row");
}
