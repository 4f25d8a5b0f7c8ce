//! What the CLI tests share: running the `bloomc` binary from the repository root.

#![allow(dead_code)]

use std::process::{Command, Output};

#[allow(dead_code)]
pub mod procs;

/// Two sources forward the same feed to one sink that keeps everything, for the tests of
/// runs across processes. Its table is a set, so its output (300 facts) is the same whatever
/// the timing; a lost or doubled message shows in the sink's count of facts in by message,
/// which must be exactly 600.
pub const PIPE: &str = "module Src { input feed_in(n: int); output out(n: int); out <= feed_in; }
module Sink { input got(n: int); table seen(n: int); output all(n: int); seen <= got; all <= seen; }
system S {
  node src: Src * 2;
  node sink: Sink;
  feed src.feed_in from generate(rows: 300, seed: 1, batch: 10) { n: row() };
  src.out -> sink.got any;
}";

/// Runs `bloomc` with `args` in the repository root, without colours.
pub fn bloomc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bloomc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("bloomc runs")
}
