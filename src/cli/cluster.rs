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

use super::run::{read_inputs, Inputs, Run};
use super::ProgramArgs;
use bloomc_compiler::ir::Program;
use bloomc_runtime::hub::{serve, Exited, HubConfig, Log};
use bloomc_runtime::network::{NetworkOptions, NetworkResult};
use bloomc_runtime::plan::NodePlan;
use bloomc_runtime::wire::{digest, Hello, DEFAULT_MAX_FRAME, TOKEN_VAR};
use std::io::BufRead;
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

impl ClusterFile {
    pub fn read(path: &Path) -> Result<ClusterFile, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read cluster file `{shown}`: {e}"))?;
        toml::from_str(&text).map_err(|e| format!("cluster file `{shown}`: {e}"))
    }

    /// The shared token: `BLOOMC_CLUSTER_TOKEN`, else the file's.
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
pub(crate) fn program_digest(c: &bloomc_compiler::Compilation, batch: usize, skip_bad_rows: bool) -> u64 {
    let text: String = c.sources.files().map(|(_, f)| f.text.as_str()).collect();
    digest(text.as_bytes(), &feed_options(batch, skip_bad_rows))
}

/// The feed options as the digest takes them.
fn feed_options(batch: usize, skip_bad_rows: bool) -> [(String, String); 2] {
    [("--batch".to_string(), batch.to_string()), ("--skip-bad-rows".to_string(), skip_bad_rows.to_string())]
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
    /// The cluster file: the hub's address, the cluster's name and token.
    #[arg(long = "cluster", value_name = "CLUSTER.toml")]
    cluster: PathBuf,
    /// Rows of a file feed per tick (as the hub's `--batch`).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Skip malformed rows of file feeds (as the hub's `--skip-bad-rows`).
    #[arg(long)]
    skip_bad_rows: bool,
}

impl Node {
    pub fn run(self) -> Result<ExitCode, String> {
        let cluster = ClusterFile::read(&self.cluster)?;
        let c = super::common::load(&self.program)?;
        let (errors, _) = super::common::report(&c, self.program.text_format()?, false);
        let program = program_digest(&c, self.batch, self.skip_bad_rows);
        let Some(p) = c.program.filter(|_| errors == 0) else { return Ok(ExitCode::from(1)) };
        let inputs =
            Inputs { program: &self.program, inputs: &[], batch: self.batch, skip_bad_rows: self.skip_bad_rows };
        let (files, _) = read_inputs(&inputs, &p)?;
        let plans = bloomc_runtime::plan::plan_network(&p, &files)?;
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
    let (cluster, path, _dir) = match &run.cluster_file {
        Some(path) => (ClusterFile::read(path)?, path.clone(), None),
        None => {
            // Loopback, a port the system chooses, a fresh name and token.
            let dir = std::env::temp_dir().join(format!("bloomc-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
            let file = ClusterFile {
                cluster: format!("bloomc-{}", std::process::id()),
                hub: "127.0.0.1:0".to_string(),
                token: Some(fresh_token()?),
                max_frame: None,
            };
            (file, dir.join("cluster.toml"), Some(TempDir(dir)))
        }
    };
    let listener = std::net::TcpListener::bind(&cluster.hub)
        .map_err(|e| format!("the hub cannot listen on {}: {e}", cluster.hub))?;
    let address = listener.local_addr().map_err(|e| format!("hub: {e}"))?;
    let config = hub_config(&cluster, cluster.token()?, digest);
    if run.cluster_file.is_none() {
        // The nodes learn the address the system chose; the token travels in their
        // environment, not in the file.
        let file = ClusterFile { hub: address.to_string(), token: None, ..cluster };
        let text = toml::to_string(&file).map_err(|e| format!("cannot write the cluster file: {e}"))?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    }
    if run.processes {
        return launch(run, p, plans, options, &path, config, listener);
    }
    eprintln!("hub: listening on {address}; waiting for {} nodes", plans.len());
    let (_tx, exits) = std::sync::mpsc::channel();
    serve(listener, config, plans, p, options, exits, log())
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

/// Removes the launcher's temporary directory when the run ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts one `bloomc node` process per node instance (the cluster file at `path`) and
/// serves them as the hub.
fn launch(
    run: &Run,
    p: &Program,
    plans: &[NodePlan],
    options: &NetworkOptions,
    path: &Path,
    config: HubConfig,
    listener: std::net::TcpListener,
) -> Result<NetworkResult, String> {
    let token = config.token.clone();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's executable: {e}"))?;
    let mut children: Vec<(String, Child)> = Vec::new();
    let stop_all = |children: &mut Vec<(String, Child)>| {
        for (_, c) in children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    };
    for plan in plans {
        let mut cmd = Command::new(&exe);
        cmd.arg("node").arg(&run.program.file).args(["--name", &plan.node_name]).arg("--cluster").arg(path);
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
        if run.skip_bad_rows {
            cmd.arg("--skip-bad-rows");
        }
        cmd.env(TOKEN_VAR, &token).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                stop_all(&mut children);
                return Err(format!("cannot start node `{}`: {e}", plan.node_name));
            }
        };
        eprintln!("started node {} (pid {})", plan.node_name, child.id());
        forward(&plan.node_name, child.stdout.take());
        forward(&plan.node_name, child.stderr.take());
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
            // After a finished run the nodes exit by themselves: give them a moment.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while over.load(Ordering::SeqCst) == 1 && !children.is_empty() && std::time::Instant::now() < deadline {
                children.retain_mut(|(_, c)| !matches!(c.try_wait(), Ok(Some(_))));
                std::thread::sleep(Duration::from_millis(20));
            }
            stop_all(&mut children);
        })
    };
    let result = serve(listener, config, plans, p, options, exits, log());
    over.store(if result.is_ok() { 1 } else { 2 }, Ordering::SeqCst);
    let _ = supervisor.join();
    result
}

/// Copies a node's output to this process's standard error, each line prefixed by its name.
fn forward<R: std::io::Read + Send + 'static>(name: &str, from: Option<R>) {
    let Some(from) = from else { return };
    let name = name.to_string();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
            eprintln!("[{name}] {line}");
        }
    });
}
