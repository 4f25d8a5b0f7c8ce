//! What the coordinator and its node processes share: the cluster file, the program's
//! digest, the private ways the launcher hands both to its processes, and the random
//! numbers they need.
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

use super::args::CoordinationArg;
use bloomc_runtime::admission::Log;
use bloomc_runtime::coordinator::CoordinatorConfig;
use bloomc_runtime::wire::{digest, OrderAt, DEFAULT_MAX_FRAME, MAX_FRAME_RANGE, TOKEN_VAR};
use std::io::Write;
use std::path::{Path, PathBuf};
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
    /// The cluster a process (`who`: `bloomc node`) is given: the file at `path`, else the
    /// text of the environment variable `BLOOMC_CLUSTER` (how the launcher passes it).
    pub(crate) fn given(path: Option<&Path>, who: &str) -> Result<ClusterFile, String> {
        match (path, std::env::var(CLUSTER_VAR)) {
            (Some(path), _) => ClusterFile::read(path),
            (None, Ok(text)) => ClusterFile::parse(&text, &format!("the environment variable {CLUSTER_VAR}")),
            (None, Err(_)) => Err(format!(
                "{who} needs the cluster: give `--cluster CLUSTER.toml` or set {CLUSTER_VAR} to a cluster file's text"
            )),
        }
    }

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
            super::args::parse_order_service(service).map_err(|e| format!("{origin}: `order_service`: {e}"))?;
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
        ("--coordination".to_string(), super::coordination::strategy(coordination).as_str().to_string()),
    ]
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
pub(crate) fn fresh_token() -> Result<String, String> {
    Ok(random::<16>()?.iter().map(|b| format!("{b:02x}")).collect())
}

/// `N` random bytes from the operating system's generator.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").map_err(|e| format!("cannot read random bytes: {e}"))?,
        &mut bytes,
    )
    .map_err(|e| format!("cannot read random bytes: {e}"))?;
    Ok(bytes)
}

/// How the launcher tells its nodes the cluster: the user's cluster file, or the text of one
/// in the environment.
pub(crate) enum Given {
    File(PathBuf),
    Env(String),
}

pub(crate) fn coordinator_config(
    cluster: &ClusterFile,
    token: String,
    program: u64,
) -> Result<CoordinatorConfig, String> {
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
