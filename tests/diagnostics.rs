//! Data-driven diagnostics: every `tests/diagnostics/*.bl` file names the codes it must
//! produce in a `// expect:` header (and optional `// args: --set k=v` overrides). The test
//! checks the codes exactly and snapshots the source with the rendered output.

// A test fails by panicking: indexing a JSON report or a list that lacks the entry is
// such a failure.
#![allow(clippy::indexing_slicing)]

use bloomc_compiler::diagnostic::Code;
use bloomc_compiler::{analyze_greybox, compile, compile_with, render, Options};
use std::collections::BTreeSet;
use std::path::Path;

fn header<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .take_while(|l| l.starts_with("//") || l.starts_with('#'))
        .filter_map(|l| l.trim_start_matches('/').trim_start_matches('#').trim().strip_prefix(key))
        .flat_map(|rest| rest.split_whitespace())
        .collect()
}

/// Reads `--set k=v`, `--seal stream=a,b` and `--allow nondeterminism` from an args header.
fn options(args: &[&str]) -> Options {
    let mut o = Options::default();
    for pair in args.windows(2) {
        match (pair[0], pair[1].split_once('=')) {
            ("--set", Some((k, v))) => o.overrides.push((k.to_string(), v.to_string())),
            ("--seal", Some((k, v))) => o.seals.push((k.to_string(), v.split(',').map(str::to_string).collect())),
            ("--allow", None) => o.allow_nondeterminism = pair[1] == "nondeterminism",
            _ => {}
        }
    }
    o
}

/// Compiles one test file; returns the codes and the snapshot text.
fn run(path: &Path) -> (Vec<String>, Vec<String>, String) {
    let bytes = std::fs::read(path).expect("test file is readable");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let expect: Vec<String> = header(&text, "expect:").into_iter().map(str::to_string).collect();
    let raw_args = header(&text, "args:");
    let args = options(&raw_args);
    let name = format!("tests/diagnostics/{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("?"));
    let (sources, diagnostics) = if path.extension().is_some_and(|e| e == "yml") {
        let variant = raw_args.windows(2).find(|w| w[0] == "--variant").map(|w| w[1]);
        let run = analyze_greybox(&name, &bytes, &args, variant);
        (run.sources, run.diagnostics)
    } else {
        let c = compile_with(&name, &bytes, &args);
        (c.sources, c.diagnostics)
    };
    let codes: Vec<String> = diagnostics.iter().map(|d| d.code.as_str().to_string()).collect();
    let rendered: String = diagnostics.iter().map(|d| render::render_human(&sources, d, false)).collect();
    (expect, codes, format!("{text}\n----- bloomc check -----\n{rendered}"))
}

#[test]
fn every_wrong_program_reports_exactly_its_codes() {
    insta::glob!("diagnostics/*.{bl,yml}", |path| {
        let (mut expect, mut codes, snapshot) = run(path);
        expect.sort();
        codes.sort();
        assert_eq!(codes, expect, "{}: codes differ from its `// expect:` header\n{snapshot}", path.display());
        insta::assert_snapshot!(snapshot);
    });
}

#[test]
fn every_code_has_a_test_program() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diagnostics");
    let mut covered = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("tests/diagnostics exists") {
        let path = entry.expect("directory entry").path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("readable")).into_owned();
        covered.extend(header(&text, "expect:").into_iter().map(str::to_string));
    }
    let missing: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).filter(|c| !covered.contains(*c)).collect();
    assert!(missing.is_empty(), "codes without a test program in tests/diagnostics: {missing:?}");
}

/// Bud's stratifier accepts `r <= x; x <= r; r <= z notin y; y <= x` in one order; bloomc
/// must reject all 24 orders.
#[test]
fn bud_unstratifiable_program_is_rejected_in_every_rule_order() {
    let rules = ["r <= x;", "x <= r;", "r <= from z notin y;", "y <= x;"];
    let mut orders = 0;
    for a in 0..4 {
        for b in 0..4 {
            for c in 0..4 {
                for d in 0..4 {
                    let idx = [a, b, c, d];
                    if idx.iter().collect::<BTreeSet<_>>().len() != 4 {
                        continue;
                    }
                    let body: Vec<&str> = idx.iter().map(|&i| rules[i]).collect();
                    let src = format!(
                        "module M {{ input z(a: int); output out(a: int); scratch r(a: int); scratch x(a: int); scratch y(a: int); out <= r; {} }}",
                        body.join(" ")
                    );
                    let c = compile("order.bl", src.as_bytes(), &[]);
                    let codes: Vec<&str> = c.diagnostics.iter().map(|d| d.code.as_str()).collect();
                    assert_eq!(codes, ["E0200"], "order {idx:?} was not rejected exactly once:\n{src}");
                    orders += 1;
                }
            }
        }
    }
    assert_eq!(orders, 24);
}
