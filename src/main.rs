//! The `bloomc` command line: parses arguments, runs one subcommand, renders its result once.
//!
//! Exit codes: 0 clean (warnings allowed), 1 the program has errors, 2 usage or I/O error.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("internal compiler error: {info}");
        eprintln!("bloomc crashed; this is a bug in bloomc, not in your program.");
        eprintln!("Please report it with the command you ran and the input file.");
    }));
    let args = cli::Cli::parse();
    match args.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
