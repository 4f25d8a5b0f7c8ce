//! Every example and standard-library module checks clean, and its IR is snapshotted so a
//! reviewer sees what a change does to the compiled form. Examples cannot go stale.

use bloomc_compiler::diagnostic::Severity;
use bloomc_compiler::{compile_with, dump, render, Options};
use std::path::Path;

fn check_clean(name: &str, bytes: &[u8], sets: &[(String, String)]) -> String {
    check_clean_with(name, bytes, &Options { overrides: sets.to_vec(), ..Options::default() })
}

fn check_clean_with(name: &str, bytes: &[u8], options: &Options) -> String {
    let sets = &options.overrides;
    let c = compile_with(name, bytes, options);
    // Notes from the analysis (a seal keeps a path deterministic) are fine; nothing else is.
    let problems: Vec<_> = c.diagnostics.iter().filter(|d| d.severity() != Severity::Note).collect();
    let rendered: String = problems.iter().map(|d| render::render_human(&c.sources, d, false)).collect();
    assert!(problems.is_empty(), "{name} {sets:?} should check clean:\n{rendered}");
    dump::program(c.program.as_ref().expect("a clean program has IR"))
}

#[test]
fn every_example_checks_clean() {
    insta::glob!("../examples", "*.bl", |path| {
        let bytes = std::fs::read(path).expect("example is readable");
        let name = format!("examples/{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("?"));
        insta::assert_snapshot!(check_clean(&name, &bytes, &[]));
    });
}

#[test]
fn every_adtrack_query_checks_clean() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/adtrack.bl");
    let bytes = std::fs::read(path).expect("adtrack.bl is readable");
    // POOR is nondeterministic by design: its warning is the analysis working.
    let allow = |q: &str| -> Vec<(String, String)> { vec![("query".into(), q.into())] };
    for query in ["THRESH", "WINDOW", "CAMPAIGN"] {
        let ir = check_clean("examples/adtrack.bl", &bytes, &allow(query));
        // Exactly one `when` branch of Report is compiled: one aggregate rule into `hits`.
        assert_eq!(ir.matches("hits <= from clicks c").count(), 1, "{query}:\n{ir}");
        insta::assert_snapshot!(format!("adtrack_{query}"), ir);
    }
}

#[test]
fn wordcount_seal_follows_its_parameter() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/wordcount.bl");
    let bytes = std::fs::read(path).expect("wordcount.bl is readable");
    let sealed = check_clean("examples/wordcount.bl", &bytes, &[]);
    assert!(sealed.contains("seal splitter.tweet on (batch)"), "{sealed}");
    // Unsealed, the word count is nondeterministic (the analysis says so; see tests/analyze.rs).
    let unsealed = check_clean_with(
        "examples/wordcount.bl",
        &bytes,
        &Options {
            overrides: vec![("seal_batch".into(), "false".into())],
            allow_nondeterminism: true,
            ..Options::default()
        },
    );
    assert!(!unsealed.contains("seal "), "{unsealed}");
}

#[test]
fn every_stdlib_module_checks_clean() {
    // Library modules are checked on their own; whether a deployment of the KVS is
    // deterministic depends on its seals, so nondeterminism warnings are off here.
    let allow = Options { allow_nondeterminism: true, ..Options::default() };
    for (name, src) in bloomc_compiler::stdlib::LIBRARIES {
        check_clean_with(&format!("<stdlib>/{name}.bl"), src.as_bytes(), &allow);
    }
}
