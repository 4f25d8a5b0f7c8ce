//! Command-line definitions (clap derive); each subcommand lives in its own file.

mod check;
mod common;
mod dump;

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "bloomc",
    version,
    about = "Compiler for a Bloom-style language with Blazes coordination analysis"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

#[derive(clap::Args)]
pub struct ProgramArgs {
    /// The program to compile (a `.bl` file).
    pub file: std::path::PathBuf,
    /// Override a parameter: `--set query=POOR`. May be repeated.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected NAME=VALUE, found `{s}`")),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Parse, resolve, type-check and stratify a program; report every problem.
    Check(check::Check),
    /// Print one stage of the compiler: the syntax tree or the IR.
    Dump(dump::Dump),
}

impl Cli {
    pub fn run(self) -> Result<ExitCode, String> {
        match self.command {
            Command::Check(c) => c.run(),
            Command::Dump(d) => d.run(),
        }
    }
}
