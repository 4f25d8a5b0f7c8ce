//! The plain settings of a network run, taken from `bloomc run`'s command line once
//! (`Run::network_settings` in `run.rs`), so the files that run a network (`network.rs`,
//! `cluster.rs`, `launcher.rs`) read plain data and never clap's `Run`.

use super::args::{CoordinationArg, OrderServiceArg};
use std::path::PathBuf;

/// How a network runs and what it prints.
pub struct NetworkRun {
    pub coordination: CoordinationArg,
    pub max_ticks: u64,
    /// Every node its own process, started by this one (`--processes`).
    pub processes: bool,
    /// The cluster file (`--cluster`): nodes started by hand, or where the launched run
    /// listens.
    pub cluster_file: Option<PathBuf>,
    pub order_service: Option<OrderServiceArg>,
    /// Processes that die are started again (`--restart`).
    pub restart: bool,
    pub link_delay_ms: Option<u64>,
    /// What each launched node process is told.
    pub node: NodeCommand,
    pub shown: Shown,
}

/// The command line of a launched `bloomc node`: its program, and the options after its
/// `--name` that it takes from this run (`--set`, `--seal`, `--allow`, `--batch`,
/// `--coordination`, the input limits, `--skip-bad-rows`, `--link-delay-ms`).
pub struct NodeCommand {
    pub file: PathBuf,
    pub args: Vec<String>,
}

/// What the run prints or writes.
pub struct Shown {
    /// `--output NODE.OUTPUT=PATH`: outputs written to CSV instead of printed.
    pub outputs: Vec<(String, String)>,
    /// The most facts printed per output (`None`: all).
    pub limit: Option<usize>,
    pub per_tick: bool,
    /// `--latency QUESTION=ANSWER`.
    pub latency: Option<(String, String)>,
    pub summary_json: Option<String>,
}

impl NetworkRun {
    /// Whether the nodes run as processes: launched here, or started by hand (`--cluster`).
    pub fn across(&self) -> bool {
        self.processes || self.cluster_file.is_some()
    }
}
