//! Module path annotations of the white-box analysis on the talk's and paper's modules.

use bloomc_compiler::analysis::{gates, paths};
use bloomc_compiler::compile;

/// `module.input -> output: LABEL{gate}` for every path of every module.
fn annotations(src: &str, sets: &[(&str, &str)]) -> Vec<String> {
    let sets: Vec<(String, String)> = sets.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let c = compile("test.bl", src.as_bytes(), &sets);
    assert!(!c.has_errors(), "program must compile");
    let p = c.program.expect("IR");
    let mut out = Vec::new();
    for m in &p.modules {
        let facts = gates::facts(&p, m.id);
        for path in paths::module_paths(&p, m.id, &facts) {
            let gate = path.gate_names();
            let gate = if gate.is_empty() { String::new() } else { format!("{{{}}}", gate.join(", ")) };
            out.push(format!(
                "{}.{} -> {}: {}{gate}",
                m.name,
                p.collection_name(path.from),
                p.collection_name(path.to),
                path.label()
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
        annotations(&src, &[("query", q)]).into_iter().filter(|a| a.starts_with("Report.")).collect()
    };
    assert_eq!(report("THRESH"), ["Report.click -> response: CW", "Report.request -> response: CR"]);
    assert_eq!(report("POOR"), ["Report.click -> response: CW", "Report.request -> response: OR{id}"]);
    assert_eq!(report("WINDOW"), ["Report.click -> response: CW", "Report.request -> response: OR{id, window}"]);
    assert_eq!(report("CAMPAIGN"), ["Report.click -> response: CW", "Report.request -> response: OR{campaign, id}"]);
}

#[test]
fn wordcount_components() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/wordcount.bl")).expect("example");
    assert_eq!(
        annotations(&src, &[]),
        ["Splitter.tweet -> words: CR", "Count.words -> counts: OW{batch, word}", "Commit.counts -> db: CW"]
    );
}
