//! A network run across processes: `bloomc node`, and the coordinator that `bloomc run
//! --processes` or `--cluster` is (the cluster file is `clusterfile.rs`). The launcher is the coordinator
//! (`bloomc_runtime::coordinator`: admission, addresses, ordering, the end of the run; no
//! facts pass through it): it starts one `bloomc node` process per node instance, forwards
//! their output prefixed with the node's name, watches their exit, and stops them all when the
//! run is over or one of them died.
//!
use super::args::CoordinationArg;
use super::args::ProgramArgs;
use super::clusterfile::{
    coordinator_config, fresh_token, log, program_digest, random, watch_stdin, ClusterFile, Given,
};
use super::io::{read_inputs, Inputs};
use super::settings::NetworkRun;
use bloomc_runtime::coordinator::serve;
use bloomc_runtime::mesh::NodeOptions;
use bloomc_runtime::network::NetworkOptions;
use bloomc_runtime::plan::NodePlan;
use bloomc_runtime::report::NetworkResult;
use bloomc_runtime::wire::{Hello, OrderAt};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    #[arg(long, default_value_t = 1000, value_parser = super::args::parse_batch)]
    batch: usize,
    #[command(flatten)]
    limits: super::args::InputLimits,
    /// Skip malformed rows of file feeds (as the coordinator's `--skip-bad-rows`).
    #[arg(long)]
    skip_bad_rows: bool,
    /// Delay every data frame this node sends by this many milliseconds, and every request
    /// to the ordering service by twice as many (0 to 10,000): a model of a slower network.
    #[arg(long, value_name = "MS", value_parser = super::args::parse_link_delay)]
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
        let cluster = ClusterFile::given(self.cluster.as_deref(), "bloomc node")?;
        let c = super::common::load(&self.program)?;
        let (errors, _) = super::common::report(&c, self.program.text_format()?, false);
        let program = program_digest(&c, self.batch, self.skip_bad_rows, self.coordination);
        let Some(p) = c.program.as_ref().filter(|_| errors == 0) else { return Ok(ExitCode::from(1)) };
        let (_, p) = super::coordination::rewritten(p, c.analysis.as_ref(), self.coordination)?;
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

/// Coordinates the network: with `--processes` it starts and supervises one node process
/// per instance; with only `--cluster` it waits for the nodes to connect. When the run
/// orders a group's batches (`ordered`) with the embedded ordering service, it starts and
/// supervises `bloomc sequencer` too.
pub fn run_coordinator(
    run: &NetworkRun,
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
        (None, Some(text)) => super::args::parse_order_service(text)?,
        (None, None) => super::args::OrderServiceArg::Embedded,
    };
    let mut config = coordinator_config(&cluster, cluster.token()?, digest)?;
    config.restarts = run.restart;
    // Where the sequencer listens, if the run needs one; the launcher tells the nodes the
    // address it bound.
    let sequencer = match (service, ordered) {
        (_, false) => None,
        (super::args::OrderServiceArg::ZooKeeper(addr), true) => {
            config.order = OrderAt::ZooKeeper(addr);
            None
        }
        (super::args::OrderServiceArg::Embedded, true) => Some(match &cluster.sequencer {
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
