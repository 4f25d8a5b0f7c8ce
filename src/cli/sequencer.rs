//! `bloomc sequencer`: the embedded ordering service of a run across processes
//! (`bloomc_runtime::order::sequencer`), in a process of its own. The coordinator starts it
//! (and, with `--restart`, starts it again) when the run orders a group's batches and names
//! no ZooKeeper; it is not meant to be started by hand. Its first line on standard output
//! says where it listens, which the coordinator tells the nodes.

use super::clusterfile::{watch_stdin, ClusterFile};
use bloomc_runtime::order::sequencer::{serve, SequencerConfig};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `bloomc sequencer --cluster cluster.toml --listen HOST:PORT`
#[derive(clap::Args)]
pub struct Sequencer {
    /// The cluster file: the cluster's name and token (and, as `sequencer`, where to listen).
    /// Without it, the text is taken from the environment variable BLOOMC_CLUSTER.
    #[arg(long = "cluster", value_name = "CLUSTER.toml")]
    cluster: Option<PathBuf>,
    /// Where to listen (`host:port`; port 0 for a free one); default: the cluster file's
    /// `sequencer`, else a free port on loopback.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Keep a journal in this directory (private to you): every position given, so that,
    /// started again with the same directory, the service listens where it did and gives
    /// every batch the position it had.
    #[arg(long, value_name = "DIR")]
    journal: Option<PathBuf>,
    /// Stop (exit status 2) when standard input reaches its end, as nodes do.
    #[arg(long)]
    watch_stdin: bool,
}

impl Sequencer {
    pub fn run(self) -> Result<ExitCode, String> {
        if self.watch_stdin {
            watch_stdin();
        }
        let cluster = ClusterFile::given(self.cluster.as_deref(), "bloomc sequencer")?;
        let listen = self.listen.or_else(|| cluster.sequencer.clone()).unwrap_or_else(|| "127.0.0.1:0".to_string());
        let config = SequencerConfig {
            cluster: cluster.cluster.clone(),
            token: cluster.token()?,
            max_frame: cluster.max_frame(),
            listen,
            journal: self.journal,
        };
        serve(config, Arc::new(|line: String| eprintln!("{line}")), |addr| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "sequencer: listening on {addr}").and_then(|()| out.flush());
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
