//! The embedded ordering service: `bloomc sequencer`, a process of its own that the
//! coordinator starts (and, with `--restart`, starts again) when the run orders a group's
//! batches and names no ZooKeeper. It keeps, per group, the next position and every batch's
//! position, and answers each [`Call::Position`] with the batch's position, the same one
//! however often it is asked (the contract of [`super::OrderService`]).
//!
//! Durability. With a journal directory, every position is written to the journal
//! (`records.rs`, synced to disk) before it is answered, and the first record is the address
//! the service listens on. A sequencer started again with the same directory binds that
//! address again and reads back every position it gave, so the nodes, which keep asking
//! until they are answered (`control.rs`), reach it where it was and get the same answers:
//! killing it (`kill -9`) at any point loses no position and gives none twice.
//!
//! Admission is the coordinator's and the nodes' (`admission.rs`): the cluster's name and
//! token in a hello of bounded size, within bounded time, a bounded number of strangers at
//! once. The program's digest is not checked: the service orders batches it never reads, and
//! the coordinator refuses a node that compiled another program.

use super::BatchId;
use crate::admission::{accept, hello, Gate, Log};
use crate::records::RecordFile;
use crate::wire::{decode, encode, Call, Hello, Reply, Request, Welcome};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct SequencerConfig {
    pub cluster: String,
    pub token: String,
    pub max_frame: usize,
    /// Where to listen (`host:port`; port 0 for a free one), unless the journal names the
    /// address of an earlier process.
    pub listen: String,
    /// The directory of the journal; without one, positions live in memory only.
    pub journal: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
enum Record {
    Listen(String),
    Position { group: String, batch: BatchId, at: u64 },
}

/// Per group, the next position and every batch's position, and the journal they go to.
#[derive(Default)]
struct Orders {
    groups: HashMap<String, (u64, HashMap<BatchId, u64>)>,
    journal: Option<RecordFile>,
}

impl Orders {
    fn position(&mut self, group: &str, batch: BatchId) -> Result<u64, String> {
        if let Some(at) = self.groups.get(group).and_then(|(_, given)| given.get(&batch)) {
            return Ok(*at);
        }
        let at = self.groups.get(group).map_or(0, |(next, _)| *next);
        if let Some(j) = self.journal.as_mut() {
            j.append(&Record::Position { group: group.to_string(), batch, at })?;
        }
        self.record(group.to_string(), batch, at);
        Ok(at)
    }

    fn record(&mut self, group: String, batch: BatchId, at: u64) {
        let (next, given) = self.groups.entry(group).or_default();
        given.insert(batch, at);
        *next = (*next).max(at + 1);
    }
}

struct Sequencer {
    cluster: String,
    token: String,
    max_frame: usize,
    orders: Mutex<Orders>,
    /// Why the service cannot go on (its journal cannot be written).
    failure: Mutex<Option<String>>,
    gate: Arc<Gate>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sequencer {
    fn admit(&self, hello: &Hello) -> Result<(), String> {
        if hello.cluster != self.cluster {
            return Err("it names another cluster".to_string());
        }
        if hello.token != self.token {
            return Err("bad token".to_string());
        }
        Ok(())
    }

    fn answer(&self, call: Call) -> Reply {
        if let Some(reason) = lock(&self.failure).clone() {
            return Reply::Abort(reason);
        }
        let Call::Position { group, batch } = call else {
            return Reply::Abort("the ordering service answers only requests for positions".to_string());
        };
        let answer = lock(&self.orders).position(&group, batch);
        match answer {
            Ok(at) => Reply::Position(at),
            Err(e) => {
                let reason = format!("the ordering service failed: {e}");
                self.gate.say(reason.clone());
                *lock(&self.failure) = Some(reason.clone());
                Reply::Abort(reason)
            }
        }
    }

    async fn connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        pending: tokio::sync::OwnedSemaphorePermit,
    ) {
        let max = self.max_frame;
        let (mut framed, hello) = hello(stream, max).await;
        drop(pending);
        let node = match hello.and_then(|h| self.admit(&h).map(|()| h.node)) {
            Ok(node) => node,
            Err(reason) => {
                self.gate.refusal(format!("refused a connection from {peer}: {reason}"));
                if let Ok(b) = encode(&Welcome::Refused(reason), max) {
                    let _ = framed.send(b).await;
                }
                return;
            }
        };
        let Ok(welcome) = encode(&Welcome::Sequencing, max) else { return };
        if framed.send(welcome).await.is_err() {
            return;
        }
        while let Some(frame) = framed.next().await {
            let request = match frame.map_err(|e| e.to_string()).and_then(|b| decode::<Request>(&b, max)) {
                Ok(r) => r,
                Err(e) => {
                    self.gate.say(format!("closed the connection of node `{node}` ({peer}): {e}"));
                    return;
                }
            };
            let Ok(reply) = encode(&self.answer(request.call), max) else { return };
            if framed.send(reply).await.is_err() {
                return;
            }
        }
    }
}

/// Serves the ordering service until the process is stopped, or its journal fails.
/// `bound` hears the address it listens on, once it does.
pub fn serve(config: SequencerConfig, log: Log, bound: impl FnOnce(SocketAddr)) -> Result<(), String> {
    let mut orders = Orders::default();
    let mut listen = config.listen.clone();
    let mut recorded = false;
    if let Some(dir) = &config.journal {
        let (file, records) = RecordFile::open::<Record>(&dir.join("sequencer.journal"))?;
        for r in records {
            match r {
                Record::Listen(a) => (listen, recorded) = (a, true),
                Record::Position { group, batch, at } => orders.record(group, batch, at),
            }
        }
        orders.journal = Some(file);
    }
    let given: usize = orders.groups.values().map(|(_, g)| g.len()).sum();
    let listener = std::net::TcpListener::bind(&listen)
        .map_err(|e| format!("the ordering service cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("the ordering service: {e}"))?;
    if let (Some(j), false) = (orders.journal.as_mut(), recorded) {
        j.append(&Record::Listen(addr.to_string()))?;
    }
    let gate = Arc::new(Gate::new("sequencer".to_string(), log));
    if given > 0 {
        gate.say(format!("recovered {given} positions from its journal"));
    }
    let sequencer = Arc::new(Sequencer {
        cluster: config.cluster,
        token: config.token,
        max_frame: config.max_frame,
        orders: Mutex::new(orders),
        failure: Mutex::new(None),
        gate: gate.clone(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the ordering service's runtime: {e}"))?;
    rt.block_on(async {
        listener.set_nonblocking(true).map_err(|e| format!("the ordering service: {e}"))?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| format!("the ordering service: {e}"))?;
        bound(addr);
        let s = sequencer.clone();
        let acceptor = tokio::spawn(accept(listener, gate, move |stream, peer, permit| {
            s.clone().connection(stream, peer, permit)
        }));
        let mut every = tokio::time::interval(std::time::Duration::from_millis(50));
        let failure = loop {
            every.tick().await;
            if let Some(f) = lock(&sequencer.failure).clone() {
                break f;
            }
        };
        acceptor.abort();
        Err(failure)
    })
}

#[cfg(test)]
mod tests {
    use super::{BatchId, Orders, Record};
    use crate::records::RecordFile;

    fn b(producer: u32, seq: u64) -> BatchId {
        BatchId { producer, seq }
    }

    #[test]
    fn a_batch_keeps_its_position_across_a_restart_from_the_journal() {
        let tmp = tempfile::tempdir().expect("a private temporary directory");
        let path = tmp.path().join("sequencer.journal");
        let mut o = Orders { journal: Some(RecordFile::open::<Record>(&path).expect("open").0), ..Orders::default() };
        assert_eq!(o.position("report", b(0, 1)), Ok(0));
        assert_eq!(o.position("report", b(1, 1)), Ok(1));
        assert_eq!(o.position("cache", b(1, 1)), Ok(0));
        assert_eq!(o.position("report", b(0, 1)), Ok(0));
        drop(o);
        let (file, records) = RecordFile::open::<Record>(&path).expect("open");
        let mut o = Orders { journal: Some(file), ..Orders::default() };
        for r in records {
            if let Record::Position { group, batch, at } = r {
                o.record(group, batch, at);
            }
        }
        assert_eq!(o.position("report", b(1, 1)), Ok(1));
        assert_eq!(o.position("report", b(0, 2)), Ok(2));
        assert_eq!(o.position("cache", b(0, 1)), Ok(1));
    }
}
