//! Module path annotations of the white-box analysis on the talk's and paper's modules.

// A test fails by panicking: indexing a JSON report or a list that lacks the entry is
// such a failure.
#![allow(clippy::indexing_slicing)]

use bloomc_compiler::compile;

/// `component.input -> output: LABEL{gate}` for every path of every component, as the
/// analysis reports them (components are node groups, or modules without a system).
fn annotations(src: &str, sets: &[(&str, &str)]) -> Vec<String> {
    let sets: Vec<(String, String)> = sets.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let c = compile("test.bl", src.as_bytes(), &sets);
    assert!(!c.has_errors(), "program must compile");
    let a = c.analysis.expect("a clean program is analysed");
    let mut out = Vec::new();
    for comp in &a.graph.components {
        for path in &comp.paths {
            out.push(format!(
                "{}.{} -> {}: {}",
                comp.name,
                comp.inputs.get(path.from).map_or("?", String::as_str),
                comp.outputs.get(path.to).map_or("?", String::as_str),
                path.describe()
            ));
        }
    }
    out
}

#[test]
fn kvs_put_is_ow_key_and_get_is_or_key() {
    let src = "use kvs;";
    assert_eq!(annotations(src, &[]), ["KVS.put -> response: OW{key}", "KVS.get -> response: OR{key}"]);
}

#[test]
fn pubsub_publish_is_cw() {
    let a = annotations("use pubsub;", &[]);
    assert_eq!(a[0], "PubSub.publish -> response: CW");
    // The talk's slide says CR for subscribe; subscriptions are stored in `sub_log`, which
    // later responses read, so the white-box reading is CW.
    assert_eq!(a[1], "PubSub.subscribe -> response: CW");
}

#[test]
fn adtrack_report_paths_per_query() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/adtrack.bl")).expect("example");
    let report = |q: &str| -> Vec<String> {
        annotations(&src, &[("query", q)]).into_iter().filter(|a| a.starts_with("report.")).collect()
    };
    assert_eq!(report("THRESH"), ["report.click -> response: CW", "report.request -> response: CR"]);
    assert_eq!(report("POOR"), ["report.click -> response: CW", "report.request -> response: OR{id}"]);
    assert_eq!(report("WINDOW"), ["report.click -> response: CW", "report.request -> response: OR{id, window}"]);
    assert_eq!(report("CAMPAIGN"), ["report.click -> response: CW", "report.request -> response: OR{campaign, id}"]);
}

#[test]
fn wordcount_components() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/wordcount.bl")).expect("example");
    assert_eq!(
        annotations(&src, &[]),
        ["splitter.tweet -> words: CR", "count.words -> counts: OW{batch, word}", "commit.counts -> db: CW"]
    );
}

/// Two modules in a system; returns `label` of `sink` with `seal` on `a.src`.
fn system_label(modules: &str, seal: &str) -> String {
    use bloomc_compiler::analysis::build::{graph, SealArg};
    use bloomc_compiler::analysis::labels::label;
    let src = format!(
        "{modules}\nsystem S {{ node a: A; node b: B; feed a.src from generate(rows: 1) {{ k: row(), w: row(), v: row() }}; a.out -> b.inp broadcast; feed b.req from generate(rows: 1) {{ k: row() }}; }}"
    );
    let c = compile("lineage.bl", src.as_bytes(), &[]);
    assert!(!c.has_errors(), "program must compile");
    let p = c.program.expect("IR");
    let seals: Vec<SealArg> = if seal.is_empty() {
        Vec::new()
    } else {
        vec![SealArg { stream: "a.src".into(), key: seal.split(',').map(str::to_string).collect() }]
    };
    let (g, _) = graph(&p, &seals);
    let l = label(&g);
    l.outputs
        .iter()
        .find(|r| g.output_name(r.component, r.output) == "b.ans")
        .map(|r| r.label.to_string())
        .unwrap_or_default()
}

/// Module A renames `k` to `key` and joins it with a table; module B groups by the renamed
/// column. A seal on `a.src.k` must reach B's gate through the rename, the join and the
/// module boundary.
const RENAMED: &str = r#"
module A {
  input src(k: int, w: int, v: int);
  output out(key: int, win: int);
  table seen(k: int, w: int);
  scratch joined(key: int, win: int);
  seen <= from src s select s.k, s.w;
  joined <= from src s, seen t where s.k == t.k select t.k as key, s.w as win;
  out <= from joined j select j.key, j.win;
}
module B {
  input inp(key: int, win: int);
  input req(k: int);
  output ans(k: int);
  table log(key: int, win: int);
  scratch few(key: int);
  log <= inp;
  few <= from log l group by l.key having count(*) < 3 select l.key;
  ans <= from req r, few f where r.k == f.key select r.k;
}
"#;

#[test]
fn lineage_follows_renames_joins_and_module_boundaries() {
    // Unsealed: B's answers race with its input.
    assert_eq!(system_label(RENAMED, ""), "Run");
    // `k` becomes `key` (rename in a join whose equality makes t.k a copy of s.k), crosses
    // into B as `inp.key`, and is B's group-by key: compatible.
    assert_eq!(system_label(RENAMED, "k"), "Async");
    // `w` becomes `win`, which B does not group by: incompatible.
    assert_eq!(system_label(RENAMED, "w"), "Run");
}

#[test]
fn lineage_is_lost_through_computed_columns() {
    let computed = RENAMED.replace("select t.k as key, s.w as win", "select t.k + 0 as key, s.w as win");
    // `key` is now computed, not copied: the seal on `k` no longer reaches the gate.
    assert_eq!(system_label(&computed, "k"), "Run");
}

#[test]
fn threshold_tests_that_only_grow_true_are_confluent() {
    let module = |having: &str| {
        format!(
            "module R {{ input c(id: int, n: int); input q(id: int); output r(id: int); table cs(id: int, n: int); scratch hot(id: int);
               cs <= c; hot <= from cs x group by x.id having {having} select x.id; r <= from q y, hot h where y.id == h.id select y.id; }}"
        )
    };
    let label =
        |having: &str| annotations(&module(having), &[]).into_iter().find(|a| a.starts_with("R.q")).unwrap_or_default();
    assert_eq!(label("count(*) > 10"), "R.q -> r: CR");
    assert_eq!(label("count(x.n) >= 10"), "R.q -> r: CR");
    assert_eq!(label("10 < count(*)"), "R.q -> r: CR");
    assert_eq!(label("max(x.n) > 10"), "R.q -> r: CR");
    assert_eq!(label("min(x.n) < 10"), "R.q -> r: CR");
    assert_eq!(label("sum(1) > 10"), "R.q -> r: CR");
    assert_eq!(label("count(*) < 10"), "R.q -> r: OR{id}");
    assert_eq!(label("max(x.n) < 10"), "R.q -> r: OR{id}");
    assert_eq!(label("sum(x.n) > 10"), "R.q -> r: OR{id}", "a sum of possibly negative values can shrink");
    assert_eq!(label("avg(x.n) > 10.0"), "R.q -> r: OR{id}");
}

#[test]
fn a_threshold_over_a_table_with_deletions_is_not_monotone() {
    let src = "module R { input c(id: int); input d(id: int); input q(id: int); output r(id: int); table cs(id: int); scratch hot(id: int);
               cs <= c; cs <- from d x, cs y where x.id == y.id select y.id;
               hot <= from cs x group by x.id having count(*) > 10 select x.id; r <= from q y, hot h where y.id == h.id select y.id; }";
    let a = annotations(src, &[]);
    assert!(a.contains(&"R.q -> r: OR{id}".to_string()), "{a:?}");
    // The deletion races with inserts: the table's contents depend on the order of `c` and
    // `d`, which corrupts state for both paths, even when read through a scratch.
    assert!(a.contains(&"R.d -> r: OW{id}".to_string()), "{a:?}");
    assert!(a.contains(&"R.c -> r: OW{id}".to_string()), "{a:?}");
}

#[test]
fn antijoins_gate_on_their_column_pairs() {
    let src = "module M { input a(k: int, v: int); input b(k: int); output o(k: int, v: int); table seen(k: int);
               seen <= b; o <= from a x notin seen s on x.k == s.k select x.k, x.v; }";
    // The race between `a` and the stored `b` is charged to `a`, whose arrival triggers the
    // read; `seen` itself is insert-only, so `b`'s path is confluent (as Report's click path).
    assert_eq!(annotations(src, &[]), ["M.a -> o: OR{k}", "M.b -> o: CW"]);
}
