//! Verdicts against executions: random programs (one module, and small networks with
//! replicated groups, wires and seals), each explored under random schedules with the
//! coordination `bloomc run` applies. Every Seal or Async label must hold (no schedule emits
//! a fact that no complete-input run emits), and sequenced replicas must agree. The corpus
//! of past counterexamples (`tests/verdicts/*.bl`) runs first, on every CI.
//!
//! `BLOOMC_VERDICTS=N` explores N random programs of each kind instead of the default.

mod programs;

use bloomc_compiler::analysis::labels::Label;
use bloomc_compiler::compile;
use bloomc_compiler::rewrite::{rewrite, Strategy};
use bloomc_runtime::sim::explore::{explore, unsound, Options};
use std::fmt::Write;

#[derive(Default, Debug)]
struct Counts {
    programs: u64,
    skipped: u64,
    schedules: u64,
    verdicts: u64,
    failures: Vec<String>,
    /// Run, Inst and Diverge labels, and per label those whose stream never emitted a
    /// wrong fact in the schedules tried (over-approximations, or hazards not reached).
    nondeterministic: u64,
    never_varied: std::collections::BTreeMap<&'static str, u64>,
}

/// Explores one program; records its verdicts and any failure (with the program's text).
fn check(src: &str, schedules: u64, seed: u64, counts: &mut Counts) {
    check_observing(src, schedules, seed, counts);
}

/// As `check`, and returns what each stream was observed to do (by `Observed::word`).
fn check_observing(src: &str, schedules: u64, seed: u64, counts: &mut Counts) -> Vec<(String, &'static str)> {
    let c = compile("verdict.bl", src.as_bytes(), &[]);
    let (Some(p), Some(a), false) = (c.program.as_ref(), c.analysis.as_ref(), c.has_errors()) else {
        counts.skipped += 1;
        return Vec::new();
    };
    let Ok(plans) = bloomc_runtime::plan::plan_network(p, &[]) else {
        counts.skipped += 1;
        return Vec::new();
    };
    let Ok(rewritten) = rewrite(p, Some(a), Strategy::Auto) else {
        counts.skipped += 1;
        return Vec::new();
    };
    let Ok(setup) = bloomc_runtime::sim::setup(&rewritten, plans, Some(a), 40) else {
        counts.skipped += 1;
        return Vec::new();
    };
    let e = explore(&setup, &Options { schedules, seed, exhaustive: None });
    let labels: Vec<(String, Label)> = a.streams().into_iter().map(|(n, l, _)| (n, l)).collect();
    counts.programs += 1;
    counts.schedules += e.general + e.complete;
    counts.verdicts += e
        .streams
        .iter()
        .filter(|(s, o)| o.is_some() && labels.iter().any(|(n, l)| *n == s.name && l.deterministic()))
        .count() as u64;
    for (s, o) in &e.streams {
        let (Some(o), Some((_, l))) = (o, labels.iter().find(|(n, _)| *n == s.name)) else { continue };
        if !l.deterministic() {
            counts.nondeterministic += 1;
            if !matches!(o, bloomc_runtime::sim::explore::Observed::Differs { .. }) {
                *counts.never_varied.entry(l.name()).or_default() += 1;
            }
        }
    }
    let mut report = String::new();
    for (s, l, o) in unsound(&labels, &e) {
        let _ = writeln!(report, "`{}` is {l} but {o:?}", s.name);
    }
    for d in &e.disagreements {
        let _ = writeln!(report, "replicas of `{}` disagree in {} at tick {}", d.group, d.schedule, d.tick);
    }
    if !report.is_empty() {
        counts.failures.push(format!("{report}{src}"));
    }
    e.streams.iter().filter_map(|(s, o)| o.as_ref().map(|o| (s.name.clone(), o.word()))).collect()
}

/// Prints the counts to the process's standard error directly, past the test harness's
/// capture, so that they show in every CI log (not only with `--nocapture`).
fn print(kind: &str, c: &Counts) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "{kind}: {} programs explored ({} skipped: not compiling or not runnable), {} schedules, {} Seal/Async verdicts, {} failures",
        c.programs,
        c.skipped,
        c.schedules,
        c.verdicts,
        c.failures.len()
    );
    let never: Vec<String> = c.never_varied.iter().map(|(l, n)| format!("{n} {l}")).collect();
    let _ = writeln!(
        err,
        "{kind}: {} Run/Inst/Diverge labels, of which never wrong in the schedules tried: {}",
        c.nondeterministic,
        if never.is_empty() { "none".to_string() } else { never.join(", ") }
    );
}

fn random(kind: &str, default: u64, seed: u64, make: fn(&mut programs::Rng) -> String) {
    let n = std::env::var("BLOOMC_VERDICTS").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let mut rng = programs::Rng(seed);
    let mut counts = Counts::default();
    for i in 0..n {
        let src = make(&mut rng);
        check(&src, 24, i, &mut counts);
    }
    print(kind, &counts);
    if let Ok(path) = std::env::var("BLOOMC_VERDICTS_DUMP") {
        let _ = std::fs::write(format!("{path}.{kind}"), counts.failures.join("\n=====\n"));
    }
    let shown: Vec<&String> = counts.failures.iter().take(3).collect();
    assert!(
        counts.failures.is_empty(),
        "{} unsound verdicts; the first:\n{}",
        counts.failures.len(),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n----\n")
    );
}

#[test]
fn corpus_of_past_counterexamples_holds() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verdicts");
    let mut counts = Counts::default();
    let mut files: Vec<_> =
        std::fs::read_dir(dir).expect("corpus folder").filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    for f in files.iter().filter(|f| f.extension().is_some_and(|x| x == "bl")) {
        let src = std::fs::read_to_string(f).expect("corpus file");
        let before = counts.programs;
        let observed = check_observing(&src, 200, 7, &mut counts);
        assert_eq!(counts.programs, before + 1, "{} must compile and run", f.display());
        // `// observe: STREAM WORDS` pins what the schedules must show, so the corpus also
        // proves the explorer finds each hazard.
        for line in src.lines().filter_map(|l| l.strip_prefix("// observe: ")) {
            let (stream, word) = line.split_once(' ').expect("observe: STREAM WORDS");
            let got = observed.iter().find(|(n, _)| n == stream).map(|(_, w)| *w);
            assert_eq!(got, Some(word), "{}: `{stream}`", f.display());
        }
    }
    print("corpus", &counts);
    assert!(counts.programs >= 5, "the corpus has its cases");
    assert!(counts.failures.is_empty(), "{}", counts.failures.join("\n----\n"));
}

#[test]
fn random_single_module_verdicts_hold() {
    random("one module", 1500, 0x5eed_0001, programs::single);
}

#[test]
fn random_network_verdicts_hold() {
    random("networks", 1000, 0x5eed_0002, programs::network);
}

/// Explores an example with small parameters; returns each stream's observation, with and
/// without the coordination the analysis chose.
/// Each stream's name and what it was observed to do.
type Observations = Vec<(String, &'static str)>;

fn example(file: &str, sets: &[(&str, &str)]) -> (Observations, Observations) {
    let path = format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(&path).expect("example");
    let overrides: Vec<(String, String)> = sets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let c = compile(file, src.as_bytes(), &overrides);
    let (Some(p), Some(a)) = (c.program.as_ref(), c.analysis.as_ref()) else { panic!("{file} compiles") };
    let labels: Vec<(String, Label)> = a.streams().into_iter().map(|(n, l, _)| (n, l)).collect();
    let mut runs = Vec::new();
    for strategy in [Strategy::Auto, Strategy::None] {
        let rewritten = rewrite(p, Some(a), strategy).expect("rewrites");
        let plans = bloomc_runtime::plan::plan_network(p, &[]).expect("plans");
        let setup = bloomc_runtime::sim::setup(&rewritten, plans, Some(a), 64).expect("setup");
        let e = explore(&setup, &Options { schedules: 40, seed: 3, exhaustive: None });
        if strategy != Strategy::None {
            assert!(unsound(&labels, &e).is_empty(), "{file} {sets:?}: an unsound label");
            assert!(e.disagreements.is_empty(), "{file} {sets:?}: replicas disagree behind their sequencer");
        }
        runs.push(e.streams.iter().filter_map(|(s, o)| o.as_ref().map(|o| (s.name.clone(), o.word()))).collect());
    }
    let without = runs.pop().unwrap_or_default();
    (runs.pop().unwrap_or_default(), without)
}

fn word<'a>(observed: &'a [(String, &'static str)], stream: &str) -> &'a str {
    observed.iter().find(|(n, _)| n == stream).map_or("none", |(_, w)| w)
}

/// The paper's Section VI results, by execution: THRESH may miss answers but never gives a
/// wrong one; CAMPAIGN and WINDOW are the same in every schedule with their seal and differ
/// without (CAMPAIGN's answers too, its requests held until every campaign is sealed); POOR differs, and its replicas agree behind the sequencer `auto` puts there.
#[test]
fn the_ad_tracking_network_behaves_as_labelled() {
    let small = [("adservers", "2"), ("replicas", "2"), ("caches", "1"), ("clicks", "6"), ("ads", "2")];
    let more = [("campaigns", "2"), ("window_size", "3"), ("requests", "2"), ("poor", "2"), ("thresh", "2")];
    let with = |q: &'static str| -> Vec<(&str, &str)> {
        small.iter().chain(more.iter()).copied().chain(std::iter::once(("query", q))).collect()
    };
    let (thresh, _) = example("adtrack.bl", &with("THRESH"));
    assert_eq!(word(&thresh, "analyst.result"), "may miss facts, never a wrong one");
    for q in ["CAMPAIGN", "WINDOW"] {
        let (sealed, bare) = example("adtrack.bl", &with(q));
        assert_eq!(word(&sealed, "analyst.disagreement"), "same in every schedule", "{q}");
        assert_eq!(word(&bare, "analyst.disagreement"), "differs", "{q}");
    }
    // CAMPAIGN's requests do not carry the campaign: `auto` holds each until every campaign
    // is sealed, so the answers are final, the same in every schedule (they could miss some).
    let (sealed, _) = example("adtrack.bl", &with("CAMPAIGN"));
    assert_eq!(word(&sealed, "report.response"), "same in every schedule");
    assert_eq!(word(&sealed, "analyst.result"), "same in every schedule");
    let (ordered, bare) = example("adtrack.bl", &with("POOR"));
    assert_eq!(word(&ordered, "analyst.result"), "differs");
    assert_eq!(word(&ordered, "analyst.disagreement"), "same in every schedule");
    assert_eq!(word(&bare, "analyst.disagreement"), "differs");
}

/// The word count: sealed on `batch`, the committed counts are the same in every schedule;
/// without the seal they differ.
#[test]
fn the_word_count_behaves_as_labelled() {
    let small = [("batches", "2"), ("words_per_batch", "4"), ("vocabulary", "2")];
    let (sealed, bare) = example("wordcount.bl", &small);
    assert_eq!(word(&sealed, "commit.db"), "same in every schedule");
    assert_eq!(word(&bare, "commit.db"), "differs");
}
