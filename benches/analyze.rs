//! Analysis benchmark: a generated system of N modules with 10 rules each, wired in a chain
//! of node groups, half of them sealed, some replicated. Times the whole compile (parse,
//! resolve, stratify, analyse) and the analysis alone (module paths, labels, coordination),
//! at several sizes so that the growth shows. Run with `cargo bench --bench analyze`.

use bloomc_compiler::analysis::{build, report::Analysis};
use std::fmt::Write;
use std::time::Instant;

fn program(modules: usize) -> String {
    let mut src = String::new();
    for m in 0..modules {
        let _ = writeln!(src, "module M{m} {{");
        src.push_str(
            "  input inp(k: int, w: int, v: int);\n  input req(k: int);\n  output out(k: int, w: int, v: int);\n",
        );
        src.push_str("  table log(k: int, w: int, v: int);\n  table seen(k: int);\n");
        src.push_str("  scratch s1(k: int, w: int, v: int);\n  scratch s2(k: int, w: int, n: int);\n  scratch s3(k: int, w: int, v: int);\n");
        src.push_str("  log <= inp;\n  seen <= req;\n");
        src.push_str("  s1 <= from log l, seen s where l.k == s.k select l.k, l.w, l.v;\n");
        src.push_str("  s2 <= from s1 a group by a.k, a.w select a.k, a.w, count(*) as n;\n");
        src.push_str("  s3 <= from s2 b where b.n > 1 select b.k, b.w, b.n;\n");
        src.push_str("  s3 <= from inp i notin seen s on i.k == s.k select i.k, i.w, i.v;\n");
        src.push_str("  s1 <= from inp i where i.v % 2 == 0 select i.*;\n");
        src.push_str("  out <= from s3 c select c.k, c.w, c.v;\n");
        src.push_str("  out <= from req r, log l where r.k == l.k select l.k, l.w, l.v;\n");
        src.push_str("  log <+ from inp i where i.v > 100 select i.k, i.w, i.v + 1;\n}\n");
    }
    src.push_str("system Chain {\n");
    for m in 0..modules {
        let rep = if m % 3 == 0 { " replicated" } else { "" };
        let _ = writeln!(src, "  node n{m}: M{m} * 2{rep};");
        let _ = writeln!(src, "  feed n{m}.req from generate(rows: 10) {{ k: row() }};");
        if m == 0 {
            src.push_str("  feed n0.inp from generate(rows: 10) { k: row(), w: row(), v: row() };\n");
        } else {
            let _ = writeln!(src, "  n{}.out -> n{m}.inp partition(k);", m - 1);
        }
        if m % 2 == 0 {
            let _ = writeln!(src, "  n{m}.inp sealed on (k);");
        }
    }
    src.push_str("}\n");
    src
}

fn best_of_3(mut f: impl FnMut() -> f64) -> f64 {
    (0..3).map(|_| f()).fold(f64::MAX, f64::min)
}

fn main() {
    println!("{:>8} {:>8} {:>14} {:>14} {:>16}", "modules", "rules", "compile (ms)", "analysis (ms)", "µs per module");
    for modules in [100usize, 500, 1_000, 2_000] {
        let src = program(modules);
        let compile = best_of_3(|| {
            let start = Instant::now();
            let c = bloomc_compiler::compile("bench.bl", src.as_bytes(), &[]);
            assert!(!c.has_errors(), "generated program must compile");
            start.elapsed().as_secs_f64()
        });
        let c = bloomc_compiler::compile("bench.bl", src.as_bytes(), &[]);
        let p = c.program.expect("IR");
        let rules = p.rules.len();
        let analysis = best_of_3(|| {
            let start = Instant::now();
            let (g, _) = build::graph(&p, &[]);
            let a = Analysis::new(g, false);
            assert!(!a.labels.outputs.is_empty());
            start.elapsed().as_secs_f64()
        });
        println!(
            "{modules:>8} {rules:>8} {:>14.1} {:>14.1} {:>16.1}",
            compile * 1e3,
            analysis * 1e3,
            analysis * 1e6 / modules as f64
        );
    }
}
