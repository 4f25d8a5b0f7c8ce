//! What the CLI tests share: running the `bloomc` binary from the repository root.

#![allow(dead_code)]

use std::process::{Command, Output};

#[allow(dead_code)]
pub mod procs;

/// Runs `bloomc` with `args` in the repository root, without colours.
pub fn bloomc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bloomc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("bloomc runs")
}
