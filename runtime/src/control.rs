//! A node process's control connection to the coordinator (`wire.rs`, `coordinator.rs`),
//! and its connection to the embedded ordering service (`order/sequencer.rs`), which works
//! the same way.
//!
//! Each call is one numbered request and its reply. When the connection fails, the node
//! reconnects (with its hello again) and resends the same request; the coordinator answers a
//! resent request from its record instead of doing it twice, so nothing is lost or applied
//! twice. The node gives up when a request keeps failing for `patience`. No call carries
//! facts: those go straight to the node they are for (`mesh/`).
//!
//! Fault injection for tests: with `BLOOMC_DROP_CONNECTION_EVERY=N` in the environment, the
//! node drops its connection after sending every N-th request, before reading the reply.

use crate::network::NetworkOptions;
use crate::order::{BatchId, OrderService};
use crate::wire::{codec, decode, encode, Call, Hello, OrderAt, Reply, Request, Welcome};
use futures_util::{SinkExt, StreamExt};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The environment variable of the fault injection (see the module's header; the data
/// connections honour it too, `mesh/outbound.rs`).
pub const DROP_EVERY_VAR: &str = "BLOOMC_DROP_CONNECTION_EVERY";

type Conn = Framed<TcpStream, LengthDelimitedCodec>;

struct State {
    rt: tokio::runtime::Runtime,
    conn: Option<Conn>,
    seq: u64,
}

pub struct Remote {
    /// Who serves the connection, for messages: `coordinator` or `ordering service`.
    who: &'static str,
    coordinator: String,
    hello: Hello,
    max_frame: usize,
    patience: Duration,
    drop_every: Option<u64>,
    state: Mutex<State>,
}

/// Why a connection attempt failed: the coordinator refused (final) or could not be reached.
enum Failure {
    Refused(String),
    Unreachable(String),
}

/// What the coordinator told a node it admitted.
pub struct Joined {
    /// The node's number in the plan.
    pub me: usize,
    pub options: NetworkOptions,
    /// Where the run's ordering service is.
    pub order: OrderAt,
    /// The run's random name.
    pub run: u64,
}

impl Remote {
    /// Connects to the coordinator; returns what it said of the node and the run.
    pub fn connect(
        coordinator: &str,
        hello: Hello,
        max_frame: usize,
        patience: Duration,
    ) -> Result<(Remote, Joined), String> {
        let (remote, joined) = Self::open("coordinator", coordinator, hello, max_frame, patience)?;
        let joined = joined.ok_or_else(|| format!("{coordinator} is an ordering service, not the coordinator"))?;
        Ok((remote, joined))
    }

    /// Connects to the embedded ordering service at `addr`.
    pub fn sequencer(addr: &str, hello: Hello, max_frame: usize, patience: Duration) -> Result<Remote, String> {
        match Self::open("ordering service", addr, hello, max_frame, patience)? {
            (remote, None) => Ok(remote),
            (_, Some(_)) => Err(format!("{addr} is the coordinator, not the ordering service")),
        }
    }

    /// Connects to `who` at `addr`: what it said of the node and the run, if it is the
    /// coordinator.
    fn open(
        who: &'static str,
        coordinator: &str,
        hello: Hello,
        max_frame: usize,
        patience: Duration,
    ) -> Result<(Remote, Option<Joined>), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the node's runtime: {e}"))?;
        let drop_every = std::env::var(DROP_EVERY_VAR).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0);
        let remote = Remote {
            who,
            coordinator: coordinator.to_string(),
            hello,
            max_frame,
            patience,
            drop_every,
            state: Mutex::new(State { rt, conn: None, seq: 0 }),
        };
        let deadline = Instant::now() + patience;
        let mut state = remote.lock();
        let (conn, welcome) = loop {
            match remote.handshake(&state.rt) {
                Ok(x) => break x,
                Err(Failure::Refused(r)) => return Err(format!("the {who} at {coordinator} refused this node: {r}")),
                Err(Failure::Unreachable(e)) if Instant::now() > deadline => {
                    return Err(format!("cannot reach the {who} at {coordinator} within {patience:?}: {e}"))
                }
                Err(Failure::Unreachable(_)) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        state.conn = Some(conn);
        drop(state);
        Ok((remote, welcome))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn handshake(&self, rt: &tokio::runtime::Runtime) -> Result<(Conn, Option<Joined>), Failure> {
        let max = self.max_frame;
        rt.block_on(async {
            let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&self.coordinator))
                .await
                .map_err(|_| Failure::Unreachable("connection timed out".to_string()))?
                .map_err(|e| Failure::Unreachable(e.to_string()))?;
            let mut conn = Framed::new(stream, codec(max));
            let hello = encode(&self.hello, max).map_err(Failure::Refused)?;
            conn.send(hello).await.map_err(|e| Failure::Unreachable(e.to_string()))?;
            let body = match tokio::time::timeout(Duration::from_secs(10), conn.next()).await {
                Ok(Some(Ok(body))) => body,
                Ok(Some(Err(e))) => return Err(Failure::Unreachable(e.to_string())),
                _ => return Err(Failure::Unreachable(format!("no welcome from the {}", self.who))),
            };
            match decode::<Welcome>(&body, max).map_err(Failure::Refused)? {
                Welcome::Accepted { me, max_ticks, order, run } => {
                    Ok((conn, Some(Joined { me, options: NetworkOptions { max_ticks }, order, run })))
                }
                Welcome::Sequencing => Ok((conn, None)),
                Welcome::Refused(r) => Err(Failure::Refused(r)),
            }
        })
    }

    /// One request and its reply, resent over a new connection until it is answered.
    pub(crate) fn call(&self, call: Call) -> Result<Reply, String> {
        let mut state = self.lock();
        state.seq += 1;
        let seq = state.seq;
        let request = encode(&Request { seq, call }, self.max_frame)?;
        let inject = self.drop_every.is_some_and(|n| seq.is_multiple_of(n));
        let mut attempt = 0u32;
        // Since when this request has been failing: every failure, of a connection or of the
        // request over a new one (a coordinator that keeps closing it), counts against the patience,
        // and every retry but the first waits a little.
        let mut failing_since: Option<Instant> = None;
        let mut failed = |e: String| -> Result<(), String> {
            match failing_since {
                None => failing_since = Some(Instant::now()),
                Some(since) if since.elapsed() > self.patience => {
                    return Err(format!("lost the {} at {} for {:?}: {e}", self.who, self.coordinator, self.patience));
                }
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
            Ok(())
        };
        loop {
            attempt += 1;
            if state.conn.is_none() {
                match self.handshake(&state.rt) {
                    Ok((conn, _)) => state.conn = Some(conn),
                    Err(Failure::Refused(r)) => {
                        return Err(format!("the {} refused this node on reconnect: {r}", self.who))
                    }
                    Err(Failure::Unreachable(e)) => {
                        failed(e)?;
                        continue;
                    }
                }
            }
            let State { rt, conn, .. } = &mut *state;
            let Some(c) = conn.as_mut() else { continue };
            let max = self.max_frame;
            let answer: Result<Reply, String> = rt.block_on(async {
                c.send(request.clone()).await.map_err(|e| e.to_string())?;
                if inject && attempt == 1 {
                    return Err("connection dropped on purpose (fault injection)".to_string());
                }
                match c.next().await {
                    Some(Ok(body)) => decode(&body, max),
                    Some(Err(e)) => Err(e.to_string()),
                    None => Err(format!("the {} closed the connection", self.who)),
                }
            });
            match answer {
                Ok(Reply::Abort(reason)) => return Err(format!("the {} stopped the run: {reason}", self.who)),
                Ok(reply) => return Ok(reply),
                Err(e) => {
                    *conn = None;
                    failed(e)?;
                }
            }
        }
    }
}

/// An answer the coordinator should not have given to `call`.
pub(crate) fn unexpected(reply: &Reply) -> String {
    format!("unexpected reply from the coordinator: {reply:?}")
}

/// The embedded ordering service, reached over its own connection.
pub(crate) struct Embedded(pub(crate) Remote);

impl OrderService for Embedded {
    fn position(&mut self, group: &str, batch: BatchId) -> Result<u64, String> {
        match self.0.call(Call::Position { group: group.to_string(), batch })? {
            Reply::Position(n) => Ok(n),
            r => Err(format!("unexpected reply from the ordering service: {r:?}")),
        }
    }
}
