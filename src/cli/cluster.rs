//! A network run across processes: the cluster file, `bloomc node`, and the launcher that
//! `bloomc run --processes` is. The launcher is the hub (`bloomc_runtime::hub`): it starts one
//! `bloomc node` process per node instance, forwards their output prefixed with the node's
//! name, watches their exit, and stops them all when the run is over or one of them died.
//!
//! The cluster file (TOML):
//! ```toml
//! cluster = "adtrack-lab"          # every node must present this name
//! hub = "10.0.0.1:7400"            # where the hub listens and the nodes connect
//! token = "..."                    # shared secret; BLOOMC_CLUSTER_TOKEN overrides it
//! max_frame = 67108864             # optional: the largest frame, in bytes
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
use bloomc_compiler::ir::Program;
use bloomc_runtime::hub::{serve, Exited, HubConfig, Log};
use bloomc_runtime::network::{NetworkOptions, NetworkResult};
use bloomc_runtime::plan::NodePlan;
use bloomc_runtime::wire::{digest, Hello, DEFAULT_MAX_FRAME, MAX_FRAME_RANGE, TOKEN_VAR};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub cluster: String,
    pub hub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_frame: Option<usize>,
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
    fn parse(text: &str, origin: &str) -> Result<ClusterFile, String> {
        let file: ClusterFile = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        if let Some(n) = file.max_frame.filter(|n| !MAX_FRAME_RANGE.contains(n)) {
            return Err(format!(
                "{origin}: `max_frame = {n}` is out of range: give a number of bytes from {} to {}",
                MAX_FRAME_RANGE.start(),
                MAX_FRAME_RANGE.end()
            ));
        }
        if file.token.as_deref() == Some("") {
            return Err(format!("{origin}: `token` is empty: give a secret, or leave it out and set {TOKEN_VAR}"));
        }
        Ok(file)
    }

    /// The shared token: `BLOOMC_CLUSTER_TOKEN`, else the file's. An empty variable counts
    /// as unset; an empty token is refused by `parse`.
    fn token(&self) -> Result<String, String> {
        std::env::var(TOKEN_VAR).ok().filter(|t| !t.is_empty()).or_else(|| self.token.clone()).ok_or_else(|| {
            format!("the cluster has no token: set `token` in the cluster file or the environment variable {TOKEN_VAR}")
        })
    }

    fn max_frame(&self) -> usize {
        self.max_frame.unwrap_or(DEFAULT_MAX_FRAME)
    }
}

/// The digest the hub and every node compare: the program file's bytes and `--set` values.
/// What the hub and its nodes must agree on: every source the compiler read (the program,
/// the standard-library modules it uses, the `--set` values) and the options that shape the
/// feeds' ticks. Taken from the compilation, so the program file is read once.
/// The `--coordination` is part of it: each node rewrites the program itself, as the hub did.
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
    /// The cluster file: the hub's address, the cluster's name and token. Without it, the
    /// cluster file's text is taken from the environment variable BLOOMC_CLUSTER (which is
    /// how the launcher of `bloomc run --processes` passes it).
    #[arg(long = "cluster", value_name = "CLUSTER.toml")]
    cluster: Option<PathBuf>,
    /// Stop (exit status 2) when standard input reaches its end. The launcher starts its nodes
    /// so and holds their standard input open, so that no node outlives it.
    #[arg(long)]
    watch_stdin: bool,
    /// Rows of a file feed per tick (as the hub's `--batch`; 1 to 1,000,000).
    #[arg(long, default_value_t = 1000, value_parser = super::parse_batch)]
    batch: usize,
    #[command(flatten)]
    limits: super::InputLimits,
    /// Skip malformed rows of file feeds (as the hub's `--skip-bad-rows`).
    #[arg(long)]
    skip_bad_rows: bool,
    /// The coordination to rewrite the program for, as the hub's `--coordination` (the hub
    /// refuses a node that rewrote for another).
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
        let mut plans = bloomc_runtime::plan::plan_network(&p, &files)?;
        bloomc_runtime::coordination::seal_feeds(&p, &mut plans, c.analysis.as_ref());
        let hello = Hello {
            cluster: cluster.cluster.clone(),
            token: cluster.token()?,
            node: self.name.clone(),
            program,
            session: u64::from_le_bytes(random::<8>()?),
        };
        bloomc_runtime::remote::node_process(p, plans, &cluster.hub, hello, cluster.max_frame())?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Stops this process once standard input reaches its end (its launcher is gone).
fn watch_stdin() {
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

/// Runs the network as the hub: with `--processes` it starts and supervises one node
/// process per instance; with only `--cluster` it waits for the nodes to connect.
pub fn run_hub(
    run: &Run,
    p: &Program,
    plans: &[NodePlan],
    options: &NetworkOptions,
    digest: u64,
) -> Result<NetworkResult, String> {
    let cluster = match &run.cluster_file {
        Some(path) => ClusterFile::read(path)?,
        // Loopback, a port the system chooses, a fresh name and token.
        None => ClusterFile {
            cluster: format!("bloomc-{}", std::process::id()),
            hub: "127.0.0.1:0".to_string(),
            token: Some(fresh_token()?),
            max_frame: None,
        },
    };
    let listener = std::net::TcpListener::bind(&cluster.hub)
        .map_err(|e| format!("the hub cannot listen on {}: {e}", cluster.hub))?;
    let address = listener.local_addr().map_err(|e| format!("hub: {e}"))?;
    let config = hub_config(&cluster, cluster.token()?, digest);
    if run.processes {
        let given = match &run.cluster_file {
            Some(path) => Given::File(path.clone()),
            None => {
                // The nodes learn the address the system chose from their environment; the
                // token travels there too, separately.
                let file = ClusterFile { hub: address.to_string(), token: None, ..cluster };
                Given::Env(toml::to_string(&file).map_err(|e| format!("cannot describe the cluster: {e}"))?)
            }
        };
        return launch(run, p, plans, options, &given, config, listener);
    }
    eprintln!("hub: listening on {address}; waiting for {} nodes", plans.len());
    let (_tx, exits) = std::sync::mpsc::channel();
    serve(listener, config, plans, p, options, exits, log())
}

/// How the launcher tells its nodes the cluster: the user's cluster file, or the text of one
/// in the environment.
enum Given {
    File(PathBuf),
    Env(String),
}

fn hub_config(cluster: &ClusterFile, token: String, program: u64) -> HubConfig {
    HubConfig {
        cluster: cluster.cluster.clone(),
        token,
        max_frame: cluster.max_frame(),
        program,
        grace: Duration::from_secs(10),
    }
}

fn log() -> Log {
    Arc::new(|line: String| eprintln!("{line}"))
}

/// Starts one `bloomc node` process per node instance (told the cluster as `given`) and
/// serves them as the hub.
fn launch(
    run: &Run,
    p: &Program,
    plans: &[NodePlan],
    options: &NetworkOptions,
    given: &Given,
    config: HubConfig,
    listener: std::net::TcpListener,
) -> Result<NetworkResult, String> {
    let token = config.token.clone();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's executable: {e}"))?;
    let mut children: Vec<(String, Child)> = Vec::new();
    let mut forwarders = Vec::new();
    let stop_all = |children: &mut Vec<(String, Child)>| {
        for (_, c) in children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    };
    for plan in plans {
        let mut cmd = Command::new(&exe);
        cmd.arg("node").arg(&run.program.file).args(["--name", &plan.node_name, "--watch-stdin"]);
        match given {
            Given::File(path) => cmd.arg("--cluster").arg(path),
            Given::Env(text) => cmd.env(CLUSTER_VAR, text),
        };
        for (k, v) in &run.program.set {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        for (stream, cols) in &run.program.seal {
            cmd.arg("--seal").arg(format!("{stream}={}", cols.join(",")));
        }
        if run.program.allow.contains(&super::Allow::Nondeterminism) {
            cmd.args(["--allow", "nondeterminism"]);
        }
        cmd.arg("--batch").arg(run.batch.to_string());
        cmd.arg("--coordination").arg(super::network::strategy(run.coordination).as_str());
        cmd.arg("--max-input-bytes").arg(run.limits.max_input_bytes.to_string());
        cmd.arg("--max-field-bytes").arg(run.limits.max_field_bytes.to_string());
        if run.skip_bad_rows {
            cmd.arg("--skip-bad-rows");
        }
        // The node's standard input stays open as long as this process lives (the `Child`
        // holds it), so the node stops when it ends, killed or not (`--watch-stdin`).
        cmd.env(TOKEN_VAR, &token).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                stop_all(&mut children);
                return Err(format!("cannot start node `{}`: {e}", plan.node_name));
            }
        };
        eprintln!("started node {} (pid {})", plan.node_name, child.id());
        forwarders.extend(forward(&plan.node_name, child.stdout.take()));
        forwarders.extend(forward(&plan.node_name, child.stderr.take()));
        children.push((plan.node_name.clone(), child));
    }
    // The supervisor: reports each node's exit to the hub, and stops them all at the end.
    let (tx, exits) = std::sync::mpsc::channel();
    // 0 while the run goes on, 1 once it finished, 2 once it failed.
    let over = Arc::new(AtomicU8::new(0));
    let supervisor = {
        let over = over.clone();
        std::thread::spawn(move || {
            while over.load(Ordering::SeqCst) == 0 {
                children.retain_mut(|(name, child)| match child.try_wait() {
                    Ok(Some(status)) => {
                        let _ = tx.send(Exited {
                            node: name.clone(),
                            status: status.to_string(),
                            success: status.success(),
                        });
                        false
                    }
                    _ => true,
                });
                std::thread::sleep(Duration::from_millis(20));
            }
            // The nodes exit by themselves, after a finished run once they heard the answer to
            // their report, after a failed one once they heard why (and printed it, which the
            // forwarding shows): give them a moment.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !children.is_empty() && std::time::Instant::now() < deadline {
                children.retain_mut(|(_, c)| !matches!(c.try_wait(), Ok(Some(_))));
                std::thread::sleep(Duration::from_millis(20));
            }
            stop_all(&mut children);
        })
    };
    let result = serve(listener, config, plans, p, options, exits, log());
    over.store(if result.is_ok() { 1 } else { 2 }, Ordering::SeqCst);
    let _ = supervisor.join();
    // Every node has exited: what they last wrote is shown before the launcher's verdict.
    for f in forwarders {
        let _ = f.join();
    }
    result
}

/// Copies a node's output to this process's standard error, each line prefixed by its name.
/// The thread ends when the node's end of the pipe closes.
fn forward<R: std::io::Read + Send + 'static>(name: &str, from: Option<R>) -> Option<std::thread::JoinHandle<()>> {
    let from = from?;
    let name = name.to_string();
    Some(std::thread::spawn(move || {
        for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
            eprintln!("[{name}] {line}");
        }
    }))
}
