//! The launcher of `bloomc run --processes`: it starts one `bloomc node` process per node
//! instance, and `bloomc sequencer` (the embedded ordering service) when the run orders a
//! group's batches, forwards their output prefixed with the node's name, watches their exit,
//! and stops them all when the run is over or one of them died, while this process
//! coordinates the run (`bloomc_runtime::coordinator`). A coordinator of nodes started by
//! hand (`--cluster` without `--processes`) starts only the sequencer, the same way.
//!
//! With `--restart`, a process that dies before the run is over is started again (at most
//! [`RESTARTS`] times each), with the same journal directory, and recovers by replay: a node
//! its state and what it received, the sequencer every position it gave and the address it
//! listened on. The journals live in a directory made for the run, private (0700) and with an
//! unpredictable name, removed when the launcher ends.

use super::clusterfile::{log, Given, CLUSTER_VAR};
use super::settings::NetworkRun;
use bloomc_runtime::coordinator::{serve, CoordinatorConfig, Exited, SEQUENCER};
use bloomc_runtime::network::NetworkOptions;
use bloomc_runtime::plan::NodePlan;
use bloomc_runtime::report::NetworkResult;
use bloomc_runtime::wire::{OrderAt, TOKEN_VAR};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

/// How many times `--restart` starts one node again.
pub const RESTARTS: u32 = 10;

/// What the launcher starts.
pub struct Start {
    /// One `bloomc node` process per node instance.
    pub nodes: bool,
    /// `bloomc sequencer`, listening here (`host:port`, port 0 for a free one).
    pub sequencer: Option<String>,
}

/// Starts the processes `what` names (told the cluster as `given`) and coordinates the run.
pub fn launch(
    run: &NetworkRun,
    plans: &[NodePlan],
    options: &NetworkOptions,
    given: &Given,
    mut config: CoordinatorConfig,
    listener: std::net::TcpListener,
    what: Start,
) -> Result<NetworkResult, String> {
    let journals = match run.restart {
        true => Some(
            tempfile::Builder::new()
                .prefix("bloomc-journals-")
                .tempdir()
                .map_err(|e| format!("cannot make a private directory for the nodes' journals: {e}"))?,
        ),
        false => None,
    };
    let spawner = Spawner {
        exe: std::env::current_exe().map_err(|e| format!("cannot find this program's executable: {e}"))?,
        run,
        given,
        journals,
        token: config.token.clone(),
        sequencer: what.sequencer.clone(),
        forwarders: Mutex::new(Vec::new()),
    };
    let mut children: Vec<(String, Child, u32)> = Vec::new();
    if what.sequencer.is_some() {
        let mut child = spawner.start(SEQUENCER, false)?;
        match bound(&mut child) {
            Ok((addr, rest)) => {
                config.order = OrderAt::Sequencer(addr);
                spawner.forwarders.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(rest);
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        }
        children.push((SEQUENCER.to_string(), child, 0));
    }
    for plan in plans.iter().filter(|_| what.nodes) {
        match spawner.start(&plan.node_name, false) {
            Ok(child) => children.push((plan.node_name.clone(), child, 0)),
            Err(e) => {
                stop_all(&mut children);
                return Err(e);
            }
        }
    }
    let (tx, exits) = std::sync::mpsc::channel();
    // 0 while the run goes on, 1 once it finished, 2 once it failed.
    let over = AtomicU8::new(0);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| supervise(&spawner, children, &tx, &over));
        let result = serve(listener, config, plans, options, exits, log());
        over.store(if result.is_ok() { 1 } else { 2 }, Ordering::SeqCst);
        result
    });
    // Every node has exited: what they last wrote is shown before the launcher's verdict.
    for f in std::mem::take(&mut *spawner.forwarders.lock().unwrap_or_else(std::sync::PoisonError::into_inner)) {
        let _ = f.join();
    }
    drop(spawner);
    result
}

/// How the launcher starts a node or the sequencer: its command line, told the cluster, the
/// token and the journal directory, its output forwarded.
struct Spawner<'a> {
    exe: std::path::PathBuf,
    run: &'a NetworkRun,
    given: &'a Given,
    /// With `--restart`: the run's private journal directory, removed when dropped.
    journals: Option<tempfile::TempDir>,
    token: String,
    /// Where the sequencer listens, when the launcher starts one.
    sequencer: Option<String>,
    forwarders: Mutex<Vec<JoinHandle<()>>>,
}

impl Spawner<'_> {
    /// What every process is told: the cluster, the journal directory, the token.
    fn told(&self, cmd: &mut Command) {
        match self.given {
            Given::File(path) => cmd.arg("--cluster").arg(path),
            Given::Env(text) => cmd.env(CLUSTER_VAR, text),
        };
        if let Some(dir) = &self.journals {
            cmd.arg("--journal").arg(dir.path());
        }
        // The process's standard input stays open as long as this process lives (the `Child`
        // holds it), so it stops when this one ends, killed or not (`--watch-stdin`).
        cmd.env(TOKEN_VAR, &self.token).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    }

    /// The command line of node `name` (the program and the options of this run that a
    /// node takes: `NodeCommand`), or of the sequencer.
    fn command(&self, name: &str) -> Command {
        let (run, mut cmd) = (self.run, Command::new(&self.exe));
        if name == SEQUENCER {
            cmd.args(["sequencer", "--watch-stdin", "--listen"]).arg(self.sequencer.as_deref().unwrap_or_default());
            self.told(&mut cmd);
            return cmd;
        }
        cmd.arg("node").arg(&run.node.file).args(["--name", name, "--watch-stdin"]).args(&run.node.args);
        self.told(&mut cmd);
        cmd
    }

    /// Starts node `name` (or the sequencer), `again` after it died, its output forwarded.
    fn start(&self, name: &str, again: bool) -> Result<Child, String> {
        let what = if name == SEQUENCER { "sequencer".to_string() } else { format!("node {name}") };
        let mut child = self.command(name).spawn().map_err(|e| format!("cannot start {what}: {e}"))?;
        eprintln!("{} {what} (pid {})", if again { "restarted" } else { "started" }, child.id());
        let shown = if name == SEQUENCER { "sequencer" } else { name };
        let mut f = self.forwarders.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A sequencer's first line says where it listens: read by `bound` first.
        if name != SEQUENCER || again {
            f.extend(forward(shown, child.stdout.take()));
        }
        f.extend(forward(shown, child.stderr.take()));
        Ok(child)
    }
}

/// The supervisor: reports each process's exit to the coordinator (starting it again with
/// `--restart`) while the run goes on (`over` is 0), then stops the sequencer and gives the
/// nodes a moment to exit by themselves before it stops them.
fn supervise(
    spawner: &Spawner<'_>,
    mut children: Vec<(String, Child, u32)>,
    tx: &std::sync::mpsc::Sender<Exited>,
    over: &AtomicU8,
) {
    while over.load(Ordering::SeqCst) == 0 {
        let mut again = Vec::new();
        children.retain_mut(|(name, child, restarts)| match child.try_wait() {
            Ok(Some(status)) => {
                let restarting = spawner.run.restart && !status.success() && *restarts < RESTARTS;
                if restarting {
                    let what = if name == SEQUENCER { "sequencer".to_string() } else { format!("node {name}") };
                    eprintln!("{what} exited ({status}) before the run finished: starting it again");
                    again.push((name.clone(), *restarts + 1));
                }
                let _ = tx.send(Exited {
                    node: name.clone(),
                    status: status.to_string(),
                    success: status.success(),
                    restarting,
                });
                false
            }
            _ => true,
        });
        for (name, restarts) in again {
            match spawner.start(&name, true) {
                Ok(child) => children.push((name, child, restarts)),
                Err(e) => eprintln!("error: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The sequencer serves until it is stopped: it is no longer needed.
    children.retain_mut(|(name, child, _)| {
        let sequencer = name == SEQUENCER;
        if sequencer {
            let _ = child.kill();
            let _ = child.wait();
        }
        !sequencer
    });
    // The nodes exit by themselves, after a finished run once they heard the answer to
    // their report, after a failed one once they heard why (and printed it, which the
    // forwarding shows): give them a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !children.is_empty() && std::time::Instant::now() < deadline {
        children.retain_mut(|(_, c, _)| !matches!(c.try_wait(), Ok(Some(_))));
        std::thread::sleep(Duration::from_millis(20));
    }
    stop_all(&mut children);
}

fn stop_all(children: &mut [(String, Child, u32)]) {
    for (_, c, _) in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The address a just started sequencer listens on: the first line of its standard output
/// (`sequencer: listening on ADDR`), read within 30 seconds. Its standard output is then
/// forwarded like the rest.
fn bound(child: &mut Child) -> Result<(String, JoinHandle<()>), String> {
    let out = child.stdout.take().ok_or("the sequencer has no standard output")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(out);
        let mut first = String::new();
        let read = lines.read_line(&mut first).map(|_| first);
        let _ = tx.send((read, lines));
    });
    let (first, rest) = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the sequencer did not say where it listens within 30 s".to_string())?;
    let first = first.map_err(|e| format!("cannot read the sequencer's output: {e}"))?;
    let rest = std::thread::spawn(move || {
        for line in rest.lines().map_while(Result::ok) {
            eprintln!("[sequencer] {line}");
        }
    });
    match first.trim().strip_prefix("sequencer: listening on ") {
        Some(addr) => Ok((addr.to_string(), rest)),
        None if first.is_empty() => Err("the sequencer exited before it listened (its errors are above)".to_string()),
        None => Err(format!("the sequencer said `{}` where it should say where it listens", first.trim())),
    }
}

/// Copies a node's output to this process's standard error, each line prefixed by its name.
/// The thread ends when the node's end of the pipe closes.
fn forward<R: std::io::Read + Send + 'static>(name: &str, from: Option<R>) -> Option<JoinHandle<()>> {
    let from = from?;
    let name = name.to_string();
    Some(std::thread::spawn(move || {
        for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
            eprintln!("[{name}] {line}");
        }
    }))
}
