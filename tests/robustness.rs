//! Property test: mutated and random programs never panic and never hang, and every
//! diagnostic names a file, line and column inside that file.
//!
//! Mutations start from the examples and the wrong programs of `tests/diagnostics`: deleted
//! spans, duplicated spans, flipped bytes, shuffled tokens, and plain random bytes.

// A test fails by panicking: indexing a JSON report or a list that lacks the entry is
// such a failure.
#![allow(clippy::indexing_slicing)]

use bloomc_compiler::{compile, render};
use bloomc_grammar::token::Lexer;
use proptest::prelude::*;
use std::sync::mpsc;
use std::time::Duration;

fn corpus() -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["examples", "tests/diagnostics", "stdlib"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(dir))
            .expect("corpus directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "bl"))
            .collect();
        paths.sort();
        files.extend(paths.into_iter().filter_map(|p| std::fs::read(p).ok()));
    }
    files
}

/// Compiles on a separate thread so a hang is caught as a failure instead of stalling the
/// run; the bound is generous because it detects hangs, not slowness.
fn check(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    let (tx, rx) = mpsc::channel();
    let input = bytes.clone();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(|| {
            let c = compile("mutant.bl", &input, &[]);
            let mut problems = Vec::new();
            for d in &c.diagnostics {
                let json = render::to_json(&c.sources, d);
                let file = json["file"].as_str().unwrap_or("");
                let line = json["line"].as_u64().unwrap_or(0) as usize;
                let col = json["column"].as_u64().unwrap_or(0) as usize;
                let lines = c.sources.files().find(|(_, f)| f.name == file).map(|(_, f)| f.text.lines().count().max(1));
                match lines {
                    Some(n) if line >= 1 && line <= n + 1 && col >= 1 => {}
                    _ => problems.push(format!("{} at {file}:{line}:{col}", d.code.as_str())),
                }
                let _ = render::render_human(&c.sources, d, false);
            }
            if c.has_errors() && c.diagnostics.is_empty() {
                problems.push("rejected without a diagnostic".to_string());
            }
            problems
        });
        let _ = tx.send(result);
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(problems)) => {
            prop_assert!(
                problems.is_empty(),
                "unlocated diagnostics {problems:?} for:\n{}",
                String::from_utf8_lossy(&bytes)
            );
            Ok(())
        }
        Ok(Err(_)) => Err(TestCaseError::fail(format!("compile panicked on:\n{}", String::from_utf8_lossy(&bytes)))),
        Err(_) => Err(TestCaseError::fail(format!("compile hung on:\n{}", String::from_utf8_lossy(&bytes)))),
    }
}

fn source() -> impl Strategy<Value = Vec<u8>> {
    let files = corpus();
    assert!(!files.is_empty());
    (0..files.len()).prop_map(move |i| files.get(i).cloned().unwrap_or_default())
}

proptest! {
    // A fixed seed keeps CI reproducible; `BLOOMC_EXPLORE=1` draws fresh inputs.
    #![proptest_config(ProptestConfig {
        cases: 300,
        rng_seed: if std::env::var_os("BLOOMC_EXPLORE").is_some() {
            proptest::test_runner::RngSeed::Random
        } else {
            proptest::test_runner::RngSeed::Fixed(0xb100_c0de)
        },
        ..ProptestConfig::default()
    })]

    #[test]
    fn deleted_span(src in source(), a in any::<prop::sample::Index>(), len in 1usize..40) {
        let mut bytes = src;
        let start = a.index(bytes.len().max(1)).min(bytes.len());
        let end = (start + len).min(bytes.len());
        bytes.drain(start..end);
        check(bytes)?;
    }

    #[test]
    fn duplicated_span(src in source(), a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>(), len in 1usize..60) {
        let mut bytes = src;
        let start = a.index(bytes.len().max(1)).min(bytes.len());
        let end = (start + len).min(bytes.len());
        let copy: Vec<u8> = bytes.get(start..end).map(<[u8]>::to_vec).unwrap_or_default();
        let at = b.index(bytes.len().max(1)).min(bytes.len());
        bytes.splice(at..at, copy);
        check(bytes)?;
    }

    #[test]
    fn flipped_bytes(src in source(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = src;
        for (i, mask) in flips {
            if bytes.is_empty() { break; }
            let i = i.index(bytes.len());
            if let Some(b) = bytes.get_mut(i) { *b ^= mask.max(1); }
        }
        check(bytes)?;
    }

    #[test]
    fn shuffled_tokens(src in source(), a in any::<prop::sample::Index>(), window in 2usize..12, seed in any::<u64>()) {
        let text = String::from_utf8_lossy(&src).into_owned();
        let spans: Vec<(usize, usize)> = Lexer::new(&text).filter_map(Result::ok).map(|(l, _, r)| (l, r)).collect();
        prop_assume!(spans.len() > window);
        let start = a.index(spans.len() - window);
        let mut order: Vec<usize> = (start..start + window).collect();
        // A seeded rotation and reversal: cheap, and different for every seed.
        order.rotate_left((seed as usize) % window);
        if seed % 2 == 0 { order.reverse(); }
        let mut out = String::new();
        out.push_str(text.get(..spans.get(start).map_or(0, |s| s.0)).unwrap_or(""));
        for i in order {
            if let Some(&(l, r)) = spans.get(i) {
                out.push_str(text.get(l..r).unwrap_or(""));
                out.push(' ');
            }
        }
        out.push_str(text.get(spans.get(start + window - 1).map_or(0, |s| s.1)..).unwrap_or(""));
        check(out.into_bytes())?;
    }

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check(bytes)?;
    }

    #[test]
    fn random_token_soup(words in prop::collection::vec(prop::sample::select(vec![
        "module", "M", "{", "}", "(", ")", "input", "output", "table", "scratch", "x", "a", ":", "int",
        "string", ";", ",", "<=", "<+", "<-", "<~", "from", "where", "select", "group", "by", "having",
        "notin", "on", "==", "<", "+", "*", "1", "\"s\"", "when", "system", "node", "->", "broadcast",
        "feed", "generate", "sealed", "param", "use", ".", "count", "=", "true",
    ]), 0..80)) {
        check(words.join(" ").into_bytes())?;
    }
}
