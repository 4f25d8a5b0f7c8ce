//! The hub of a network run across processes: it owns the network's [`Net`] (inboxes,
//! sequencers, quiescence) and serves it to node processes over TCP (`wire.rs`). Every
//! message between nodes passes through it, so delivery order, the `order` sequencers and the
//! detection of quiescence are those of a run in one process.
//!
//! A connection is refused, with its reason logged, when its first frame is not a [`Hello`]
//! naming this cluster, the shared token, a node of the plan and the same program. Until it
//! is admitted a connection may send at most `wire::HELLO_LIMIT` bytes, and at most
//! [`PENDING_LIMIT`] connections may be waiting for their hello at once (a further one is
//! closed at once), so strangers cannot make the hub hold much memory; refusals are logged at
//! most [`LOG_BURST`] a second. A frame that is too long or does not decode closes its
//! connection (logged); the hub keeps running and the node may reconnect. A failed `accept`
//! (out of file descriptors, say) is logged and retried after a growing pause. A node that
//! loses its connection has `grace` to come back; a node process that exits before it
//! reported (the launcher sends [`Exited`]) fails the run, and the hub answers every other
//! node's next request with the reason before it returns.

use crate::network::{NetworkOptions, NetworkResult, NodeReport};
use crate::plan::NodePlan;
use crate::transport::Net;
use crate::wire::{codec, decode, encode, Call, Hello, Reply, Request, Welcome, HELLO_LIMIT};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_util::codec::Framed;

pub struct HubConfig {
    pub cluster: String,
    pub token: String,
    pub max_frame: usize,
    /// The digest of the program the hub compiled (`wire::digest`).
    pub program: u64,
    /// How long a node that lost its connection may take to reconnect.
    pub grace: Duration,
}

/// What the launcher saw happen to a node process.
#[derive(Debug, Clone)]
pub struct Exited {
    pub node: String,
    /// The exit status in words (`exit status: 1`, `signal: 9 (SIGKILL)`).
    pub status: String,
    pub success: bool,
}

/// A log line from the hub (a refused connection, a closed one).
pub type Log = Arc<dyn Fn(String) + Send + Sync>;

/// How many connections may be waiting for their hello at once.
pub const PENDING_LIMIT: usize = 64;

/// How many refusals the hub logs in one second; it counts the rest and says how many.
pub const LOG_BURST: u32 = 5;

/// Logs refusals at most [`LOG_BURST`] a second.
struct Throttle {
    window: Instant,
    logged: u32,
    dropped: u64,
}

impl Throttle {
    /// Whether a refusal may be logged now; the line to log first about those that were not.
    fn admit(&mut self) -> (bool, Option<String>) {
        let mut note = None;
        if self.window.elapsed() >= Duration::from_secs(1) {
            if self.dropped > 0 {
                note = Some(format!("hub: {} more refused connections were not logged", self.dropped));
            }
            *self = Throttle { window: Instant::now(), logged: 0, dropped: 0 };
        }
        if self.logged < LOG_BURST {
            self.logged += 1;
            (true, note)
        } else {
            self.dropped += 1;
            (false, note)
        }
    }
}

struct Slot {
    name: String,
    /// The session of the process admitted as this node (see `Hello::session`).
    session: Option<u64>,
    /// The last request done and its encoded reply, sent again if the request is resent.
    last: Option<(u64, Bytes)>,
    report: Option<NodeReport>,
    /// The connection now serving the node, and when it lost its connection (unfinished).
    generation: u64,
    lost_at: Option<Instant>,
    /// Whether a connection of the node is open.
    open: bool,
    /// Held while one of the node's requests is looked up, done and recorded, so a request
    /// resent on a new connection never runs beside its first sending.
    gate: Arc<tokio::sync::Mutex<()>>,
}

struct Hub {
    net: Arc<Net>,
    config: HubConfig,
    options: NetworkOptions,
    slots: Mutex<Vec<Slot>>,
    failure: Mutex<Option<String>>,
    log: Log,
    throttle: Mutex<Throttle>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Hub {
    fn fail(&self, reason: String) {
        let mut f = lock(&self.failure);
        if f.is_none() {
            (self.log)(format!("hub: stopping the run: {reason}"));
            *f = Some(reason);
            // Wake every waiting node: from now on each request is answered with `Abort`.
            for me in 0..lock(&self.slots).len() {
                self.net.stop(me, 0);
            }
        }
    }

    /// Logs a refusal, unless too many were logged this second.
    fn refusal(&self, line: String) {
        let (now, note) = lock(&self.throttle).admit();
        if let Some(note) = note {
            (self.log)(note);
        }
        if now {
            (self.log)(line);
        }
    }

    fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    fn name(&self, me: usize) -> String {
        lock(&self.slots).get(me).map_or_else(|| format!("#{me}"), |s| s.name.clone())
    }

    /// Checks a hello; returns the node's number.
    fn admit(&self, hello: &Hello) -> Result<usize, String> {
        if hello.cluster != self.config.cluster {
            // The answer does not say which cluster this is: a stranger learns nothing.
            return Err("it names another cluster".to_string());
        }
        if hello.token != self.config.token {
            return Err("bad token".to_string());
        }
        if hello.program != self.config.program {
            return Err(format!("node `{}` compiled a different program or parameters", hello.node));
        }
        let mut slots = lock(&self.slots);
        let Some(me) = slots.iter().position(|s| s.name == hello.node) else {
            return Err(format!("unknown node `{}`: the plan has no such node", hello.node));
        };
        // A node that finished may still reconnect, to hear the answer to its report.
        if let Some(s) = slots.get_mut(me) {
            if s.session.is_some_and(|x| x != hello.session) {
                return Err(format!(
                    "node `{}` is already run by another process (a node cannot be restarted or run twice in one run)",
                    hello.node
                ));
            }
            s.session = Some(hello.session);
            s.generation += 1;
            s.lost_at = None;
            s.open = true;
        }
        Ok(me)
    }

    /// The connection of generation `generation` of node `me` ended.
    fn lost(&self, me: usize, generation: u64) {
        let mut slots = lock(&self.slots);
        if let Some(s) = slots.get_mut(me).filter(|s| s.generation == generation) {
            s.open = false;
            if s.report.is_none() {
                s.lost_at = Some(Instant::now());
            }
        }
    }

    async fn execute(self: &Arc<Self>, me: usize, call: Call) -> Reply {
        if let Some(reason) = self.failure() {
            if !matches!(call, Call::Done(_) | Call::Failed(_)) {
                return Reply::Abort(reason);
            }
        }
        match call {
            Call::Take { settled } => {
                let (inbox, batch) = self.net.take(me, settled);
                Reply::Taken(inbox, batch)
            }
            Call::Send(messages) => {
                self.net.send(messages);
                Reply::Sent
            }
            Call::Wait => {
                let hub = self.clone();
                match tokio::task::spawn_blocking(move || hub.net.wait(me)).await {
                    // A failure wakes every waiting node: it is told why, not that the run is
                    // over.
                    Ok(_) if self.failure().is_some() => Reply::Abort(self.failure().unwrap_or_default()),
                    Ok(done) => Reply::Waited(done),
                    Err(e) => Reply::Abort(format!("internal error while waiting: {e}")),
                }
            }
            Call::Stop { taken } => {
                self.net.stop(me, taken);
                Reply::Stopped
            }
            Call::Done(report) => {
                if let Some(s) = lock(&self.slots).get_mut(me) {
                    s.report = Some(*report);
                    s.lost_at = None;
                }
                Reply::Ack
            }
            Call::Failed(e) => {
                self.fail(format!("node `{}` failed: {e}", self.name(me)));
                Reply::Ack
            }
        }
    }

    /// Serves one connection until it ends; `pending` is its place among the connections
    /// waiting for their hello, given up once the hello is answered.
    async fn connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        pending: tokio::sync::OwnedSemaphorePermit,
    ) {
        let max = self.config.max_frame;
        let first_max = HELLO_LIMIT.min(max);
        let mut framed = Framed::new(stream, codec(first_max));
        let first = tokio::time::timeout(Duration::from_secs(10), framed.next()).await;
        let hello: Result<Hello, String> = match first {
            Err(_) => Err("no hello within 10 s".to_string()),
            Ok(None) => Err("closed before its hello".to_string()),
            Ok(Some(Err(e))) => Err(format!("bad first frame (a hello has at most {first_max} bytes): {e}")),
            Ok(Some(Ok(body))) => decode(&body, first_max),
        };
        let admitted = hello.and_then(|h| self.admit(&h).map(|me| (me, h)));
        drop(pending);
        framed.codec_mut().set_max_frame_length(max);
        let (me, generation) = match admitted {
            Ok((me, _)) => {
                let welcome = Welcome::Accepted { me, max_ticks: self.options.max_ticks };
                let generation = lock(&self.slots).get(me).map_or(0, |s| s.generation);
                let sent = match encode(&welcome, max) {
                    Ok(b) => framed.send(b).await.is_ok(),
                    Err(_) => false,
                };
                if !sent {
                    self.lost(me, generation);
                    return;
                }
                (me, generation)
            }
            Err(reason) => {
                self.refusal(format!("hub: refused a connection from {peer}: {reason}"));
                if let Ok(b) = encode(&Welcome::Refused(reason), max) {
                    let _ = framed.send(b).await;
                }
                return;
            }
        };
        let name = self.name(me);
        loop {
            let body = match framed.next().await {
                None => {
                    self.lost(me, generation);
                    return;
                }
                Some(Err(e)) => {
                    (self.log)(format!("hub: closed the connection of node `{name}` ({peer}): {e}"));
                    self.lost(me, generation);
                    return;
                }
                Some(Ok(body)) => body,
            };
            let request: Request = match decode(&body, max) {
                Ok(r) => r,
                Err(e) => {
                    (self.log)(format!("hub: closed the connection of node `{name}` ({peer}): {e}"));
                    self.lost(me, generation);
                    return;
                }
            };
            let Some(gate) = lock(&self.slots).get(me).map(|s| s.gate.clone()) else { return };
            let _turn = gate.lock().await;
            // A newer connection of the node took over: this one's requests are stale.
            if lock(&self.slots).get(me).is_none_or(|s| s.generation != generation) {
                return;
            }
            let cached = lock(&self.slots)
                .get(me)
                .and_then(|s| s.last.as_ref().filter(|(seq, _)| *seq == request.seq).map(|(_, b)| b.clone()));
            let reply = match cached {
                Some(b) => b,
                None => {
                    let reply = self.execute(me, request.call).await;
                    let Ok(b) = encode(&reply, max) else {
                        self.fail(format!("the reply to node `{name}` exceeds the frame limit of {max} bytes"));
                        return;
                    };
                    if let Some(s) = lock(&self.slots).get_mut(me) {
                        s.last = Some((request.seq, b.clone()));
                    }
                    b
                }
            };
            if framed.send(reply).await.is_err() {
                self.lost(me, generation);
                return;
            }
        }
    }
}

/// Accepts connections until the task is aborted. At most [`PENDING_LIMIT`] of them may wait
/// for their hello; a failed `accept` is logged and retried after a pause that doubles up to
/// a second, so a passing shortage of file descriptors does not stop the hub listening.
async fn accept(hub: Arc<Hub>, listener: tokio::net::TcpListener) {
    let pending = Arc::new(tokio::sync::Semaphore::new(PENDING_LIMIT));
    let mut pause = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                pause = Duration::from_millis(10);
                match pending.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tokio::spawn(hub.clone().connection(stream, peer, permit));
                    }
                    Err(_) => hub.refusal(format!(
                        "hub: refused a connection from {peer}: {PENDING_LIMIT} connections are already waiting for their hello"
                    )),
                }
            }
            Err(e) => {
                (hub.log)(format!("hub: cannot accept a connection ({e}); trying again in {pause:?}"));
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Serves the network of `plans` on `listener` until every node reported (the run's
/// result) or the run failed. `exits` brings what the launcher saw of its node processes.
pub fn serve(
    listener: std::net::TcpListener,
    config: HubConfig,
    plans: &[NodePlan],
    p: &bloomc_compiler::ir::Program,
    options: &NetworkOptions,
    exits: std::sync::mpsc::Receiver<Exited>,
    log: Log,
) -> Result<NetworkResult, String> {
    let start = Instant::now();
    let resolved = crate::network::resolve(p, plans);
    let net = Arc::new(Net::new(plans.len(), &resolved.sequenced));
    let slots = plans
        .iter()
        .map(|x| Slot {
            name: x.node_name.clone(),
            session: None,
            last: None,
            report: None,
            generation: 0,
            lost_at: None,
            open: false,
            gate: Arc::new(tokio::sync::Mutex::new(())),
        })
        .collect();
    let grace = config.grace;
    let hub = Arc::new(Hub {
        net: net.clone(),
        config,
        options: options.clone(),
        slots: Mutex::new(slots),
        failure: Mutex::new(None),
        log,
        throttle: Mutex::new(Throttle { window: Instant::now(), logged: 0, dropped: 0 }),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the hub's runtime: {e}"))?;
    rt.block_on(async {
        listener.set_nonblocking(true).map_err(|e| format!("hub: {e}"))?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| format!("hub: {e}"))?;
        let acceptor = tokio::spawn(accept(hub.clone(), listener));
        let mut every = tokio::time::interval(Duration::from_millis(20));
        let outcome = loop {
            every.tick().await;
            while let Ok(exit) = exits.try_recv() {
                let reported = lock(&hub.slots).iter().any(|s| s.name == exit.node && s.report.is_some());
                if !exit.success || !reported {
                    hub.fail(format!("node `{}` exited ({}) before the run finished", exit.node, exit.status));
                }
            }
            let lost = lock(&hub.slots)
                .iter()
                .find(|s| s.lost_at.is_some_and(|t| t.elapsed() > grace))
                .map(|s| s.name.clone());
            if let Some(name) = lost {
                hub.fail(format!("node `{name}` lost its connection and did not reconnect within {grace:?}"));
            }
            if let Some(reason) = hub.failure() {
                break Err(reason);
            }
            if lock(&hub.slots).iter().all(|s| s.report.is_some()) {
                break Ok(());
            }
        };
        // Every node reported: they hang up once they heard the answer (a node whose
        // connection dropped reconnects for it). Or the run failed: every node still
        // connected hears why at its next request (a waiting one is woken) and hangs up.
        // Wait for that, a few seconds at most.
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && lock(&hub.slots).iter().any(|s| s.open) {
            every.tick().await;
        }
        acceptor.abort();
        outcome
    })?;
    let mut result = NetworkResult::default();
    for s in lock(&hub.slots).iter_mut() {
        result.nodes.extend(s.report.take());
    }
    let (done, undelivered) = net.outcome();
    result.quiescent = done && result.nodes.iter().all(|r| r.result.quiescent);
    result.undelivered = undelivered;
    result.elapsed_s = start.elapsed().as_secs_f64();
    Ok(result)
}
