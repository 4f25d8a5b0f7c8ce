//! The `bloomc` binary end to end: exit codes, output formats, and bad files.

// A test fails by panicking: indexing a JSON report or a list that lacks the entry is
// such a failure.
#![allow(clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

mod common;
use common::bloomc;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn clean_program_exits_zero_with_a_summary() {
    let out = bloomc(&["check", "examples/adtrack.bl"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("examples/adtrack.bl: ok (4 modules"), "{}", text(&out.stdout));
}

#[test]
fn errors_exit_one_and_name_file_line_and_column() {
    let out = bloomc(&["check", "tests/diagnostics/e0102_unknown_column.bl"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("[E0102] Error: `clicks` has no column `campain`"), "{err}");
    assert!(err.contains("tests/diagnostics/e0102_unknown_column.bl:5:33"), "{err}");
    assert!(err.contains("did you mean `campaign`?"), "{err}");
}

#[test]
fn json_format_lists_every_diagnostic_with_its_location() {
    let out = bloomc(&["check", "--format", "json", "tests/diagnostics/e0001_unexpected_token.bl"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["errors"], 2);
    let diags = v["diagnostics"].as_array().expect("a list");
    assert_eq!(diags.len(), 2);
    assert_eq!(diags[0]["code"], "E0001");
    assert_eq!(diags[0]["line"], 5);
    assert_eq!(diags[0]["column"], 3);
    assert_eq!(diags[1]["line"], 6);
    assert!(diags[1]["help"].as_str().is_some_and(|h| h.starts_with("expected one of")));
}

#[test]
fn set_overrides_parameters_and_rejects_bad_values() {
    let out = bloomc(&["dump", "ir", "examples/adtrack.bl", "--set", "query=WINDOW", "--set", "replicas=5"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let ir = text(&out.stdout);
    assert!(ir.contains("query: string = \"WINDOW\"  (--set)"), "{ir}");
    assert!(ir.contains("node report: Report x 5 replicated"), "{ir}");
    assert!(ir.contains("seal report.click on (window)"), "{ir}");

    let bad = bloomc(&["check", "examples/adtrack.bl", "--set", "replicas=many"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("`many` is not a valid int for parameter `replicas`"), "{}", text(&bad.stderr));

    let malformed = bloomc(&["check", "examples/adtrack.bl", "--set", "replicas"]);
    assert_eq!(malformed.status.code(), Some(2), "a usage error");
}

#[test]
fn missing_file_and_directory_are_io_errors() {
    let out = bloomc(&["check", "no/such/file.bl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read `no/such/file.bl`"), "{}", text(&out.stderr));

    let out = bloomc(&["check", "examples"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`examples` is a directory"), "{}", text(&out.stderr));
}

#[test]
fn non_utf8_source_is_a_located_error() {
    let dir = scratch_dir("cli_utf8");
    let path = dir.join("latin1.bl");
    std::fs::write(&path, b"// caf\xe9\nmodule M {}\n").expect("write");
    let out = bloomc(&["check", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("[E0007]") && err.contains("latin1.bl:1:7"), "{err}");
}

#[test]
fn dump_ast_shows_the_tree_even_with_syntax_errors() {
    let out = bloomc(&["dump", "ast", "tests/diagnostics/e0001_unexpected_token.bl"]);
    assert_eq!(out.status.code(), Some(1));
    let ast = text(&out.stdout);
    assert!(ast.contains("Module(") && ast.contains("Error("), "{ast}");
}

#[test]
fn usage_errors_exit_two() {
    let out = bloomc(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn set_reaches_parameters_derived_from_it() {
    let dir = scratch_dir("cli_set_chain");
    let path = dir.join("chain.bl");
    std::fs::write(&path, "param a: int = 1;\nparam b: int = a * 2;\n").expect("write");
    let out = bloomc(&["dump", "ir", path.to_str().expect("utf-8 path"), "--set", "a=10"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let ir = text(&out.stdout);
    assert!(ir.contains("a: int = 10  (--set)") && ir.contains("b: int = 20"), "{ir}");
}
