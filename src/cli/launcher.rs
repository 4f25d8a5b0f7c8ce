//! The launcher of `bloomc run --processes`: it starts one `bloomc node` process per node
//! instance, forwards their output prefixed with the node's name, watches their exit, and
//! stops them all when the run is over or one of them died, while this process coordinates
//! the run (`bloomc_runtime::coordinator`). With `--restart`, a node that dies before the run
//! is over is started again (at most [`RESTARTS`] times a node), with the same journal
//! directory, and recovers by replay; the journals live in a directory made for the run,
//! private (0700) and with an unpredictable name, removed when the launcher ends.

use super::cluster::{log, Given, CLUSTER_VAR};
use super::run::Run;
use bloomc_runtime::coordinator::{serve, CoordinatorConfig, Exited};
use bloomc_runtime::network::{NetworkOptions, NetworkResult};
use bloomc_runtime::plan::NodePlan;
use bloomc_runtime::wire::TOKEN_VAR;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How many times `--restart` starts one node again.
pub const RESTARTS: u32 = 10;

/// Starts one `bloomc node` process per node instance (told the cluster as `given`) and
/// coordinates them.
pub fn launch(
    run: &Run,
    plans: &[NodePlan],
    options: &NetworkOptions,
    given: &Given,
    config: CoordinatorConfig,
    listener: std::net::TcpListener,
) -> Result<NetworkResult, String> {
    let token = config.token.clone();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's executable: {e}"))?;
    let journals = match run.restart {
        true => Some(
            tempfile::Builder::new()
                .prefix("bloomc-journals-")
                .tempdir()
                .map_err(|e| format!("cannot make a private directory for the nodes' journals: {e}"))?,
        ),
        false => None,
    };
    let command = |name: &str| -> Command {
        let mut cmd = Command::new(&exe);
        cmd.arg("node").arg(&run.program.file).args(["--name", name, "--watch-stdin"]);
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
        if let Some(ms) = run.link_delay_ms {
            cmd.arg("--link-delay-ms").arg(ms.to_string());
        }
        if let Some(dir) = &journals {
            cmd.arg("--journal").arg(dir.path());
        }
        // The node's standard input stays open as long as this process lives (the `Child`
        // holds it), so the node stops when it ends, killed or not (`--watch-stdin`).
        cmd.env(TOKEN_VAR, &token).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    };
    let forwarders: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
    let start = |name: &str, again: bool| -> Result<Child, String> {
        let mut child = command(name).spawn().map_err(|e| format!("cannot start node `{name}`: {e}"))?;
        eprintln!("{} node {name} (pid {})", if again { "restarted" } else { "started" }, child.id());
        let mut f = forwarders.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f.extend(forward(name, child.stdout.take()));
        f.extend(forward(name, child.stderr.take()));
        Ok(child)
    };
    let mut children: Vec<(String, Child, u32)> = Vec::new();
    for plan in plans {
        match start(&plan.node_name, false) {
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
        // The supervisor: reports each node's exit to the coordinator (starting it again with
        // `--restart`), and stops them all at the end.
        scope.spawn(|| {
            while over.load(Ordering::SeqCst) == 0 {
                let mut again = Vec::new();
                children.retain_mut(|(name, child, restarts)| match child.try_wait() {
                    Ok(Some(status)) => {
                        let restarting = run.restart && !status.success() && *restarts < RESTARTS;
                        if restarting {
                            eprintln!("node {name} exited ({status}) before the run finished: starting it again");
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
                    match start(&name, true) {
                        Ok(child) => children.push((name, child, restarts)),
                        Err(e) => eprintln!("error: {e}"),
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // The nodes exit by themselves, after a finished run once they heard the answer to
            // their report, after a failed one once they heard why (and printed it, which the
            // forwarding shows): give them a moment.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !children.is_empty() && std::time::Instant::now() < deadline {
                children.retain_mut(|(_, c, _)| !matches!(c.try_wait(), Ok(Some(_))));
                std::thread::sleep(Duration::from_millis(20));
            }
            stop_all(&mut children);
        });
        let result = serve(listener, config, plans, options, exits, log());
        over.store(if result.is_ok() { 1 } else { 2 }, Ordering::SeqCst);
        result
    });
    // Every node has exited: what they last wrote is shown before the launcher's verdict.
    for f in std::mem::take(&mut *forwarders.lock().unwrap_or_else(std::sync::PoisonError::into_inner)) {
        let _ = f.join();
    }
    drop(journals);
    result
}

fn stop_all(children: &mut [(String, Child, u32)]) {
    for (_, c, _) in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
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
