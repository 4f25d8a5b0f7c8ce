//! The coordinator of a network run across processes: the control plane. It admits each
//! node process (cluster, token, program digest, one session per node), tells every node the
//! others' data addresses and where the ordering service is, detects the end of the run,
//! collects the nodes' reports and stops the run when a node fails. It never sees a fact:
//! nodes send facts straight to each other (`mesh/`), and no control request carries any.
//!
//! **The end of the run** is Mattern's four-counter method. An idle node reports its
//! counters (data frames sent and received, ticks run) with the last round number it heard
//! of; it reports again every few milliseconds while idle. The coordinator collects rounds: a
//! report counts in round `r` only if the node read its counters after it heard that round
//! `r` began, and round `r` ends once every node has reported in it. When round `r`'s
//! counters equal round `r - 1`'s, node by node, and the frames sent equal the frames
//! received in total, the run is over. Proof sketch: every counter of round `r - 1` was read
//! before round `r` began and every counter of round `r` after, so some instant `t` lies
//! between each node's two readings. A node whose counters did not change between them ran no
//! tick, sent nothing and received nothing in between, so at `t` it was idle with those
//! counters. At `t`, then, every node was idle and the frames sent in total equal the frames
//! received: since a frame is received at most once, after it was sent, none was in flight.
//! Idle nodes with nothing in flight stay idle, so the run was over at `t`.
//!
//! Admission limits (`admission.rs`): a stranger can make the coordinator hold at most
//! `PENDING_LIMIT` × `HELLO_LIMIT` bytes. A frame that is too long or does not decode closes
//! its connection (logged); the node may reconnect. A node that loses its connection has
//! `grace` to come back; a node process that exits before it reported (the launcher sends
//! [`Exited`]) fails the run, and every other node hears why at its next request.

use crate::admission::{accept, hello, Gate, Log};
use crate::network::NetworkOptions;
use crate::plan::NodePlan;
use crate::report::{NetworkResult, NodeReport};
use crate::wire::{decode, encode, Call, Counters, Hello, OrderAt, Reply, Request, Welcome};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub struct CoordinatorConfig {
    pub cluster: String,
    pub token: String,
    pub max_frame: usize,
    /// The digest of the program the coordinator compiled (`wire::digest`).
    pub program: u64,
    /// How long a node that lost its connection may take to reconnect.
    pub grace: Duration,
    /// Where the nodes find the ordering service.
    pub order: OrderAt,
    /// A random number naming this run (its order's root in ZooKeeper).
    pub run: u64,
    /// Whether a node may come back with a new process (`--restart`): its previous process
    /// is gone (its connection closed) and it recovers from its journal.
    pub restarts: bool,
}

/// The name under which the launcher reports the embedded ordering service's process
/// (`bloomc sequencer`) in [`Exited`]: no node has it (a node's name has no parentheses).
pub const SEQUENCER: &str = "(sequencer)";

/// What the launcher saw happen to a node process, or to the sequencer's.
#[derive(Debug, Clone)]
pub struct Exited {
    /// The node, or [`SEQUENCER`].
    pub node: String,
    /// The exit status in words (`exit status: 1`, `signal: 9 (SIGKILL)`).
    pub status: String,
    pub success: bool,
    /// The launcher is starting the node again (`--restart`).
    pub restarting: bool,
}

struct Slot {
    name: String,
    /// The session of the process admitted as this node (see `Hello::session`).
    session: Option<u64>,
    /// Where the node listens for data.
    listen: Option<String>,
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

/// The rounds of the four-counter method (see the module's header).
#[derive(Default)]
struct Rounds {
    round: u64,
    previous: Option<Vec<Counters>>,
    current: Vec<Option<Counters>>,
    over: bool,
}

impl Rounds {
    /// Node `me` is idle with counters `c`: whether the run is over, and the round now.
    fn idle(&mut self, me: usize, c: Counters) -> (bool, u64) {
        if self.over || c.round < self.round {
            return (self.over, self.round);
        }
        if let Some(x) = self.current.get_mut(me) {
            *x = Some(c);
        }
        let Some(now): Option<Vec<Counters>> = self.current.iter().copied().collect() else {
            return (false, self.round);
        };
        let same = |a: &Counters, b: &Counters| (a.sent, a.received, a.ticks) == (b.sent, b.received, b.ticks);
        let balanced = now.iter().map(|c| c.sent).sum::<u64>() == now.iter().map(|c| c.received).sum::<u64>();
        let steady =
            self.previous.as_ref().is_some_and(|p| p.len() == now.len() && p.iter().zip(&now).all(|(a, b)| same(a, b)));
        if balanced && steady {
            self.over = true;
        } else {
            self.previous = Some(now);
            self.current.iter_mut().for_each(|x| *x = None);
            self.round += 1;
        }
        (self.over, self.round)
    }
}

struct Coordinator {
    config: CoordinatorConfig,
    options: NetworkOptions,
    slots: Mutex<Vec<Slot>>,
    rounds: Mutex<Rounds>,
    failure: Mutex<Option<String>>,
    gate: Arc<Gate>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Coordinator {
    fn fail(&self, reason: String) {
        let mut f = lock(&self.failure);
        if f.is_none() {
            self.gate.say(format!("stopping the run: {reason}"));
            *f = Some(reason);
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
        if hello.listen.parse::<SocketAddr>().is_err() {
            return Err(format!("node `{}` gave no data address it listens on (`{}`)", hello.node, hello.listen));
        }
        let mut slots = lock(&self.slots);
        let Some(me) = slots.iter().position(|s| s.name == hello.node) else {
            return Err(format!("unknown node `{}`: the plan has no such node", hello.node));
        };
        // A node that finished may still reconnect, to hear the answer to its report.
        if let Some(s) = slots.get_mut(me) {
            if s.session.is_some_and(|x| x != hello.session) {
                if !self.config.restarts || s.open {
                    return Err(format!(
                        "node `{}` is already run by another process (a node may come back only with `--restart`, once its process is gone)",
                        hello.node
                    ));
                }
                // The node's new process: its requests are numbered afresh.
                s.last = None;
                self.gate.say(format!("node `{}` came back with a new process", hello.node));
            }
            s.session = Some(hello.session);
            s.listen = Some(hello.listen.clone());
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

    fn execute(&self, me: usize, call: Call) -> Reply {
        if let Some(reason) = self.failure() {
            if !matches!(call, Call::Done(_) | Call::Failed(_)) {
                return Reply::Abort(reason);
            }
        }
        match call {
            Call::Peers => {
                let slots = lock(&self.slots);
                match slots.iter().map(|s| s.listen.clone()).collect::<Option<Vec<String>>>() {
                    Some(all) => Reply::Peers(all),
                    None => Reply::NotYet,
                }
            }
            // Positions come from the ordering service, which the welcome named.
            Call::Position { .. } => {
                Reply::Abort("the coordinator gives no positions: ask the ordering service".to_string())
            }
            Call::Idle(counters) => {
                let (over, round) = lock(&self.rounds).idle(me, counters);
                Reply::Idle { over, round }
            }
            Call::Ping => Reply::Ack,
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
        let (mut framed, hello) = hello(stream, max).await;
        let admitted = hello.and_then(|h| self.admit(&h));
        drop(pending);
        let (me, generation) = match admitted {
            Ok(me) => {
                let welcome = Welcome::Accepted {
                    me,
                    max_ticks: self.options.max_ticks,
                    order: self.config.order.clone(),
                    run: self.config.run,
                };
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
                self.gate.refusal(format!("refused a connection from {peer}: {reason}"));
                if let Ok(b) = encode(&Welcome::Refused(reason), max) {
                    let _ = framed.send(b).await;
                }
                return;
            }
        };
        let name = self.name(me);
        loop {
            let request: Result<Request, String> = match framed.next().await {
                None => Err(String::new()),
                Some(Err(e)) => Err(e.to_string()),
                Some(Ok(body)) => decode(&body, max),
            };
            let request = match request {
                Ok(r) => r,
                Err(e) => {
                    if !e.is_empty() {
                        self.gate.say(format!("closed the connection of node `{name}` ({peer}): {e}"));
                    }
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
                    let reply = self.execute(me, request.call);
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

impl Coordinator {
    /// What the launcher saw of the processes: a node that exited to be started again has
    /// `grace` to come back; the sequencer's exit, a node's failure or an exit before its
    /// report, or a node gone longer than `grace`, fails the run.
    fn watch(&self, exits: &std::sync::mpsc::Receiver<Exited>, grace: Duration) {
        while let Ok(exit) = exits.try_recv() {
            let reported = lock(&self.slots).iter().any(|s| s.name == exit.node && s.report.is_some());
            if exit.restarting && !reported {
                // Gone for now: it has `grace` to come back.
                if let Some(s) = lock(&self.slots).iter_mut().find(|s| s.name == exit.node) {
                    s.open = false;
                    s.generation += 1;
                    s.lost_at = Some(Instant::now());
                }
            } else if exit.node == SEQUENCER {
                self.fail(format!(
                    "the ordering service (bloomc sequencer) exited ({}) before the run finished",
                    exit.status
                ));
            } else if !exit.success || !reported {
                self.fail(format!("node `{}` exited ({}) before the run finished", exit.node, exit.status));
            }
        }
        let lost =
            lock(&self.slots).iter().find(|s| s.lost_at.is_some_and(|t| t.elapsed() > grace)).map(|s| s.name.clone());
        if let Some(name) = lost {
            self.fail(format!("node `{name}` lost its connection and did not reconnect within {grace:?}"));
        }
    }
}

/// Coordinates the network of `plans` on `listener` until every node reported (the run's
/// result) or the run failed. `exits` brings what the launcher saw of its node processes.
pub fn serve(
    listener: std::net::TcpListener,
    config: CoordinatorConfig,
    plans: &[NodePlan],
    options: &NetworkOptions,
    exits: std::sync::mpsc::Receiver<Exited>,
    log: Log,
) -> Result<NetworkResult, String> {
    let start = Instant::now();
    let slots = plans
        .iter()
        .map(|x| Slot {
            name: x.node_name.clone(),
            session: None,
            listen: None,
            last: None,
            report: None,
            generation: 0,
            lost_at: None,
            open: false,
            gate: Arc::new(tokio::sync::Mutex::new(())),
        })
        .collect();
    let grace = config.grace;
    let coordinator = Arc::new(Coordinator {
        config,
        options: options.clone(),
        slots: Mutex::new(slots),
        rounds: Mutex::new(Rounds { current: vec![None; plans.len()], ..Rounds::default() }),
        failure: Mutex::new(None),
        gate: Arc::new(Gate::new("coordinator".to_string(), log)),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the coordinator's runtime: {e}"))?;
    rt.block_on(async {
        listener.set_nonblocking(true).map_err(|e| format!("coordinator: {e}"))?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| format!("coordinator: {e}"))?;
        let c = coordinator.clone();
        let acceptor = tokio::spawn(accept(listener, coordinator.gate.clone(), move |stream, peer, permit| {
            c.clone().connection(stream, peer, permit)
        }));
        let mut every = tokio::time::interval(Duration::from_millis(20));
        let outcome = loop {
            every.tick().await;
            coordinator.watch(&exits, grace);
            if let Some(reason) = coordinator.failure() {
                break Err(reason);
            }
            if lock(&coordinator.slots).iter().all(|s| s.report.is_some()) {
                break Ok(());
            }
        };
        // Every node reported: they hang up once they heard the answer (a node whose
        // connection dropped reconnects for it). Or the run failed: every node still
        // connected hears why at its next request and hangs up. Wait for that, a few
        // seconds at most.
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && lock(&coordinator.slots).iter().any(|s| s.open) {
            every.tick().await;
        }
        acceptor.abort();
        outcome
    })?;
    let mut result = NetworkResult::default();
    for s in lock(&coordinator.slots).iter_mut() {
        result.nodes.extend(s.report.take());
    }
    let over = lock(&coordinator.rounds).over;
    result.quiescent = over && result.nodes.iter().all(|r| r.result.quiescent);
    result.undelivered = result.nodes.iter().map(|r| r.undelivered).sum();
    result.elapsed_s = start.elapsed().as_secs_f64();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::{Counters, Rounds};

    fn c(sent: u64, received: u64, round: u64) -> Counters {
        Counters { sent, received, ticks: 1, round }
    }

    #[test]
    fn the_run_is_over_only_after_two_equal_balanced_rounds() {
        let mut r = Rounds { current: vec![None; 2], ..Rounds::default() };
        // Round 0: both idle, balanced, but there is no earlier round to compare with.
        assert_eq!(r.idle(0, c(1, 0, 0)), (false, 0));
        assert_eq!(r.idle(1, c(0, 1, 0)), (false, 1));
        // A report read before the node heard of round 1 does not count in it.
        assert_eq!(r.idle(0, c(1, 0, 0)), (false, 1));
        assert_eq!(r.idle(0, c(1, 0, 1)), (false, 1));
        assert_eq!(r.idle(1, c(0, 1, 1)), (true, 1));
    }

    #[test]
    fn a_frame_in_flight_or_a_changed_counter_keeps_the_run_going() {
        let mut r = Rounds { current: vec![None; 2], ..Rounds::default() };
        r.idle(0, c(2, 0, 0));
        r.idle(1, c(0, 1, 0));
        r.idle(0, c(2, 0, 1));
        // One frame is still in flight: sent 2, received 1.
        assert_eq!(r.idle(1, c(0, 1, 1)), (false, 2));
        r.idle(0, c(2, 0, 2));
        // It arrived: balanced now, but node 1's counter changed since the last round.
        assert_eq!(r.idle(1, c(0, 2, 2)), (false, 3));
        r.idle(0, c(2, 0, 3));
        assert_eq!(r.idle(1, c(0, 2, 3)), (true, 3));
    }
}
