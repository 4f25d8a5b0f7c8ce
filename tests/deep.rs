//! Input that nests deeply never exhausts a stack: chains of a million operators and
//! 100,000 nested `when` blocks end quickly, through the built binary, with E0008 at the
//! place where the limit of 256 is passed (exit 1, never a crash), while programs exactly at
//! the limit check, dump and run. Also: `dump ast` grows linearly with a chain's length.

mod common;

use common::procs::{finish, scratch};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `bloomc ARGS FILE` with a time limit; returns (exit code, stdout, stderr).
fn bloomc(args: &[&str], file: &std::path::Path) -> (Option<i32>, String, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_bloomc"))
        .args(args)
        .arg(file)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bloomc starts");
    finish(child, Duration::from_secs(120))
}

const MILLION: usize = 1_000_000;

#[test]
fn a_million_operators_in_a_row_give_e0008_where_the_limit_is_passed() {
    let dir = scratch("deep-chains", &[]);
    // (name, text, where E0008 points, commands). `param p: int = ` is 15 columns.
    let chains: Vec<(&str, String, String, &[&[&str]])> = vec![
        // A left-associative chain is 257 deep at its 256th operator.
        ("plus", format!("param p: int = {};\n", vec!["1"; MILLION].join(" + ")), ":1:1038".into(), &[&["check"]]),
        (
            "and",
            format!("param p: bool = {};\n", vec!["true"; MILLION].join(" and ")),
            ":1:".into(),
            &[&["dump", "ast"]],
        ),
        // Runs of prefix operators and brackets are refused before parsing.
        (
            "minus",
            format!("param p: int = {}1;\n", "-".repeat(MILLION)),
            ":1:272".into(),
            &[&["check"], &["dump", "ast"], &["dump", "ir"], &["run"]],
        ),
        (
            "not",
            format!("param p: bool = {}true;\n", "not ".repeat(MILLION)),
            ":1:1041".into(),
            &[&["check"], &["dump", "ast"]],
        ),
        (
            "parens",
            format!("param p: int = {}1{};\n", "(".repeat(MILLION), ")".repeat(MILLION)),
            ":1:272".into(),
            &[&["check"], &["dump", "ir"]],
        ),
        (
            "nested",
            format!("param p: int = {}1{};\n", "1 + (".repeat(MILLION), ")".repeat(MILLION)),
            ":1:1300".into(),
            &[&["check"], &["run"]],
        ),
    ];
    for (name, text, at, commands) in chains {
        let file = dir.join(format!("{name}.bl"));
        std::fs::write(&file, text).expect("write");
        for args in commands {
            let start = Instant::now();
            let (code, _, err) = bloomc(args, &file);
            assert_eq!(code, Some(1), "{name} {args:?}: {}", err.get(..2000).unwrap_or(&err));
            assert!(
                err.contains("[E0008]") && err.contains(&format!("{name}.bl{at}")),
                "{name}: {}",
                err.get(..2000).unwrap_or(&err)
            );
            assert!(start.elapsed() < Duration::from_secs(60), "{name} {args:?} took {:?}", start.elapsed());
        }
    }
}

#[test]
fn a_hundred_thousand_nested_whens_give_e0008_at_the_brace_past_the_limit() {
    let dir = scratch("deep-whens", &[]);
    let n = 100_000;
    let text = format!(
        "param a: bool = true;\nmodule M {{\n{}table t(x: int);\n{}}}\n",
        "when a {\n".repeat(n),
        "}\n".repeat(n)
    );
    let file = dir.join("when.bl");
    std::fs::write(&file, text).expect("write");
    for args in [&["check"][..], &["dump", "ast"], &["dump", "ir"], &["analyze"]] {
        let (code, _, err) = bloomc(args, &file);
        assert_eq!(code, Some(1), "{args:?}: {}", err.get(..2000).unwrap_or(&err));
        // The module's brace is the first; the 256th `when` (line 258) opens the 257th.
        assert!(err.contains("[E0008]") && err.contains("when.bl:258:8"), "{err}");
    }
}

/// A rule whose head is a chain of `terms` terms, the last nested in `whens` blocks, fed
/// ten rows.
fn program(terms: usize, whens: usize) -> String {
    let chain = vec!["i.n"; terms].join(" + ");
    format!(
        "param a: bool = true;\nmodule M {{ input i(n: int); output o(n: int);\n{}o <= from i select {chain} as n;\n{}}}
system S {{ node m: M; feed m.i from generate(rows: 10, seed: 1) {{ n: row() }}; }}\n",
        "when a {\n".repeat(whens),
        "}\n".repeat(whens)
    )
}

#[test]
fn programs_at_the_limit_check_dump_and_run() {
    let dir = scratch("deep-limit", &[]);
    // 256 terms: 256 deep. 254 `when`s: with the module's and the generator's braces, 255 and
    // 256 deep. 255 `-` in a row over an operand: 256 deep.
    let cases = [
        ("chain", program(256, 0), "o(2304)"),
        ("whens", program(1, 254), "o(9)"),
        ("prefix", program(1, 0).replace("select i.n", &format!("select {}i.n", "-".repeat(255))), "o(-9)"),
    ];
    for (name, text, fact) in cases {
        let file = dir.join(format!("{name}.bl"));
        std::fs::write(&file, text).expect("write");
        for args in [&["check"][..], &["dump", "ast"], &["dump", "ir"], &["dump", "plan"], &["analyze"]] {
            let (code, _, err) = bloomc(args, &file);
            assert_eq!(code, Some(0), "{name} {args:?}: {err}");
        }
        for workers in ["1", "2"] {
            let (code, out, err) = bloomc(&["run", "--workers", workers], &file);
            assert_eq!(code, Some(0), "{name}: {err}");
            assert!(out.contains(fact), "{name}: {out}");
        }
    }
    // One more term is one too many.
    std::fs::write(dir.join("over.bl"), program(257, 0)).expect("write");
    let (code, _, err) = bloomc(&["check"], &dir.join("over.bl"));
    assert_eq!(code, Some(1));
    assert!(err.contains("[E0008]"), "{err}");
}

#[test]
fn dump_ast_grows_linearly_with_a_chain() {
    let dir = scratch("deep-dump", &[]);
    let size = |terms: usize| {
        let file = dir.join(format!("sum{terms}.bl"));
        std::fs::write(&file, format!("param p: int = {};\n", vec!["1"; terms].join(" + "))).expect("write");
        let (code, out, err) = bloomc(&["dump", "ast"], &file);
        assert_eq!(code, Some(0), "{err}");
        out.len()
    };
    let (small, large) = (size(64), size(256));
    // Four times the terms, about four times the text (pretty-printing indented every level:
    // sixteen times, and 5 MB at 256 terms).
    assert!(large < small * 5, "{small} bytes for 64 terms, {large} for 256");
    assert!(large < 100_000, "{large} bytes for 256 terms");
}
