//! The documentation's examples are run, so that they cannot go stale.
//!
//! A block may be preceded by a marker, `<!-- KEY: VALUE, KEY: VALUE -->`, with the keys
//! `file` (the block is written to a scratch directory as that file, where the commands of
//! the document run, beside links to `examples/`, `tests/` and `stdlib/`), `expect` (a
//! diagnostic code the block must report) and `excerpt` (arguments of `bloomc`).
//!
//! Every fenced `bloom` block of `docs/*.md` and `README.md`:
//! - with `excerpt: ARGS`: every line of it that is not blank or a comment appears
//!   (trimmed) in the standard output of `bloomc ARGS` run in the repository;
//! - with `expect: CODE`, or in `docs/diagnostics.md` under a heading `### CODE: ...`:
//!   `bloomc check` on it (there with the arguments of a `bloomc check FILE ARGS` line
//!   under the same heading) reports `CODE`;
//! - any other: `bloomc check` accepts it (warnings allowed).
//!
//! Every line `$ bloomc ARGS` in a `text` block is run; the lines after it, up to the next
//! `$` line or the block's end, are its expected output, each of which must match a line of
//! its standard output or error, in the order of each. In an
//! expected line `...` matches any text; a line that is only `...` stands for lines left
//! out; runs of spaces count as one (columns are aligned to the longest name). A command's
//! exit code is not checked (examples of errors are shown too). Commands with a shell
//! redirection or pipe are run by `sh -c`.

// A test fails by panicking: indexing a list that lacks the entry is such a failure.
#![allow(clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fenced block: its language, its lines, the marker comment before it, the heading above
/// it and the line it starts on.
struct Block {
    lang: String,
    lines: Vec<String>,
    marker: Option<String>,
    heading: String,
    line: usize,
}

fn blocks(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let (mut i, mut heading) = (0, String::new());
    while i < lines.len() {
        let l = lines[i];
        if l.starts_with('#') {
            heading = l.to_string();
        }
        if let Some(lang) = l.strip_prefix("```") {
            let marker = i
                .checked_sub(1)
                .and_then(|j| lines[j].trim().strip_prefix("<!--"))
                .and_then(|m| m.strip_suffix("-->"))
                .map(|m| m.trim().to_string());
            let start = i + 1;
            let mut j = start;
            while j < lines.len() && !lines[j].starts_with("```") {
                j += 1;
            }
            out.push(Block {
                lang: lang.trim().to_string(),
                lines: lines[start..j.min(lines.len())].iter().map(|s| s.to_string()).collect(),
                marker,
                heading: heading.clone(),
                line: i + 1,
            });
            i = j;
        }
        i += 1;
    }
    out
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `bloomc ARGS` (a shell line) in `dir`; returns standard output and error.
fn run(dir: &Path, args: &str) -> (String, String) {
    let exe = env!("CARGO_BIN_EXE_bloomc");
    let out = if args.contains('>') || args.contains('|') {
        Command::new("sh").arg("-c").arg(format!("'{exe}' {args}")).current_dir(dir).env("NO_COLOR", "1").output()
    } else {
        Command::new(exe).args(split(args)).current_dir(dir).env("NO_COLOR", "1").output()
    }
    .expect("bloomc runs");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A command line's words; `'..'` and `".."` group (without escapes).
fn split(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quote) = (Vec::new(), String::new(), None);
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, ' ') => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (None, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The value of `key` in a block's marker.
fn marked<'b>(b: &'b Block, key: &str) -> Option<&'b str> {
    b.marker.as_deref()?.split(", ").find_map(|kv| kv.strip_prefix(key)?.strip_prefix(':')).map(str::trim)
}

/// `s` with every run of spaces made one space.
fn squeeze(s: &str) -> String {
    s.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Whether `actual` matches `expected`, where `...` in `expected` matches any text.
fn matches(expected: &str, actual: &str) -> bool {
    let (expected, actual) = (squeeze(expected), squeeze(actual));
    let (expected, actual) = (expected.as_str(), actual.as_str());
    let parts: Vec<&str> = expected.split("...").collect();
    let mut rest = actual;
    for (k, part) in parts.iter().enumerate() {
        if k == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if k == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else { return false };
            rest = &rest[at + part.len()..];
        }
    }
    rest.is_empty()
}

/// The problems of one document.
fn check_document(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(name)).expect("the document");
    let dir = common::procs::scratch(&format!("docs-{}", name.replace('/', "-")), &[]);
    for link in ["examples", "tests", "stdlib"] {
        let _ = std::os::unix::fs::symlink(repo().join(link), dir.join(link));
    }
    let all = blocks(&text);
    let mut problems = Vec::new();
    for b in &all {
        if let Some(file) = marked(b, "file") {
            std::fs::write(dir.join(file), b.lines.join("\n") + "\n").expect("write");
        }
    }
    for (n, b) in all.iter().enumerate() {
        let at = format!("{name}:{}", b.line);
        if b.lang == "bloom" {
            let path = dir.join(format!("block{n}.bl"));
            std::fs::write(&path, b.lines.join("\n") + "\n").expect("write");
            if let Some(args) = marked(b, "excerpt") {
                let (out, _) = run(&repo(), args);
                let have: Vec<&str> = out.lines().map(str::trim).collect();
                for l in b.lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty() && !l.starts_with("//")) {
                    if !have.contains(&l) {
                        problems.push(format!("{at}: `{l}` is not in the output of `bloomc {args}`"));
                    }
                }
                continue;
            }
            let diagnostics = name.ends_with("diagnostics.md");
            let code = marked(b, "expect").or_else(|| {
                b.heading.strip_prefix("### ").and_then(|h| h.split(':').next()).filter(|c| {
                    diagnostics
                        && c.len() == 5
                        && c.starts_with(['E', 'W', 'N'])
                        && c[1..].chars().all(|d| d.is_ascii_digit())
                })
            });
            // The arguments of a `bloomc check FILE ARGS` line in the next block under the
            // same heading, if any.
            let extra = all
                .get(n + 1)
                .filter(|x| diagnostics && x.heading == b.heading)
                .and_then(|x| x.lines.first())
                .and_then(|l| l.strip_prefix("bloomc check "))
                .map(|l| split(l).into_iter().skip(1).collect::<Vec<_>>().join(" "))
                .unwrap_or_default();
            let (out, err) = run(&dir, &format!("check {} {extra}", path.display()));
            match code {
                Some(code) if !(out.contains(&format!("[{code}]")) || err.contains(&format!("[{code}]"))) => {
                    problems.push(format!("{at}: the example of {code} does not report it:\n{err}"))
                }
                None if err.contains("] Error") || err.starts_with("error") => {
                    problems.push(format!("{at}: `bloomc check` rejects the example:\n{err}"))
                }
                _ => {}
            }
        }
        if b.lang == "text" {
            let mut k = 0;
            while k < b.lines.len() {
                let Some(args) = b.lines[k].strip_prefix("$ bloomc ") else {
                    k += 1;
                    continue;
                };
                let args = args.split("  #").next().unwrap_or(args).trim();
                let mut expected = Vec::new();
                k += 1;
                while k < b.lines.len() && !b.lines[k].starts_with("$ ") {
                    expected.push(b.lines[k].clone());
                    k += 1;
                }
                let (out, err) = run(&dir, args);
                // Standard output and error interleave on a terminal: each keeps its order.
                let streams: [Vec<&str>; 2] = [out.lines().collect(), err.lines().collect()];
                let mut from = [0usize; 2];
                for e in expected.iter().filter(|e| e.trim() != "..." && !e.trim().is_empty()) {
                    let found = (0..2).find_map(|k| {
                        let p = streams[k][from[k]..].iter().position(|a| matches(e.trim_end(), a.trim_end()))?;
                        Some((k, p))
                    });
                    match found {
                        Some((k, p)) => from[k] += p + 1,
                        None => {
                            problems.push(format!("{at}: `$ bloomc {args}` printed no line like `{e}`"));
                            break;
                        }
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn every_example_of_the_docs_runs_as_shown() {
    let mut problems = Vec::new();
    for doc in ["README.md", "docs/language.md", "docs/analysis.md", "docs/diagnostics.md", "docs/runtime.md"] {
        problems.extend(check_document(doc));
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}
