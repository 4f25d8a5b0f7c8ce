//! A node in its own process: it reaches the hub's network over TCP (`wire.rs`, `hub.rs`).
//!
//! Each call is one numbered request and its reply. When the connection fails, the node
//! reconnects (with its hello again) and resends the same request; the hub answers a resent
//! request from its record instead of doing it twice, so nothing the hub accepted is lost or
//! applied twice. The node gives up when a request keeps failing for `patience`.
//!
//! Fault injection for tests: with `BLOOMC_DROP_CONNECTION_EVERY=N` in the environment, the
//! node drops its connection after sending every N-th request, before reading the reply.

use crate::network::{run_node, NetworkOptions};
use crate::plan::NodePlan;
use crate::transport::{Inbox, Payload, Transport};
use crate::wire::{codec, decode, encode, Call, Hello, Reply, Request, Welcome};
use bloomc_compiler::ir::{CollectionId, Program};
use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The environment variable of the fault injection (see the module's header).
pub const DROP_EVERY_VAR: &str = "BLOOMC_DROP_CONNECTION_EVERY";

type Conn = Framed<TcpStream, LengthDelimitedCodec>;

struct State {
    rt: tokio::runtime::Runtime,
    conn: Option<Conn>,
    seq: u64,
}

pub struct Remote {
    hub: String,
    hello: Hello,
    max_frame: usize,
    patience: Duration,
    drop_every: Option<u64>,
    state: Mutex<State>,
}

/// Why a connection attempt failed: the hub refused (final) or could not be reached.
enum Failure {
    Refused(String),
    Unreachable(String),
}

impl Remote {
    /// Connects to the hub; returns the node's number and the run's options.
    pub fn connect(
        hub: &str,
        hello: Hello,
        max_frame: usize,
        patience: Duration,
    ) -> Result<(Remote, usize, NetworkOptions), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the node's runtime: {e}"))?;
        let drop_every = std::env::var(DROP_EVERY_VAR).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0);
        let remote = Remote {
            hub: hub.to_string(),
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
                Err(Failure::Refused(r)) => return Err(format!("the hub at {hub} refused this node: {r}")),
                Err(Failure::Unreachable(e)) if Instant::now() > deadline => {
                    return Err(format!("cannot reach the hub at {hub} within {patience:?}: {e}"))
                }
                Err(Failure::Unreachable(_)) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        state.conn = Some(conn);
        drop(state);
        let (me, options) = welcome;
        Ok((remote, me, options))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn handshake(&self, rt: &tokio::runtime::Runtime) -> Result<(Conn, (usize, NetworkOptions)), Failure> {
        let max = self.max_frame;
        rt.block_on(async {
            let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&self.hub))
                .await
                .map_err(|_| Failure::Unreachable("connection timed out".to_string()))?
                .map_err(|e| Failure::Unreachable(e.to_string()))?;
            let mut conn = Framed::new(stream, codec(max));
            let hello = encode(&self.hello, max).map_err(Failure::Refused)?;
            conn.send(hello).await.map_err(|e| Failure::Unreachable(e.to_string()))?;
            let body = match tokio::time::timeout(Duration::from_secs(10), conn.next()).await {
                Ok(Some(Ok(body))) => body,
                Ok(Some(Err(e))) => return Err(Failure::Unreachable(e.to_string())),
                _ => return Err(Failure::Unreachable("no welcome from the hub".to_string())),
            };
            match decode::<Welcome>(&body, max).map_err(Failure::Refused)? {
                Welcome::Accepted { me, max_ticks } => Ok((conn, (me, NetworkOptions { max_ticks }))),
                Welcome::Refused(r) => Err(Failure::Refused(r)),
            }
        })
    }

    /// One request and its reply, resent over a new connection until it is answered.
    fn call(&self, call: Call) -> Result<Reply, String> {
        let mut state = self.lock();
        state.seq += 1;
        let seq = state.seq;
        let request = encode(&Request { seq, call }, self.max_frame)?;
        let inject = self.drop_every.is_some_and(|n| seq.is_multiple_of(n));
        let mut attempt = 0u32;
        // Since when this request has been failing: every failure, of a connection or of the
        // request over a new one (a hub that keeps closing it), counts against the patience,
        // and every retry but the first waits a little.
        let mut failing_since: Option<Instant> = None;
        let mut failed = |e: String| -> Result<(), String> {
            match failing_since {
                None => failing_since = Some(Instant::now()),
                Some(since) if since.elapsed() > self.patience => {
                    return Err(format!("lost the hub at {} for {:?}: {e}", self.hub, self.patience));
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
                    Err(Failure::Refused(r)) => return Err(format!("the hub refused this node on reconnect: {r}")),
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
                    None => Err("the hub closed the connection".to_string()),
                }
            });
            match answer {
                Ok(Reply::Abort(reason)) => return Err(format!("the hub stopped the run: {reason}")),
                Ok(reply) => return Ok(reply),
                Err(e) => {
                    *conn = None;
                    failed(e)?;
                }
            }
        }
    }
}

fn unexpected(reply: &Reply) -> String {
    format!("unexpected reply from the hub: {reply:?}")
}

impl Transport for Remote {
    fn take(&self, _me: usize, settled: bool) -> Result<(Inbox, bool), String> {
        match self.call(Call::Take { settled })? {
            Reply::Taken(inbox, batch) => Ok((inbox, batch)),
            r => Err(unexpected(&r)),
        }
    }
    fn send(&self, messages: Vec<(usize, CollectionId, Payload)>) -> Result<(), String> {
        match self.call(Call::Send(messages))? {
            Reply::Sent => Ok(()),
            r => Err(unexpected(&r)),
        }
    }
    fn wait(&self, _me: usize) -> Result<bool, String> {
        match self.call(Call::Wait)? {
            Reply::Waited(done) => Ok(done),
            r => Err(unexpected(&r)),
        }
    }
    fn stop(&self, _me: usize, taken: u64) -> Result<(), String> {
        match self.call(Call::Stop { taken })? {
            Reply::Stopped => Ok(()),
            r => Err(unexpected(&r)),
        }
    }
}

/// Runs the node `hello.node` of `plans` in this process, connected to the hub at `hub`, and sends the
/// hub its report.
pub fn node_process(p: Program, plans: Vec<NodePlan>, hub: &str, hello: Hello, max_frame: usize) -> Result<(), String> {
    let name = hello.node.clone();
    let local = plans.iter().position(|x| x.node_name == name);
    let Some(local) = local else {
        let names: Vec<&str> = plans.iter().map(|x| x.node_name.as_str()).collect();
        return Err(format!("the program has no node `{name}`; its nodes are {}", names.join(", ")));
    };
    let (remote, me, options) = Remote::connect(hub, hello, max_frame, Duration::from_secs(30))?;
    if me != local {
        return Err(format!("the hub numbers node `{name}` {me}, and this program numbers it {local}"));
    }
    let remote = Arc::new(remote);
    match run_node(p, plans, me, remote.clone(), &options) {
        Ok(report) => match remote.call(Call::Done(Box::new(report)))? {
            Reply::Ack => Ok(()),
            r => Err(unexpected(&r)),
        },
        Err(e) => {
            // The hub learns why (unless it is the hub that is gone).
            let _ = remote.call(Call::Failed(e.clone()));
            Err(e)
        }
    }
}
