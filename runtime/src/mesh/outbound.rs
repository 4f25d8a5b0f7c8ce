//! Sending to one peer: a queue of numbered frames and the task that delivers them over one
//! TCP connection at a time. A frame stays queued until the peer acknowledges it; after a
//! reconnect the peer says which frames it has, and the rest are sent again (the peer drops
//! a frame it already has), so no frame is lost or applied twice. A peer that cannot be
//! reached for `PATIENCE` fails the node.
//!
//! With a link delay, each frame leaves no sooner than that long after it was queued (frames
//! stay in order, and the delays of successive frames overlap, as on a slow link).
//!
//! Fault injection for tests: with `BLOOMC_DROP_CONNECTION_EVERY=N` in the environment, the
//! sender drops its connection after sending every N-th frame, before reading its
//! acknowledgement.

use super::local::Shared;
use crate::admission::{Conn, HELLO_TIME};
use crate::control::DROP_EVERY_VAR;
use crate::wire::{codec, decode, encode, Ack, Hello, PeerWelcome};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_util::codec::Framed;

/// How long a node keeps trying to reach a peer, or waits for every node's address.
pub(super) const PATIENCE: Duration = Duration::from_secs(30);

pub(super) struct Queue {
    seq: AtomicU64,
    tx: UnboundedSender<(u64, Bytes, Instant)>,
    peer: String,
}

impl Queue {
    /// The queue to `link`'s peer (the fault injection is read from the environment).
    pub fn new(rt: &tokio::runtime::Handle, mut link: Link) -> Queue {
        let (tx, rx) = unbounded_channel();
        link.drop_every = std::env::var(DROP_EVERY_VAR).ok().and_then(|v| v.parse().ok()).filter(|n: &u64| *n > 0);
        let peer = link.peer.clone();
        rt.spawn(deliver(link, rx));
        Queue { seq: AtomicU64::new(0), tx, peer }
    }

    /// The number of the next frame.
    pub fn next(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn push(&self, seq: u64, body: Bytes) -> Result<(), String> {
        self.tx.send((seq, body, Instant::now())).map_err(|_| format!("stopped sending to node `{}`", self.peer))
    }
}

pub(super) struct Link {
    pub peer: String,
    pub addr: String,
    pub hello: Hello,
    pub max: usize,
    pub shared: Arc<Shared>,
    pub drop_every: Option<u64>,
    pub delay: Duration,
    /// How long the peer may stay unreachable before the node fails ([`PATIENCE`]).
    pub patience: Duration,
}

impl Link {
    /// Connects and says hello; returns the connection and the last frame the peer has.
    async fn connect(&self) -> Result<(Conn, u64), (bool, String)> {
        let stream = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(&self.addr))
            .await
            .map_err(|_| (false, "connection timed out".to_string()))?
            .map_err(|e| (false, e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut conn = Framed::new(stream, codec(self.max));
        let hello = encode(&self.hello, self.max).map_err(|e| (true, e))?;
        conn.send(hello).await.map_err(|e| (false, e.to_string()))?;
        let body = match tokio::time::timeout(HELLO_TIME, conn.next()).await {
            Ok(Some(Ok(body))) => body,
            Ok(Some(Err(e))) => return Err((false, e.to_string())),
            _ => return Err((false, "no answer to its hello".to_string())),
        };
        match decode::<PeerWelcome>(&body, self.max).map_err(|e| (false, e))? {
            PeerWelcome::Accepted { have } => Ok((conn, have)),
            PeerWelcome::Refused(r) => Err((true, format!("node `{}` refused this node: {r}", self.peer))),
        }
    }
}

/// Delivers the frames `rx` brings, in order, until the node ends.
async fn deliver(link: Link, mut rx: UnboundedReceiver<(u64, Bytes, Instant)>) {
    let mut unacked: VecDeque<(u64, Bytes)> = VecDeque::new();
    let mut failing_since: Option<Instant> = None;
    let mut injected = 0u64;
    let mut closed = false;
    loop {
        if closed && unacked.is_empty() {
            return;
        }
        if let Some(since) = failing_since {
            if since.elapsed() > link.patience {
                link.shared.fail(format!("cannot reach node `{}` at {} for {:?}", link.peer, link.addr, link.patience));
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut conn = match link.connect().await {
            Ok((conn, have)) => {
                // The peer answered: it is reachable again, so an outage that ends later is
                // timed from its own start, not from an earlier one's (a link that sends
                // nothing after a reconnect gets no acknowledgement to clear it).
                failing_since = None;
                while unacked.front().is_some_and(|(s, _)| *s <= have) {
                    unacked.pop_front();
                }
                conn
            }
            Err((true, e)) => {
                link.shared.fail(e);
                return;
            }
            Err((false, _)) => {
                failing_since.get_or_insert_with(Instant::now);
                continue;
            }
        };
        let mut ok = true;
        for (_, body) in &unacked {
            if conn.send(body.clone()).await.is_err() {
                ok = false;
                break;
            }
        }
        while ok {
            tokio::select! {
                next = rx.recv(), if !closed => match next {
                    Some((seq, body, queued)) => {
                        if !link.delay.is_zero() {
                            tokio::time::sleep_until((queued + link.delay).into()).await;
                        }
                        unacked.push_back((seq, body.clone()));
                        ok = conn.send(body).await.is_ok();
                        if link.drop_every.is_some_and(|n| seq.is_multiple_of(n)) && seq > injected {
                            injected = seq;
                            ok = false;
                            eprintln!("fault injection: dropped the connection to node `{}` after frame {seq}", link.peer);
                        }
                    }
                    None => closed = true,
                },
                answer = conn.next() => match answer.map(|b| b.map_err(|e| e.to_string()).and_then(|b| decode::<Ack>(&b, link.max))) {
                    Some(Ok(Ack(have))) => {
                        while unacked.front().is_some_and(|(s, _)| *s <= have) {
                            unacked.pop_front();
                        }
                        failing_since = None;
                    }
                    _ => ok = false,
                },
            }
            if closed && unacked.is_empty() {
                return;
            }
        }
        failing_since.get_or_insert_with(Instant::now);
    }
}

#[cfg(test)]
mod tests {
    use super::{Link, Queue};
    use crate::mesh::local::Shared;
    use crate::wire::{codec, encode, Hello, PeerWelcome};
    use futures_util::{SinkExt, StreamExt};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio_util::codec::Framed;

    /// Accepts one connection on `listener`, welcomes it, holds it for `hold`, then drops it.
    async fn welcome_once(listener: &tokio::net::TcpListener, hold: Duration) {
        let (stream, _) = listener.accept().await.expect("a connection");
        let mut conn = Framed::new(stream, codec(1 << 20));
        let _hello = conn.next().await;
        let welcome = encode(&PeerWelcome::Accepted { have: 0 }, 1 << 20).expect("encodes");
        conn.send(welcome).await.expect("sends");
        tokio::time::sleep(hold).await;
    }

    /// A peer unreachable at first, then back, and later dropping a connection over which
    /// nothing was sent: the link reconnects. It used to time the later drop from the first
    /// outage, and failed the node at once once its patience had passed since then.
    #[test]
    fn an_outage_is_timed_from_its_own_start_not_from_an_earlier_one() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let addr = rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
            l.local_addr().expect("addr")
        });
        let shared = Arc::new(Shared::new(2, None));
        let hello = Hello {
            cluster: "c".into(),
            token: "t".into(),
            node: "a".into(),
            program: 0,
            session: 1,
            listen: String::new(),
        };
        let patience = Duration::from_millis(400);
        let link = Link {
            peer: "b".into(),
            addr: addr.to_string(),
            hello,
            max: 1 << 20,
            shared: shared.clone(),
            drop_every: None,
            delay: Duration::ZERO,
            patience,
        };
        // Nothing listens yet: the outage starts now.
        let _queue = Queue::new(rt.handle(), link);
        let second = rt.block_on(async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let listener = tokio::net::TcpListener::bind(addr).await.expect("binds the same address again");
            // Held past the patience counted from the first outage, then dropped.
            welcome_once(&listener, patience * 2).await;
            tokio::time::timeout(patience, welcome_once(&listener, Duration::from_millis(50))).await.is_ok()
        });
        let failure = shared.lock().failure.clone();
        assert_eq!(failure, None, "the node failed instead of reconnecting");
        assert!(second, "the link did not reconnect after the drop");
    }
}
