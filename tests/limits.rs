//! The command line's bounds: `--workers` at most 1,024, `--batch` from 1 to 1,000,000, standard
//! input read by one input only, input files and fields bounded (`--max-input-bytes`,
//! `--max-field-bytes`, errors naming file, line and column), and a generator's batch at
//! most 1,000,000 rows per tick, its default included. Sizes that were quadratic: a
//! `--max-ticks` run whose table grows every tick, `check` of many interfaces, tables,
//! modules or chained rules, and rendering many warnings.

mod common;

use common::bloomc;
use common::procs::scratch;
use std::io::Write;
use std::process::{Command, Stdio};

const TWO: &str =
    "module M { input a(x: int); input b(s: string); output o(x: int); output p(s: string); o <= a; p <= b; }";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn workers_and_batch_are_bounded() {
    let dir = scratch("limits-flags", &[("two.bl", TWO)]);
    let file = dir.join("two.bl").display().to_string();
    for (flag, value, why) in [
        ("--workers", "1025", "from 1 to 1024"),
        ("--workers", "0", "from 1 to 1024"),
        ("--batch", "0", "from 1 to 1000000"),
        ("--batch", "1000001", "from 1 to 1000000"),
        ("--batch", "18446744073709551616", "from 1 to 1000000"),
    ] {
        let out = bloomc(&["run", &file, flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        assert!(text(&out.stderr).contains(why), "{flag} {value}: {}", text(&out.stderr));
    }
    for value in ["0", "1000001"] {
        let out = bloomc(&["node", &file, "--name", "m", "--batch", value]);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains("from 1 to 1000000"), "{}", text(&out.stderr));
    }
    // The largest batch is accepted: the run gets as far as the inputs.
    let out = bloomc(&["run", &file, "--batch", "1000000", "--input", "nosuch=x.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no input interface `nosuch`"), "{}", text(&out.stderr));
    // 1,024 is accepted: the run gets as far as the inputs (and stops there, rather than
    // start 1,024 threads).
    let out = bloomc(&["run", &file, "--workers", "1024", "--input", "nosuch=x.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no input interface `nosuch`"), "{}", text(&out.stderr));
}

#[test]
fn standard_input_feeds_one_input_only() {
    let dir = scratch("limits-stdin", &[("two.bl", TWO)]);
    let file = dir.join("two.bl").display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bloomc"))
        .args(["run", &file, "--input", "a=-", "--input", "b=-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bloomc starts");
    let _ = child.stdin.take().map(|mut s| s.write_all(b"1\n"));
    let out = child.wait_with_output().expect("bloomc ends");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("inputs `a` and `b` both read standard input"), "{err}");
}

#[test]
fn input_files_and_fields_are_bounded() {
    let long = "y".repeat(3000);
    let dir = scratch(
        "limits-input",
        &[
            ("two.bl", TWO),
            ("b.csv", &format!("s\nshort\n{long}\n")),
            ("b.jsonl", &format!("{{\"s\": \"ok\"}}\n{{\"s\": \"{long}\"}}\n")),
        ],
    );
    let file = dir.join("two.bl").display().to_string();
    // An endless file stops at the limit, named.
    let out = bloomc(&["run", &file, "--input", "a=/dev/zero", "--max-input-bytes", "100000"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("`/dev/zero` holds more than 100000 bytes") && err.contains("--max-input-bytes"), "{err}");
    // A long field is a bad row at its line and column, in CSV and in JSON lines.
    for (name, at) in [("b.csv", "b.csv:3:1"), ("b.jsonl", "b.jsonl:2:1")] {
        let input = format!("b={}", dir.join(name).display());
        let out = bloomc(&["run", &file, "--input", &input, "--max-field-bytes", "1000"]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = text(&out.stderr);
        assert!(
            err.contains(at) && err.contains("a field of 3000 bytes") && err.contains("--max-field-bytes"),
            "{err}"
        );
        // Raised, the same file is read.
        let out = bloomc(&["run", &file, "--input", &input, "--max-field-bytes", "4000"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("p: 2 facts emitted"), "{}", text(&out.stdout));
    }
}

#[test]
fn a_generator_of_2_pow_63_rows_delivers_bounded_ticks() {
    let program = "module M { input a(x: int); output o(x: int); o <= a; }
system S { node m: M; feed m.a from generate(rows: 9223372036854775807) { x: row() }; }";
    let dir = scratch("limits-generator", &[("huge.bl", program)]);
    let out = bloomc(&["dump", "plan", &dir.join("huge.bl").display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(plan.contains("generator: 9223372036854775807 rows, 1000000 per tick"), "{plan}");
}

/// Checks the program `make(n)` and `make(n / 4)`, both free of errors, and requires the
/// larger to take under 9 times as long: about 4 times when the work is linear, 16 when it
/// is quadratic. No absolute time is asserted (the machines are shared and noisy). Each
/// program below was quadratic somewhere in the front end, the analysis, the stratification
/// or the rendering of diagnostics: in a release build it took 3 s to 25 s (rendering
/// 20,000 warnings about 90 s in debug), and takes under a second now.
fn check_scales_linearly(name: &str, n: usize, make: fn(usize) -> String) -> String {
    let timed = |n: usize| {
        let dir = scratch(&format!("{name}-{n}"), &[("p.bl", &make(n))]);
        let start = std::time::Instant::now();
        let out = bloomc(&["check", &dir.join("p.bl").display().to_string()]);
        let took = start.elapsed();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr).get(..2000).unwrap_or(""));
        (took, text(&out.stderr))
    };
    let (short, _) = timed(n / 4);
    let (long, stderr) = timed(n);
    assert!(long < short * 9, "{name}: {} took {short:?}, {n} took {long:?}", n / 4);
    stderr
}

#[test]
fn rendering_many_warnings_is_linear() {
    // A warning per module (an output never written): each used to index every line of the
    // file again; now the lines are indexed once.
    let stderr = check_scales_linearly("limits-render", 20_000, |n| {
        (0..n).map(|i| format!("module M{i} {{ table t(x: int); output o(x: int); }}\n")).collect()
    });
    assert_eq!(stderr.matches("[W0001]").count(), 20_000);
}

#[test]
fn check_of_10_000_inputs_and_outputs_is_fast() {
    // Every input into its own output and into one shared output: module paths, interface
    // positions, labels and diagnostics each scanned per input or output.
    check_scales_linearly("limits-check-interfaces", 10_000, |n| {
        let mut program = String::from("module M {\n  output all(x: int);\n");
        for i in 0..n {
            program.push_str(&format!("  input i{i}(x: int); output o{i}(x: int); o{i} <= i{i}; all <= i{i};\n"));
        }
        program.push_str("}\n");
        program
    });
}

#[test]
fn check_of_50_000_tables_read_from_one_input_is_fast() {
    // The input has 50,000 readers: the condensation deduplicated its edges one scan each.
    check_scales_linearly("limits-check-tables", 50_000, |n| {
        let mut program = String::from("module M {\n  input a(x: int);\n  output o(x: int);\n");
        for i in 0..n {
            program.push_str(&format!("  table t{i}(x: int); t{i} <= a;\n"));
        }
        program.push_str("  o <= t0;\n}\nsystem S { node m: M; feed m.a from generate(rows: 1) { x: row() }; }\n");
        program
    });
}

#[test]
fn check_of_50_000_modules_is_fast() {
    // Each module's fresh collections were computed over every collection of the program.
    check_scales_linearly("limits-check-modules", 50_000, |n| {
        (0..n).map(|i| format!("module M{i} {{ table t(x: int); output o(x: int); o <= t; }}\n")).collect()
    });
}

#[test]
fn check_of_a_chain_of_50_000_scratches_is_fast() {
    // Fresh scratches were found in one round per link; petgraph's recursive Tarjan
    // overflowed the stack on this chain in a debug build (and on 300,000 links in release).
    check_scales_linearly("limits-check-chain", 50_000, |n| {
        let mut program =
            String::from("module M {\n  input a(x: int);\n  output o(x: int);\n  scratch s0(x: int); s0 <= a;\n");
        for i in 1..n {
            program.push_str(&format!("  scratch s{i}(x: int); s{i} <= s{};\n", i - 1));
        }
        program.push_str(&format!("  o <= s{};\n}}\n", n - 1));
        program
    });
}

/// A counter whose table keeps every value: each tick adds one row, and a `<+` rule
/// aggregates the whole table.
const COUNTER: &str = "module M {
  input start(n: int);
  table c(n: int);
  output o(n: int);
  c <= start;
  c <+ from c x select max(x.n) + 1;
  o <= c;
}
system S { node m: M; feed m.start from generate(rows: 1) { n: row() }; }
";

#[test]
fn max_ticks_of_a_growing_table_takes_linear_time() {
    let dir = scratch("limits-counter", &[("counter.bl", COUNTER)]);
    let file = dir.join("counter.bl").display().to_string();
    // The aggregate over the table folds each tick's new row (it was a `reduce`, handed the
    // whole table again every tick: 8,000 ticks took 8 s in a release build, 16,000 about
    // four times that).
    let out = bloomc(&["dump", "plan", &file]);
    let plan = text(&out.stdout);
    assert!(plan.contains("r1 c <+: scan c -> fold per group"), "{plan}");
    let run = |ticks: u64| {
        let start = std::time::Instant::now();
        let out = bloomc(&["run", &file, "--max-ticks", &ticks.to_string()]);
        let took = start.elapsed();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(&format!("{ticks} ticks (stopped at --max-ticks)")),
            "{}",
            text(&out.stderr)
        );
        assert!(text(&out.stdout).contains(&format!("o({})", ticks - 1)), "the counter reached {}", ticks - 1);
        took
    };
    // Four times the ticks: about four times the time when linear, sixteen when quadratic.
    // The bound leaves room for a busy machine, and the short run is long enough that
    // starting the process does not hide the difference.
    let short = run(500);
    let long = run(2_000);
    assert!(long < short * 9, "500 ticks took {short:?}, 2,000 took {long:?}");
}
