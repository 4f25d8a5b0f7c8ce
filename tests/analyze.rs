//! `bloomc analyze` end to end: the paper's Section VI results from both the grey-box files
//! and the white-box examples, the JSON shape tools rely on, and snapshots of the human
//! output and of `--explain`.

// A test fails by panicking: indexing a JSON report or a list that lacks the entry is
// such a failure.
#![allow(clippy::indexing_slicing)]

mod common;
use common::bloomc;

fn json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["analyze", "--format", "json"];
    all.extend_from_slice(args);
    let out = bloomc(&all);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// The label of the named stream (`name` as printed: `group.output`, or an interface name).
fn stream(v: &serde_json::Value, name: &str) -> String {
    let s = v["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stream {name} in {v}"));
    let key: Vec<String> =
        s["key"].as_array().expect("key").iter().map(|k| k.as_str().unwrap_or("").to_string()).collect();
    if key.is_empty() {
        s["label"].as_str().unwrap_or("").to_string()
    } else {
        format!("{}{{{}}}", s["label"].as_str().unwrap_or(""), key.join(","))
    }
}

#[test]
fn greybox_wordcount_is_run_then_async_with_seal_batch() {
    assert_eq!(stream(&json(&["examples/wordcount.blazes.yml"]), "db"), "Run");
    assert_eq!(stream(&json(&["examples/wordcount.blazes.yml", "--seal", "tweets=batch"]), "db"), "Async");
}

#[test]
fn greybox_adreport_matches_section_vi() {
    let f = "examples/adreport.blazes.yml";
    assert_eq!(stream(&json(&[f, "--variant", "THRESH"]), "response"), "Async");
    assert_eq!(stream(&json(&[f, "--variant", "POOR"]), "response"), "Diverge");
    assert_eq!(stream(&json(&[f, "--variant", "CAMPAIGN", "--seal", "click=campaign"]), "response"), "Async");
    assert_eq!(stream(&json(&[f, "--variant", "WINDOW", "--seal", "click=window"]), "response"), "Async");
    // An incompatible seal does not help.
    assert_eq!(stream(&json(&[f, "--variant", "CAMPAIGN", "--seal", "click=window"]), "response"), "Diverge");
}

#[test]
fn whitebox_adtrack_matches_section_vi() {
    let f = "examples/adtrack.bl";
    assert_eq!(stream(&json(&[f, "--set", "query=THRESH"]), "analyst.result"), "Async");
    assert_eq!(stream(&json(&[f, "--set", "query=POOR"]), "analyst.result"), "Diverge");
    assert_eq!(stream(&json(&[f, "--set", "query=CAMPAIGN"]), "analyst.result"), "Async");
    assert_eq!(stream(&json(&[f, "--set", "query=WINDOW"]), "analyst.result"), "Async");
    assert_eq!(
        stream(&json(&[f, "--set", "query=CAMPAIGN", "--seal", "report.click=window"]), "analyst.result"),
        "Diverge"
    );
}

#[test]
fn whitebox_wordcount_is_run_then_async() {
    assert_eq!(stream(&json(&["examples/wordcount.bl", "--set", "seal_batch=false"]), "commit.db"), "Run");
    assert_eq!(stream(&json(&["examples/wordcount.bl"]), "commit.db"), "Async");
    // `--seal` on the command line does what the program's seal does.
    assert_eq!(
        stream(
            &json(&["examples/wordcount.bl", "--set", "seal_batch=false", "--seal", "splitter.tweet=batch"]),
            "commit.db"
        ),
        "Async"
    );
}

#[test]
fn json_has_the_shape_tools_rely_on() {
    let v = json(&["examples/adtrack.bl", "--set", "query=POOR"]);
    let report =
        v["components"].as_array().expect("components").iter().find(|c| c["name"] == "report").expect("report");
    assert_eq!(report["replicated"], true);
    let paths = report["paths"].as_array().expect("paths");
    assert!(paths.iter().any(|p| p["from"] == "request"
        && p["to"] == "response"
        && p["annotation"] == "OR"
        && p["gate"] == serde_json::json!(["id"])));
    assert!(paths
        .iter()
        .any(|p| p["from"] == "click" && p["annotation"] == "CW" && p["gate"] == serde_json::json!([])));
    // The analyst's comparison of answers is order-sensitive too (allowed, not silent in JSON).
    let coordination = v["coordination"].as_array().expect("coordination");
    let of = |list: &[serde_json::Value], name: &str| -> Vec<serde_json::Value> {
        list.iter().filter(|c| c["component"] == name).cloned().collect()
    };
    let report = of(coordination, "report");
    assert_eq!(report.len(), 1, "{coordination:?}");
    assert_eq!(report[0]["strategy"], "order");
    assert!(report[0]["reason"].as_str().is_some_and(|r| r.contains("click")));

    let sealed = json(&["examples/adtrack.bl"]);
    let report = of(sealed["coordination"].as_array().expect("coordination"), "report");
    let c = report.first().expect("a choice for report");
    assert_eq!((c["component"].as_str(), c["strategy"].as_str()), (Some("report"), Some("seal")));
    assert_eq!(c["key"], serde_json::json!(["campaign"]));
}

#[test]
fn grey_box_streams_are_named_by_interface_and_carry_the_highest_label() {
    let v = json(&["examples/adreport.blazes.yml", "--variant", "POOR"]);
    // `response` is produced by Report (Inst) and by Cache (Diverge).
    let names: Vec<&str> =
        v["streams"].as_array().expect("streams").iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names.iter().filter(|n| **n == "response").count(), 1);
    assert_eq!(stream(&v, "response"), "Diverge");
    let cache = v["components"].as_array().expect("components").iter().find(|c| c["name"] == "Cache").expect("Cache");
    assert_eq!(cache["replicated"], true, "a component that feeds its own input counts as replicated");
}

#[test]
fn check_warns_about_nondeterminism_and_can_be_told_not_to() {
    let warned = bloomc(&["check", "examples/adtrack.bl", "--set", "query=POOR"]);
    assert_eq!(warned.status.code(), Some(0));
    let err = String::from_utf8_lossy(&warned.stderr);
    assert!(err.contains("[W0100]") && err.contains("analyst.disagreement` is Diverge"), "{err}");
    let quiet = bloomc(&["check", "examples/adtrack.bl", "--set", "query=POOR", "--allow", "nondeterminism"]);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("W0100"));
}

#[test]
fn dot_and_svg_render_the_labelled_graph() {
    let dot = bloomc(&["analyze", "examples/adtrack.bl", "--set", "query=POOR", "--format", "dot"]);
    let text = String::from_utf8_lossy(&dot.stdout);
    assert!(text.starts_with("digraph blazes {") && text.contains("color=purple"), "{text}");
    let svg = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("adtrack.svg");
    let out = bloomc(&["graph", "examples/adtrack.bl", "-o", svg.to_str().expect("utf-8"), "--set", "query=POOR"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let body = std::fs::read_to_string(&svg).expect("svg written");
    assert!(body.contains("<svg") && body.contains("report"), "{body}");
}

#[test]
fn human_output_and_explain_snapshots() {
    for (name, args) in [
        ("adtrack_poor", vec!["examples/adtrack.bl", "--set", "query=POOR", "--explain"]),
        ("adtrack_campaign", vec!["examples/adtrack.bl", "--explain"]),
        ("wordcount_unsealed", vec!["examples/wordcount.bl", "--set", "seal_batch=false", "--explain"]),
        ("adreport_all_variants", vec!["examples/adreport.blazes.yml", "--seal", "click=campaign"]),
        ("kvs", vec!["examples/kvs.bl", "--explain"]),
    ] {
        let mut all = vec!["analyze"];
        all.extend(args);
        let out = bloomc(&all);
        assert_eq!(out.status.code(), Some(0));
        let text = format!(
            "$ bloomc {}\n----- stdout -----\n{}----- stderr -----\n{}",
            all.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        insta::assert_snapshot!(name, text);
    }
}
