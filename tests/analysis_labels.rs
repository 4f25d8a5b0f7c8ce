//! End-to-end stream labels of the white-box examples: the paper's Section VI results.

use bloomc_compiler::analysis::build::{graph, SealArg};
use bloomc_compiler::analysis::labels::label;
use bloomc_compiler::compile;

/// `component.output: Label` for every labelled output.
fn labels(example: &str, sets: &[(&str, &str)], seals: &[(&str, &[&str])]) -> Vec<String> {
    let path = format!("{}/examples/{example}", env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read(path).expect("example");
    let sets: Vec<(String, String)> = sets.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let c = compile(example, &src, &sets);
    assert!(!c.has_errors());
    let p = c.program.expect("IR");
    let seals: Vec<SealArg> = seals
        .iter()
        .map(|(s, k)| SealArg { stream: s.to_string(), key: k.iter().map(|x| x.to_string()).collect() })
        .collect();
    let (g, unmatched) = graph(&p, &seals);
    assert!(unmatched.is_empty());
    let l = label(&g);
    l.outputs.iter().map(|r| format!("{}: {}", g.output_name(r.component, r.output), r.label)).collect()
}

fn sink(all: &[String], name: &str) -> String {
    all.iter()
        .find(|l| l.starts_with(&format!("{name}:")))
        .cloned()
        .unwrap_or_else(|| format!("{name}: missing in {all:?}"))
}

#[test]
fn wordcount_is_run_without_a_seal_and_async_with_seal_batch() {
    let unsealed = labels("wordcount.bl", &[("seal_batch", "false")], &[]);
    assert_eq!(sink(&unsealed, "commit.db"), "commit.db: Run", "{unsealed:?}");
    let sealed = labels("wordcount.bl", &[], &[]);
    assert_eq!(sink(&sealed, "commit.db"), "commit.db: Async", "{sealed:?}");
}

#[test]
fn adtrack_queries_match_the_paper() {
    let thresh = labels("adtrack.bl", &[("query", "THRESH")], &[]);
    assert_eq!(sink(&thresh, "analyst.result"), "analyst.result: Async", "{thresh:?}");
    let poor = labels("adtrack.bl", &[("query", "POOR")], &[]);
    assert_eq!(sink(&poor, "analyst.result"), "analyst.result: Diverge", "{poor:?}");
    let campaign = labels("adtrack.bl", &[("query", "CAMPAIGN")], &[]);
    assert_eq!(sink(&campaign, "analyst.result"), "analyst.result: Async", "{campaign:?}");
    let window = labels("adtrack.bl", &[("query", "WINDOW")], &[]);
    assert_eq!(sink(&window, "analyst.result"), "analyst.result: Async", "{window:?}");
}

#[test]
fn campaign_sealed_on_window_diverges() {
    let wrong = labels("adtrack.bl", &[("query", "CAMPAIGN")], &[("report.click", &["window"])]);
    assert_eq!(sink(&wrong, "analyst.result"), "analyst.result: Diverge", "{wrong:?}");
}
