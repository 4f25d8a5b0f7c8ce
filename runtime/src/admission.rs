//! What a listening process of a run across processes (the coordinator, and every node's
//! data listener) holds for connections it has not admitted: a first frame of at most
//! `wire::HELLO_LIMIT` bytes within 10 seconds, at most [`PENDING_LIMIT`] connections waiting
//! for their hello at once (a further one is closed at once), and refusals logged at most
//! [`LOG_BURST`] a second. A failed `accept` (out of file descriptors, say) is logged and
//! retried after a pause that doubles up to a second. So a stranger can make a listener hold
//! at most `PENDING_LIMIT` × `HELLO_LIMIT` bytes, for 10 seconds each.

use crate::wire::{codec, decode, Hello, HELLO_LIMIT};
use futures_util::StreamExt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// A log line (a refused connection, a closed one).
pub type Log = Arc<dyn Fn(String) + Send + Sync>;

/// How many connections may be waiting for their hello at once.
pub const PENDING_LIMIT: usize = 64;

/// How many refusals are logged in one second; the rest are counted and the count logged.
pub const LOG_BURST: u32 = 5;

/// How long a connection may take to send its hello.
pub const HELLO_TIME: Duration = Duration::from_secs(10);

pub type Conn = Framed<TcpStream, LengthDelimitedCodec>;

/// The refusal log of one listener, rate-limited.
pub struct Gate {
    /// Who logs (`coordinator`, `node src[0]`): the lines' prefix.
    pub who: String,
    pub log: Log,
    throttle: Mutex<Throttle>,
}

struct Throttle {
    window: Instant,
    logged: u32,
    dropped: u64,
}

impl Gate {
    pub fn new(who: String, log: Log) -> Gate {
        Gate { who, log, throttle: Mutex::new(Throttle { window: Instant::now(), logged: 0, dropped: 0 }) }
    }

    /// Logs a line, prefixed with who logs.
    pub fn say(&self, line: String) {
        (self.log)(format!("{}: {line}", self.who));
    }

    /// Logs a refusal, unless [`LOG_BURST`] were logged this second already; the next line
    /// logged after a busy second says how many were not.
    pub fn refusal(&self, line: String) {
        let (now, note) = {
            let mut t = self.throttle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut note = None;
            if t.window.elapsed() >= Duration::from_secs(1) {
                if t.dropped > 0 {
                    note = Some(format!("{} more refused connections were not logged", t.dropped));
                }
                *t = Throttle { window: Instant::now(), logged: 0, dropped: 0 };
            }
            let now = t.logged < LOG_BURST;
            if now {
                t.logged += 1;
            } else {
                t.dropped += 1;
            }
            (now, note)
        };
        if let Some(note) = note {
            self.say(note);
        }
        if now {
            self.say(line);
        }
    }
}

/// Reads a connection's hello: its first frame, of at most `HELLO_LIMIT` bytes (or
/// `max_frame`, if smaller), within [`HELLO_TIME`]. Returns the framed connection, its codec
/// now limited to `max_frame`, and the hello or why there is none.
pub async fn hello(stream: TcpStream, max_frame: usize) -> (Conn, Result<Hello, String>) {
    let first_max = HELLO_LIMIT.min(max_frame);
    let mut framed = Framed::new(stream, codec(first_max));
    let first = tokio::time::timeout(HELLO_TIME, framed.next()).await;
    let hello = match first {
        Err(_) => Err(format!("no hello within {} s", HELLO_TIME.as_secs())),
        Ok(None) => Err("closed before its hello".to_string()),
        Ok(Some(Err(e))) => Err(format!("bad first frame (a hello has at most {first_max} bytes): {e}")),
        Ok(Some(Ok(body))) => decode(&body, first_max),
    };
    framed.codec_mut().set_max_frame_length(max_frame);
    (framed, hello)
}

/// Accepts connections until the task is aborted, and hands each to `serve` with its place
/// among the connections waiting for their hello (to give up once the hello is answered).
pub async fn accept<F, Fut>(listener: tokio::net::TcpListener, gate: Arc<Gate>, serve: F)
where
    F: Fn(TcpStream, SocketAddr, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let pending = Arc::new(tokio::sync::Semaphore::new(PENDING_LIMIT));
    let mut pause = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                pause = Duration::from_millis(10);
                match pending.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tokio::spawn(serve(stream, peer, permit));
                    }
                    Err(_) => gate.refusal(format!(
                        "refused a connection from {peer}: {PENDING_LIMIT} connections are already waiting for their hello"
                    )),
                }
            }
            Err(e) => {
                gate.say(format!("cannot accept a connection ({e}); trying again in {pause:?}"));
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}
