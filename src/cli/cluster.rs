//! A network run across processes: the cluster file, `bloomc node`, and the launcher that
//! `bloomc run --processes` is. The launcher is the coordinator
//! (`bloomc_runtime::coordinator`: admission, addresses, ordering, the end of the run; no
//! facts pass through it): it starts one `bloomc node` process per node instance, forwards
//! their output prefixed with the node's name, watches their exit, and stops them all when the
//! run is over or one of them died.
//!
//! The cluster file (TOML):
//! ```toml
//! cluster = "adtrack-lab"          # every node must present this name
//! coordinator = "10.0.0.1:7400"    # where the coordinator listens and the nodes connect
//! token = "..."                    # shared secret; BLOOMC_CLUSTER_TOKEN overrides it
//! max_frame = 67108864             # optional: the largest frame, in bytes
//! order_service = "embedded"       # optional: or "zookeeper://HOST:PORT"
//! sequencer = "10.0.0.1:7399"      # optional: where the embedded ordering service listens
//!                                  # (default: a free port on the coordinator's address)
//! [nodes]                          # optional: where each node listens for data
//! "adserver[0]" = "10.0.0.2:7401"  # (default: a free port on loopback)
//! ```
//!
//! The launcher writes no file: it hands its nodes the cluster (the address the system chose,
//! a fresh name) in the environment variable `BLOOMC_CLUSTER` and the token in
//! `BLOOMC_CLUSTER_TOKEN`, so there is no path in a shared directory for anyone to plant a
//! symlink or a FIFO at, and nothing to remove when the launcher is killed. It holds each
//! node's standard input open and starts it with `--watch-stdin`, so a node stops when its
//! launcher is gone, however the launcher ended (`kill -9` included).

use super::run::{read_inputs, CoordinationArg, Inputs, Run};
use super::ProgramArgs;
use bloomc_runtime::admission::Log;
use bloomc_runtime::coordinator::{serve, CoordinatorConfig};
use bloomc_runtime::mesh::NodeOptions;
use bloomc_runtime::network::{NetworkOptions, NetworkResult};
use bloomc_runtime::plan::NodePlan;
use bloomc_runtime::wire::{digest, Hello, OrderAt, DEFAULT_MAX_FRAME, MAX_FRAME_RANGE, TOKEN_VAR};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub cluster: String,
    pub coordinator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_frame: Option<usize>,
    /// The ordering service (`embedded` or `zookeeper://HOST:PORT`); `--order-service`
    /// overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_service: Option<String>,
    /// Where the embedded ordering service (`bloomc sequencer`, started by the coordinator)
    /// listens: an address every node can reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    /// Where each node listens for data from the others, by name; a node not listed listens
    /// on a free port of loopback.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub nodes: std::collections::BTreeMap<String, String>,
}

/// The environment variable through which the launcher gives its nodes the cluster (the text
/// of a cluster file, without the token).
pub const CLUSTER_VAR: &str = "BLOOMC_CLUSTER";

impl ClusterFile {
    pub fn read(path: &Path) -> Result<ClusterFile, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read cluster file `{shown}`: {e}"))?;
        Self::parse(&text, &format!("cluster file `{shown}`"))
    }

    /// Parses and checks the text of a cluster file; `origin` names it in errors.
    pub(crate) fn parse(text: &str, origin: &str) -> Result<ClusterFile, String> {
        let file: ClusterFile = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        if let Some(n) = file.max_frame.filter(|n| !MAX_FRAME_RANGE.contains(n)) {
            return Err(format!(
                "{origin}: `max_frame = {n}` is out of range: give a number of bytes from {} to {}",
                MAX_FRAME_RANGE.start(),
                MAX_FRAME_RANGE.end()
            ));
        }
        if let Some(service) = &file.order_service {
            super::parse_order_service(service).map_err(|e| format!("{origin}: `order_service`: {e}"))?;
        }
        if file.token.as_deref() == Some("") {
            return Err(format!("{origin}: `token` is empty: give a secret, or leave it out and set {TOKEN_VAR}"));
        }
        Ok(file)
    }

    /// The shared token: `BLOOMC_CLUSTER_TOKEN`, else the file's. An empty variable counts
    /// as unset; an empty token is refused by `parse`.
    pub(crate) fn token(&self) -> Result<String, String> {
        std::env::var(TOKEN_VAR).ok().filter(|t| !t.is_empty()).or_else(|| self.token.clone()).ok_or_else(|| {
            format!("the cluster has no token: set `token` in the cluster file or the environment variable {TOKEN_VAR}")
        })
    }

    pub(crate) fn max_frame(&self) -> usize {
        self.max_frame.unwrap_or(DEFAULT_MAX_FRAME)
    }
}

/// What the coordinator and its nodes must agree on: every source the compiler read (the program,
/// the standard-library modules it uses, the `--set` values) and the options that shape the
/// feeds' ticks. Taken from the compilation, so the program file is read once.
/// The `--coordination` is part of it: each node rewrites the program itself.
pub(crate) fn program_digest(
    c: &bloomc_compiler::Compilation,
    batch: usize,
    skip_bad_rows: bool,
    coordination: CoordinationArg,
) -> u64 {
    let text: String = c.sources.files().map(|(_, f)| f.text.as_str()).collect();
    digest(text.as_bytes(), &options(batch, skip_bad_rows, coordination))
}

/// The feed options and the coordination as the digest takes them.
fn options(batch: usize, skip_bad_rows: bool, coordination: CoordinationArg) -> [(String, String); 3] {
    [
        ("--batch".to_string(), batch.to_string()),
        ("--skip-bad-rows".to_string(), skip_bad_rows.to_string()),
        ("--coordination".to_string(), super::network::strategy(coordination).as_str().to_string()),
    ]
}

/// `bloomc node FILE --name NODE --cluster cluster.toml`
#[derive(clap::Args)]
pub struct Node {
    #[command(flatten)]
    program: ProgramArgs,
    /// The node instance to run, as the plan names it (`reporting[1]`; `bloomc dump plan`
    /// lists them).
    #[arg(long)]
    name: String,
    /// The cluster file: the coordinator's address, the cluster's name and token. Without it, the
    /// cluster file's text is taken from the environment variable BLOOMC_CLUSTER (which is
    /// how the launcher of `bloomc run --processes` passes it).
    #[arg(long = "cluster", value_name = "CLUSTER.toml")]
    cluster: Option<PathBuf>,
    /// Stop (exit status 2) when standard input reaches its end. The launcher starts its nodes
    /// so and holds their standard input open, so that no node outlives it.
    #[arg(long)]
    watch_stdin: bool,
    /// Rows of a file feed per tick (as the coordinator's `--batch`; 1 to 1,000,000).
    #[arg(long, default_value_t = 1000, value_parser = super::parse_batch)]
    batch: usize,
    #[command(flatten)]
    limits: super::InputLimits,
    /// Skip malformed rows of file feeds (as the coordinator's `--skip-bad-rows`).
    #[arg(long)]
    skip_bad_rows: bool,
    /// Delay every data frame this node sends by this many milliseconds, and every request
    /// to the ordering service by twice as many (0 to 10,000): a model of a slower network.
    #[arg(long, value_name = "MS", value_parser = super::parse_link_delay)]
    link_delay_ms: Option<u64>,
    /// Keep a journal in this directory (it should be private to you): what the node
    /// received and what each tick took. Started again with the same journal after a
    /// crash, the node recovers by replay (the coordinator must run with `--restart`).
    #[arg(long, value_name = "DIR")]
    journal: Option<PathBuf>,
    /// The coordination to rewrite the program for, as the coordinator's `--coordination`
    /// (the coordinator refuses a node that rewrote for another).
    #[arg(long, value_enum, default_value_t = CoordinationArg::Auto)]
    coordination: CoordinationArg,
}

impl Node {
    pub fn run(self) -> Result<ExitCode, String> {
        if self.watch_stdin {
            watch_stdin();
        }
        let cluster = match (&self.cluster, std::env::var(CLUSTER_VAR)) {
            (Some(path), _) => ClusterFile::read(path)?,
            (None, Ok(text)) => ClusterFile::parse(&text, &format!("the environment variable {CLUSTER_VAR}"))?,
            (None, Err(_)) => {
                return Err(format!(
                    "bloomc node needs the cluster: give `--cluster CLUSTER.toml` or set {CLUSTER_VAR} to a cluster file's text"
                ))
            }
        };
        let c = super::common::load(&self.program)?;
        let (errors, _) = super::common::report(&c, self.program.text_format()?, false);
        let program = program_digest(&c, self.batch, self.skip_bad_rows, self.coordination);
        let Some(p) = c.program.as_ref().filter(|_| errors == 0) else { return Ok(ExitCode::from(1)) };
        let (_, p) = super::network::rewritten(p, c.analysis.as_ref(), self.coordination)?;
        let inputs = Inputs {
            program: &self.program,
            inputs: &[],
            batch: self.batch,
            skip_bad_rows: self.skip_bad_rows,
            limits: self.limits,
        };
        let (files, _) = read_inputs(&inputs, &p)?;
        let plans = bloomc_runtime::plan::plan_network(&p, &files)?;
        let hello = Hello {
            cluster: cluster.cluster.clone(),
            token: cluster.token()?,
            node: self.name.clone(),
            program,
            session: u64::from_le_bytes(random::<8>()?),
            listen: String::new(),
        };
        let node = NodeOptions {
            coordinator: cluster.coordinator.clone(),
            listen: cluster.nodes.get(&self.name).cloned().unwrap_or_else(|| "127.0.0.1:0".to_string()),
            max_frame: cluster.max_frame(),
            link_delay: Duration::from_millis(self.link_delay_ms.unwrap_or(0)),
            journal: self.journal.clone(),
        };
        bloomc_runtime::mesh::node_process(p, plans, hello, &node)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Stops this process once standard input reaches its end (its launcher is gone).
pub(crate) fn watch_stdin() {
    std::thread::spawn(|| {
        // `copy` retries interrupted reads and returns at the end of input or on an error;
        // either way the launcher no longer holds the other end.
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        // Not `eprintln!`, which panics when the launcher took the other end of stderr too.
        let _ = writeln!(std::io::stderr(), "error: the launcher is gone (standard input closed): stopping this node");
        std::process::exit(2);
    });
}

/// A fresh random token, from the operating system's generator.
fn fresh_token() -> Result<String, String> {
    Ok(random::<16>()?.iter().map(|b| format!("{b:02x}")).collect())
}

/// `N` random bytes from the operating system's generator.
fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").map_err(|e| format!("cannot read random bytes: {e}"))?,
        &mut bytes,
    )
    .map_err(|e| format!("cannot read random bytes: {e}"))?;
    Ok(bytes)
}

/// Coordinates the network: with `--processes` it starts and supervises one node process
/// per instance; with only `--cluster` it waits for the nodes to connect. When the run
/// orders a group's batches (`ordered`) with the embedded ordering service, it starts and
/// supervises `bloomc sequencer` too.
pub fn run_coordinator(
    run: &Run,
    plans: &[NodePlan],
    options: &NetworkOptions,
    digest: u64,
    ordered: bool,
) -> Result<NetworkResult, String> {
    let cluster = match &run.cluster_file {
        Some(path) => ClusterFile::read(path)?,
        // Loopback, a port the system chooses, a fresh name and token.
        None => ClusterFile {
            cluster: format!("bloomc-{}", std::process::id()),
            coordinator: "127.0.0.1:0".to_string(),
            token: Some(fresh_token()?),
            max_frame: None,
            order_service: None,
            sequencer: None,
            nodes: Default::default(),
        },
    };
    for name in cluster.nodes.keys() {
        if !plans.iter().any(|x| x.node_name == *name) {
            let names: Vec<&str> = plans.iter().map(|x| x.node_name.as_str()).collect();
            return Err(format!(
                "the cluster file lists node `{name}`, which the program does not have; its nodes are {}",
                names.join(", ")
            ));
        }
    }
    let listener = std::net::TcpListener::bind(&cluster.coordinator)
        .map_err(|e| format!("the coordinator cannot listen on {}: {e}", cluster.coordinator))?;
    let address = listener.local_addr().map_err(|e| format!("coordinator: {e}"))?;
    let service = match (&run.order_service, &cluster.order_service) {
        (Some(s), _) => s.clone(),
        (None, Some(text)) => super::parse_order_service(text)?,
        (None, None) => super::OrderServiceArg::Embedded,
    };
    let mut config = coordinator_config(&cluster, cluster.token()?, digest)?;
    config.restarts = run.restart;
    // Where the sequencer listens, if the run needs one; the launcher tells the nodes the
    // address it bound.
    let sequencer = match (service, ordered) {
        (_, false) => None,
        (super::OrderServiceArg::ZooKeeper(addr), true) => {
            config.order = OrderAt::ZooKeeper(addr);
            None
        }
        (super::OrderServiceArg::Embedded, true) => Some(match &cluster.sequencer {
            Some(a) => a.clone(),
            None if address.ip().is_unspecified() => {
                return Err(format!(
                    "the coordinator listens on {address}, an address nodes cannot connect to: give `sequencer = \"HOST:PORT\"` in the cluster file, where the nodes can reach the ordering service"
                ))
            }
            None => format!("{}:0", address.ip()),
        }),
    };
    if run.processes || sequencer.is_some() {
        let given = match &run.cluster_file {
            Some(path) => Given::File(path.clone()),
            None => {
                // The nodes learn the address the system chose from their environment; the
                // token travels there too, separately.
                let file = ClusterFile { coordinator: address.to_string(), token: None, ..cluster };
                Given::Env(toml::to_string(&file).map_err(|e| format!("cannot describe the cluster: {e}"))?)
            }
        };
        let start = super::launcher::Start { nodes: run.processes, sequencer };
        if !run.processes {
            eprintln!("coordinator: listening on {address}; waiting for {} nodes", plans.len());
        }
        return super::launcher::launch(run, plans, options, &given, config, listener, start);
    }
    eprintln!("coordinator: listening on {address}; waiting for {} nodes", plans.len());
    let (_tx, exits) = std::sync::mpsc::channel();
    serve(listener, config, plans, options, exits, log())
}

/// How the launcher tells its nodes the cluster: the user's cluster file, or the text of one
/// in the environment.
pub(crate) enum Given {
    File(PathBuf),
    Env(String),
}

fn coordinator_config(cluster: &ClusterFile, token: String, program: u64) -> Result<CoordinatorConfig, String> {
    Ok(CoordinatorConfig {
        cluster: cluster.cluster.clone(),
        token,
        max_frame: cluster.max_frame(),
        program,
        grace: Duration::from_secs(10),
        order: OrderAt::None,
        run: u64::from_le_bytes(random::<8>()?),
        restarts: false,
    })
}

pub(crate) fn log() -> Log {
    Arc::new(|line: String| eprintln!("{line}"))
}
