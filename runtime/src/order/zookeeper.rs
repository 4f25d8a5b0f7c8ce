//! The `zookeeper` backend of the ordering service: one total order of batches per group,
//! kept by an Apache ZooKeeper ensemble (the Blazes paper's choice).
//!
//! Layout under the run's root znode `ROOT` (persistent znodes only, so everything survives
//! the restart of any client and of the server):
//!
//! - `ROOT/<group>/order/b-<producer>-<seq>-NNNNNNNNNN`: one persistent *sequential* znode per
//!   batch. ZooKeeper appends to the name the parent's child version (`cversion`) at the time
//!   of the create, and that number is the batch's position. Nothing ever deletes a child of
//!   `order`, so `cversion` counts exactly the creates: positions are 0, 1, 2, ... with no
//!   gaps, in the order the server committed them, the same for every client.
//! - `ROOT/<group>/ids/<producer>-<seq>`: the batch's name, a plain persistent znode created
//!   in the *same* `multi` transaction as its sequential znode. ZooKeeper applies a `multi`
//!   atomically, so a batch has a sequential znode if and only if it has an id znode, and a
//!   second create of the same batch fails with `NodeExists` on the id instead of taking a
//!   second position. That makes every retry safe: after a lost connection, a restart of the
//!   asking process (a fresh [`ZkOrder`]) or an expired session, the same `multi` is sent
//!   again, and `NodeExists` means "this batch already has a position": it is read back from
//!   the id znode's data if a lookup stored it there, else found by listing `order` for the
//!   child named `b-<producer>-<seq>-` (after a `sync`) and then stored in the id's data.
//!
//! A [`ZkOrder`] caches the positions it has learned, so asking for a new batch costs one
//! round trip (one `multi`). It is a blocking API for a plain thread: it owns a small tokio
//! runtime (one worker thread, which also keeps the session's heartbeats going between calls).
//! Connection loss is retried on the same session; an expired or closed session is replaced
//! by a new one; every call is bounded by the `timeout` given to [`ZkOrder::connect`].

use super::{BatchId, OrderService};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};
use zookeeper_client as zk;

/// How many learned positions a client keeps before it forgets them all (a producer asks
/// again only after a failure, so the cache need not grow with the run).
const KNOWN_AT_MOST: usize = 1 << 16;

/// The ordering service served by a ZooKeeper ensemble. See the module documentation.
pub struct ZkOrder {
    runtime: tokio::runtime::Runtime,
    addr: String,
    root: String,
    timeout: Duration,
    client: Option<zk::Client>,
    /// Groups whose `order` and `ids` parents are known to exist.
    ready: HashSet<String>,
    /// Positions learned so far, by group and batch.
    known: HashMap<(String, BatchId), u64>,
    /// Sessions opened so far (more than one after a session expired or closed).
    sessions: u64,
}

/// Why one attempt failed, and what to do about it.
enum Fault {
    /// Try again on the same session (connection loss, a throttled or timed-out request).
    Retry(String),
    /// The session is gone: connect a new one, then try again.
    Reconnect(String),
    /// A group parent is missing: create it, then try again.
    Parents,
    /// No retry helps.
    Fatal(String),
}

fn fault(op: &str, err: zk::Error) -> Fault {
    match err {
        zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::NoHosts | zk::Error::SessionMoved => {
            Fault::Reconnect(format!("{op}: {err}"))
        }
        zk::Error::NoNode => Fault::Parents,
        // Answers about the request itself: asking again gets the same answer.
        zk::Error::BadArguments(_)
        | zk::Error::NoAuth
        | zk::Error::AuthFailed
        | zk::Error::BadVersion
        | zk::Error::NoChildrenForEphemerals
        | zk::Error::NodeExists
        | zk::Error::NotEmpty
        | zk::Error::InvalidAcl
        | zk::Error::QuotaExceeded
        | zk::Error::MarshallingError
        | zk::Error::UnmarshalError { .. }
        | zk::Error::Unimplemented
        | zk::Error::NotReadOnly
        | zk::Error::RuntimeInconsistent => Fault::Fatal(format!("{op}: {err}")),
        // Connection loss, a reset socket, a throttled or timed-out request, anything else:
        // every request here is safe to repeat, so try again until the deadline.
        other => Fault::Retry(format!("{op}: {other}")),
    }
}

/// The ACL of every znode the backend creates: open, as ZooKeeper's default (the ensemble is
/// the cluster's own, reached only by its nodes).
fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// A group name (or a component of the root path) as one znode path component: printable
/// ASCII without `/`, not `.` or `..`, at most 200 bytes.
pub fn check_component(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?} cannot name a ZooKeeper znode: use 1 to 200 printable ASCII \
             characters without '/' or spaces, other than \".\" and \"..\""
        ))
    }
}

fn check_root(root: &str) -> Result<(), String> {
    let Some(rest) = root.strip_prefix('/') else {
        return Err(format!("ZooKeeper root {root:?} must be an absolute znode path, like /bloomc/CLUSTER/RUN"));
    };
    for (i, part) in rest.split('/').enumerate() {
        check_component("ZooKeeper root component", part)?;
        if i == 0 && part == "zookeeper" {
            return Err(format!("ZooKeeper root {root:?} is inside /zookeeper, which the server reserves"));
        }
    }
    Ok(())
}

/// The client blocks its caller, which must not be a task of a tokio runtime (blocking one
/// there would panic or stall the runtime).
fn plain_thread() -> Result<(), String> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err("the ZooKeeper order client blocks: call it from a plain thread, not from \
                    inside a tokio runtime (use spawn_blocking)"
            .to_string());
    }
    Ok(())
}

/// The position encoded in a sequential znode's name: the digits after `prefix`.
fn suffix_position(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl ZkOrder {
    /// Connects to the ZooKeeper ensemble at `addr` (`host:port`, or several separated by
    /// commas) and makes sure the persistent znode `root` exists (creating its ancestors).
    /// `timeout` bounds this call and every later [`OrderService::position`] call, retries
    /// included; it is also the session timeout asked of the server (which clamps it to its
    /// own bounds, 2 to 20 ticks by default).
    pub fn connect(addr: &str, root: &str, timeout: Duration) -> Result<ZkOrder, String> {
        check_root(root)?;
        plain_thread()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bloomc-zookeeper")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the ZooKeeper client's runtime: {e}"))?;
        let mut order = ZkOrder {
            runtime,
            addr: addr.to_string(),
            root: root.to_string(),
            timeout,
            client: None,
            ready: HashSet::new(),
            known: HashMap::new(),
            sessions: 0,
        };
        let root = order.root.clone();
        order.with_retries(&format!("creating {root}"), |this| this.mkdir(&root))?;
        Ok(order)
    }

    /// The address this client connects to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The root znode of this run's orders.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// How many ZooKeeper sessions this client has opened: 1, plus one for each session
    /// that expired or closed and was replaced.
    pub fn sessions_opened(&self) -> u64 {
        self.sessions
    }

    /// Runs `attempt` until it succeeds, fails for good, or the timeout runs out, reconnecting
    /// and recreating parents as its faults ask.
    fn with_retries<T>(
        &mut self,
        what: &str,
        mut attempt: impl FnMut(&mut Self) -> Result<T, Fault>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(20);
        let mut last;
        loop {
            let outcome = match self.session(deadline) {
                Ok(()) => attempt(self),
                Err(e) => Err(Fault::Retry(e)),
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(Fault::Fatal(e)) => {
                    return Err(format!("ZooKeeper at {}: {what}: {e}", self.addr));
                }
                Err(Fault::Retry(e)) => last = e,
                Err(Fault::Reconnect(e)) => {
                    self.client = None;
                    last = e;
                }
                Err(Fault::Parents) => {
                    self.ready.clear();
                    last = "a parent znode was missing".to_string();
                    // A missing parent is created by the next attempt: no pause.
                    if Instant::now() < deadline {
                        continue;
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "ZooKeeper at {}: {what}: no answer within {:?} (last error: {last}); is the \
                     server running and reachable? (install it with `apt-get install zookeeper`, \
                     see .ci/run)",
                    self.addr, self.timeout
                ));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Makes sure there is a live session, connecting a new one if needed.
    fn session(&mut self, deadline: Instant) -> Result<(), String> {
        if let Some(client) = &self.client {
            if !client.state().is_terminated() {
                return Ok(());
            }
            self.client = None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let connector = zk::Client::connector().with_session_timeout(self.timeout).with_fail_eagerly();
        let addr = self.addr.clone();
        let client = self
            .runtime
            .block_on(async move { tokio::time::timeout(left, connector.connect(&addr)).await })
            .map_err(|_| "connecting: timed out".to_string())?
            .map_err(|e| format!("connecting: {e}"))?;
        self.client = Some(client);
        self.sessions += 1;
        Ok(())
    }

    /// Runs one request future on the runtime, bounded by the timeout; the server's own
    /// answer, or the fault of a request that got none.
    fn answer<T>(
        &self,
        op: &str,
        fut: impl Future<Output = Result<T, zk::Error>>,
    ) -> Result<Result<T, zk::Error>, Fault> {
        let timeout = self.timeout;
        self.runtime
            .block_on(async move { tokio::time::timeout(timeout, fut).await })
            .map_err(|_| Fault::Retry(format!("{op}: no answer within {timeout:?}")))
    }

    /// [`Self::answer`], with every error a fault.
    fn run<T>(&self, op: &str, fut: impl Future<Output = Result<T, zk::Error>>) -> Result<T, Fault> {
        self.answer(op, fut)?.map_err(|e| fault(op, e))
    }

    fn client(&self) -> Result<&zk::Client, Fault> {
        self.client.as_ref().ok_or_else(|| Fault::Reconnect("no session".to_string()))
    }

    /// `mkdir -p` of a persistent path (existing znodes, also ones another process creates at
    /// the same time, are fine).
    fn mkdir(&self, path: &str) -> Result<(), Fault> {
        let client = self.client()?;
        let options = persistent();
        let mut prefix = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            prefix.push('/');
            prefix.push_str(part);
            match self.answer("create", client.create(&prefix, &[], &options))? {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(fault(&format!("creating {prefix}"), e)),
            }
        }
        Ok(())
    }

    fn group_path(&self, group: &str) -> String {
        format!("{}/{group}", self.root)
    }

    /// Creates the group's `order` and `ids` parents unless known to exist.
    fn parents(&mut self, group: &str) -> Result<(), Fault> {
        if self.ready.contains(group) {
            return Ok(());
        }
        let base = self.group_path(group);
        self.mkdir(&format!("{base}/order"))?;
        self.mkdir(&format!("{base}/ids"))?;
        self.ready.insert(group.to_string());
        Ok(())
    }

    /// One attempt at the position of `batch`: the `multi` that creates it, or the lookup of
    /// the position it already has.
    fn attempt(&mut self, group: &str, batch: BatchId) -> Result<u64, Fault> {
        self.parents(group)?;
        let base = self.group_path(group);
        let id_path = format!("{base}/ids/{}-{}", batch.producer, batch.seq);
        let seq_prefix = format!("{base}/order/b-{}-{}-", batch.producer, batch.seq);
        let client = self.client()?;
        let mut multi = client.new_multi_writer();
        let options = persistent();
        let sequential = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
        multi
            .add_create(&id_path, &[], &options)
            .and_then(|()| multi.add_create(&seq_prefix, &[], &sequential))
            .map_err(|e| Fault::Fatal(format!("building the create: {e}")))?;
        let timeout = self.timeout;
        let outcome = self.runtime.block_on(async move { tokio::time::timeout(timeout, multi.commit()).await });
        match outcome {
            Err(_) => Err(Fault::Retry(format!("create: no answer within {timeout:?}"))),
            Ok(Ok(results)) => {
                let created = results.into_iter().find_map(|r| match r {
                    zk::MultiWriteResult::Create { path, .. } if path.starts_with(&seq_prefix) => Some(path),
                    _ => None,
                });
                created
                    .as_deref()
                    .and_then(|path| suffix_position(path, &seq_prefix))
                    .ok_or_else(|| Fault::Fatal(format!("the server named no sequential znode {seq_prefix}N")))
            }
            Ok(Err(zk::MultiWriteError::OperationFailed { index: 0, source: zk::Error::NodeExists })) => {
                self.lookup(&base, &id_path, batch)
            }
            Ok(Err(zk::MultiWriteError::OperationFailed { source, .. }))
            | Ok(Err(zk::MultiWriteError::RequestFailed { source })) => Err(fault("create", source)),
        }
    }

    /// The position of a batch whose id znode exists: from the id's data, or else by listing
    /// the group's order (and then recorded in the id's data for the next lookup).
    fn lookup(&self, base: &str, id_path: &str, batch: BatchId) -> Result<u64, Fault> {
        let client = self.client()?;
        let (data, _) = self.run("read", client.get_data(id_path))?;
        if let Some(pos) = std::str::from_utf8(&data).ok().and_then(|s| s.parse::<u64>().ok()) {
            return Ok(pos);
        }
        let order = format!("{base}/order");
        self.run("sync", client.sync(&order))?;
        let children = self.run("list", client.list_children(&order))?;
        let name = format!("b-{}-{}-", batch.producer, batch.seq);
        let pos = children.iter().find_map(|child| suffix_position(child, &name)).ok_or_else(|| {
            Fault::Fatal(format!(
                "{id_path} exists but {order} has no child {name}N: the run's znodes were \
                     changed by something other than bloomc"
            ))
        })?;
        // Best effort: a later lookup then costs one read. The position is known either way.
        let _ = self.run("record", client.set_data(id_path, pos.to_string().as_bytes(), None));
        Ok(pos)
    }
}

impl OrderService for ZkOrder {
    fn position(&mut self, group: &str, batch: BatchId) -> Result<u64, String> {
        check_component("group name", group)?;
        plain_thread()?;
        let key = (group.to_string(), batch);
        if let Some(&pos) = self.known.get(&key) {
            return Ok(pos);
        }
        let what = format!("position of batch {}/{} in group {group}", batch.producer, batch.seq);
        let pos = self.with_retries(&what, |this| this.attempt(group, batch))?;
        if self.known.len() >= KNOWN_AT_MOST {
            // Forgetting is safe: a batch asked again is found by its id znode.
            self.known.clear();
        }
        self.known.insert(key, pos);
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_component("group name", "replicas").is_ok());
        assert!(check_component("group name", "g:1.x-y_z").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "é", "a\n"] {
            assert!(check_component("group name", bad).is_err(), "{bad:?}");
        }
        assert!(check_root("/bloomc/c/run1").is_ok());
        for bad in ["bloomc", "/", "/a//b", "/a/", "/zookeeper/x", "/a/../b"] {
            assert!(check_root(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn suffixes_are_positions() {
        assert_eq!(suffix_position("b-1-2-0000000007", "b-1-2-"), Some(7));
        assert_eq!(suffix_position("b-1-22-0000000007", "b-1-2-"), None);
        assert_eq!(suffix_position("b-1-2-", "b-1-2-"), None);
        assert_eq!(suffix_position("b-1-2-x", "b-1-2-"), None);
    }
}
