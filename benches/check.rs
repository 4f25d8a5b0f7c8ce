//! Compile-time benchmark: `compile` (parse, resolve, type-check, stratify, analyse) on generated
//! programs of 1k, 10k and 100k rules. Prints the time and the time per rule, so linear
//! growth shows as a flat per-rule column. Run with `cargo bench --bench check`.

use std::fmt::Write;
use std::time::Instant;

/// A program of `rules` rules spread over modules of 50 rules each. Every module has a
/// chain of scratches joined, filtered, aggregated and negated, so every stage has work.
fn program(rules: usize) -> String {
    let mut src = String::from("param limit: int = 10;\n");
    let modules = rules.div_ceil(50);
    for m in 0..modules {
        let _ = writeln!(src, "module M{m} {{");
        src.push_str("  input src(k: int, v: int);\n  output out(k: int, v: int);\n");
        for i in 0..50 {
            let _ = writeln!(src, "  scratch s{i}(k: int, v: int);");
        }
        src.push_str("  s0 <= src;\n");
        for i in 1..49 {
            let p = i - 1;
            let rule = match i % 4 {
                0 => format!("  s{i} <= from s{p} a, src b where a.k == b.k and a.v > limit select a.k, b.v + 1;\n"),
                1 => format!("  s{i} <= from s{p} a group by a.k select a.k, count(*) as v;\n"),
                2 => format!("  s{i} <= from s{p} a notin src b on a.k == b.k select a.k, a.v * 2;\n"),
                _ => format!("  s{i} <= from s{p} a where a.v % 3 == 1 or a.k < 5 select a.*;\n"),
            };
            src.push_str(&rule);
        }
        src.push_str("  out <= s48;\n}\n");
    }
    src
}

fn main() {
    println!("{:>8} {:>10} {:>12} {:>14}", "rules", "bytes", "time (ms)", "ns per rule");
    for rules in [1_000usize, 10_000, 100_000] {
        let src = program(rules);
        // Best of three, to damp the noise of a shared machine.
        let mut best = f64::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            let c = bloomc_compiler::compile("bench.bl", src.as_bytes(), &[]);
            let elapsed = start.elapsed().as_secs_f64();
            assert!(!c.has_errors(), "generated program must check clean");
            best = best.min(elapsed);
        }
        let actual = rules.div_ceil(50) * 50;
        println!("{actual:>8} {:>10} {:>12.1} {:>14.0}", src.len(), best * 1e3, best * 1e9 / actual as f64);
    }
}
