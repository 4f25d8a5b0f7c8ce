//! A node's data listener: it admits the other nodes of the run (the same checks as the
//! coordinator's: cluster, token, program digest, a node of the plan, one session per
//! sender; the same limits for connections not yet admitted, `admission.rs`) and applies
//! the frames they send, each once, acknowledging every frame.

use super::local::Shared;
use crate::admission::{accept, hello, Conn, Gate};
use crate::wire::{decode, encode, Ack, DataFrame, Hello, PeerWelcome};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) struct Inbound {
    /// This node's own hello: the cluster, token and program a peer must present.
    pub hello: Hello,
    pub names: Vec<String>,
    pub max_frame: usize,
    pub shared: Arc<Shared>,
    pub gate: Arc<Gate>,
}

impl Inbound {
    /// Starts accepting on `listener`; the task ends with the runtime.
    pub fn start(self, rt: &tokio::runtime::Runtime, listener: std::net::TcpListener) -> Result<(), String> {
        listener.set_nonblocking(true).map_err(|e| format!("node {}: {e}", self.hello.node))?;
        let this = Arc::new(self);
        let gate = this.gate.clone();
        let _guard = rt.enter();
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|e| format!("node {}: {e}", this.hello.node))?;
        rt.spawn(accept(listener, gate, move |stream, peer, permit| {
            let this = this.clone();
            async move {
                let (framed, hello) = hello(stream, this.max_frame).await;
                let admitted = hello.and_then(|h| this.admit(&h));
                drop(permit);
                this.serve(framed, peer, admitted).await;
            }
        }));
        Ok(())
    }

    /// Checks a peer's hello; returns its node number.
    fn admit(&self, h: &Hello) -> Result<usize, String> {
        if h.cluster != self.hello.cluster {
            return Err("it names another cluster".to_string());
        }
        if h.token != self.hello.token {
            return Err("bad token".to_string());
        }
        if h.program != self.hello.program {
            return Err(format!("node `{}` compiled a different program or parameters", h.node));
        }
        let Some(from) = self.names.iter().position(|n| *n == h.node) else {
            return Err(format!("unknown node `{}`: the plan has no such node", h.node));
        };
        let mut l = self.shared.lock();
        let Some(session) = l.sessions.get_mut(from) else { return Err("internal error: no such sender".to_string()) };
        // A new session is the node's process restarted (the coordinator admits one process
        // per node at a time): its frames go on from the numbers this node already has.
        if session.is_some_and(|s| s != h.session) {
            self.gate.say(format!("node `{}` came back with a new process (restarted)", h.node));
        }
        *session = Some(h.session);
        Ok(from)
    }

    async fn serve(&self, mut framed: Conn, peer: SocketAddr, admitted: Result<usize, String>) {
        let max = self.max_frame;
        let from = match admitted {
            Ok(from) => from,
            Err(reason) => {
                self.gate.refusal(format!("refused a connection from {peer}: {reason}"));
                if let Ok(b) = encode(&PeerWelcome::Refused(reason), max) {
                    let _ = framed.send(b).await;
                }
                return;
            }
        };
        let have = self.shared.lock().have.get(from).copied().unwrap_or(0);
        let Ok(welcome) = encode(&PeerWelcome::Accepted { have }, max) else { return };
        if framed.send(welcome).await.is_err() {
            return;
        }
        let name = self.names.get(from).cloned().unwrap_or_default();
        while let Some(body) = framed.next().await {
            let frame: Result<DataFrame, String> = body.map_err(|e| e.to_string()).and_then(|b| decode(&b, max));
            let have = match frame.map(|f| (f.seq, self.shared.deliver(from, f))) {
                Ok((_, Some(have))) => have,
                Ok((seq, None)) => {
                    self.gate
                        .say(format!("closed the connection of node `{name}` ({peer}): frame {seq} skips a number"));
                    return;
                }
                Err(e) => {
                    self.gate.say(format!("closed the connection of node `{name}` ({peer}): {e}"));
                    return;
                }
            };
            let Ok(ack) = encode(&Ack(have), max) else { return };
            if framed.send(ack).await.is_err() {
                return;
            }
        }
    }
}
