//! Command-line definitions (clap derive); each subcommand lives in its own file.

mod analyze;
mod args;
mod check;
mod cluster;
mod clusterfile;
mod common;
mod coordination;
mod dump;
mod explore;
mod graph;
mod io;
mod launcher;
mod network;
mod rewrite;
mod run;
mod sequencer;
mod settings;
mod summary;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "bloomc", version, about = "Compiler for a Bloom-style language with Blazes coordination analysis")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, resolve, type-check and stratify a program; report every problem.
    Check(check::Check),
    /// Print one stage of the compiler: the syntax tree or the IR.
    Dump(dump::Dump),
    /// Blazes coordination analysis of a program (`.bl`) or a grey-box file (`.yml`).
    Analyze(analyze::Analyze),
    /// Render the labelled component graph as SVG.
    Graph(graph::Graph),
    /// Print the program with its coordination made explicit: the `order`, `punctuate` and
    /// `hold` items `--coordination` inserts (what `run` runs).
    Rewrite(rewrite::Rewrite),
    /// Run a program on timely/differential dataflow and print its outputs: one node, or a
    /// network of nodes (in this process, or with `--processes` one process per node).
    Run(args::Run),
    /// Run the program under many schedules in a deterministic simulator and check every
    /// output's label against what the schedules did (exit 3 when a label does not hold).
    Explore(explore::Explore),
    /// Run one node of a network in this process, joining the coordinator a cluster file names.
    Node(cluster::Node),
    /// Serve the embedded ordering service of a run across processes (the coordinator starts
    /// it when the run orders batches; not meant to be started by hand).
    Sequencer(sequencer::Sequencer),
}

impl Cli {
    pub fn run(self) -> Result<ExitCode, String> {
        match self.command {
            Command::Check(c) => c.run(),
            Command::Dump(d) => d.run(),
            Command::Analyze(a) => a.run(),
            Command::Graph(g) => g.run(),
            Command::Rewrite(r) => r.run(),
            Command::Run(r) => r.run(),
            Command::Explore(e) => e.run(),
            Command::Node(n) => n.run(),
            Command::Sequencer(s) => s.run(),
        }
    }
}
