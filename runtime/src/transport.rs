//! The in-process transport of a network run: one inbox per node, the sequencer that
//! `--coordination order` puts in front of each replicated group, and quiescence detection.
//!
//! Sequencer: what is sent to any replica of a sequenced group is staged; when a replica
//! asks for input and has consumed every batch so far, the staged messages become the next
//! batch. Each replica takes one batch per tick, in the same order, so every replica
//! processes the same batches in the same order (its share of each: what was addressed to it,
//! which for a broadcast wire is everything).
//!
//! Quiescence: the network is done when every node is idle (or stopped), no inbox holds a
//! message, and every sequencer has delivered every batch to every running replica.

use crate::value::Row;
use bloomc_compiler::ir::CollectionId;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

/// What a message to an input interface carries: facts, or a producer's punctuation for a
/// sealed input (see `seal.rs`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Payload {
    Facts(Vec<Row>),
    /// The seal keys a producer node may send, announced before it sends anything.
    Announce {
        producer: usize,
        keys: Vec<Row>,
    },
    /// The producer node will send no more facts with these seal keys.
    Seal {
        producer: usize,
        keys: Vec<Row>,
    },
    /// The sending node will send nothing more to this node (`ends.rs`).
    End {
        producer: usize,
    },
}

impl Payload {
    /// The facts it carries (punctuations carry none).
    pub fn facts(&self) -> u64 {
        match self {
            Payload::Facts(rows) => rows.len() as u64,
            _ => 0,
        }
    }
}

pub type Inbox = Vec<(CollectionId, Payload)>;

/// What a node needs of the network: the in-process [`Net`] provides it directly, and a
/// node in its own process has its own over TCP (`mesh::Mesh`). Each call fails
/// only when the network is gone (the coordinator stopped the run, or cannot be reached).
pub trait Transport {
    /// See [`Net::take`]; `tick` is the tick the node is about to run if it takes anything
    /// (a node in its own process journals what each tick took, to replay it after a crash).
    fn take(&self, me: usize, tick: u64, settled: bool) -> Result<(Inbox, bool), String>;
    /// See [`Net::send`].
    fn send(&self, messages: Vec<(usize, CollectionId, Payload)>) -> Result<(), String>;
    /// See [`Net::wait`].
    fn wait(&self, me: usize) -> Result<bool, String>;
    /// See [`Net::stop`].
    fn stop(&self, me: usize, taken: u64) -> Result<(), String>;
}

impl Transport for Net {
    fn take(&self, me: usize, _tick: u64, settled: bool) -> Result<(Inbox, bool), String> {
        Ok(Net::take(self, me, settled))
    }
    fn send(&self, messages: Vec<(usize, CollectionId, Payload)>) -> Result<(), String> {
        Net::send(self, messages);
        Ok(())
    }
    fn wait(&self, me: usize) -> Result<bool, String> {
        Ok(Net::wait(self, me))
    }
    fn stop(&self, me: usize, taken: u64) -> Result<(), String> {
        Net::stop(self, me, taken);
        Ok(())
    }
}

/// Messages to one replica of a sequenced group: (offset of the replica, input, payload).
type Batch = Vec<(usize, CollectionId, Payload)>;

#[derive(Default)]
struct Sequencer {
    first: usize,
    staged: Batch,
    batches: VecDeque<Batch>,
    /// The number of the batch at the front of `batches`.
    base: usize,
    /// The next batch each replica takes.
    cursor: Vec<usize>,
}

impl Sequencer {
    fn end(&self) -> usize {
        self.base + self.batches.len()
    }
}

#[derive(Default)]
struct State {
    inbox: Vec<Inbox>,
    idle: Vec<bool>,
    stopped: Vec<bool>,
    /// The sequencer of each node's group, when it is sequenced.
    sequenced: Vec<Option<usize>>,
    sequencers: Vec<Sequencer>,
    done: bool,
    undelivered: u64,
}

impl State {
    fn has_work(&self, me: usize) -> bool {
        if self.inbox.get(me).is_some_and(|i| !i.is_empty()) {
            return true;
        }
        let Some(q) = self.sequenced.get(me).copied().flatten().and_then(|g| self.sequencers.get(g)) else {
            return false;
        };
        let at = q.cursor.get(me - q.first).copied().unwrap_or(usize::MAX);
        at < q.end() || (at == q.end() && !q.staged.is_empty())
    }

    fn settle(&mut self) {
        let running = |me: usize| !self.stopped.get(me).copied().unwrap_or(true);
        let idle = self.idle.iter().all(|i| *i);
        let drained = (0..self.inbox.len()).all(|me| !running(me) || !self.has_work(me));
        if idle && drained {
            self.done = true;
        }
    }
}

/// The transport and quiescence detector shared by all node threads of a network.
pub struct Net {
    state: Mutex<State>,
    wake: Condvar,
}

impl Net {
    /// A network of `nodes` nodes; `groups` lists (first node, count) of each group to
    /// sequence.
    pub fn new(nodes: usize, groups: &[(usize, usize)]) -> Net {
        let mut state = State {
            inbox: vec![Vec::new(); nodes],
            idle: vec![false; nodes],
            stopped: vec![false; nodes],
            sequenced: vec![None; nodes],
            ..State::default()
        };
        for (g, &(first, count)) in groups.iter().enumerate() {
            for me in first..first + count {
                if let Some(x) = state.sequenced.get_mut(me) {
                    *x = Some(g);
                }
            }
            state.sequencers.push(Sequencer { first, cursor: vec![0; count], ..Sequencer::default() });
        }
        Net { state: Mutex::new(state), wake: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A node thread that panicked while holding the lock leaves plain data behind.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What node `me` receives for its next tick, and whether that tick consumes a batch of
    /// its sequencer (a tick the node must run even if the batch holds nothing for it). A
    /// replica takes a batch only when `settled` (its last tick changed nothing), so its
    /// ticks follow from the batches alone and every replica runs the same sequence.
    pub fn take(&self, me: usize, settled: bool) -> (Inbox, bool) {
        let mut s = self.lock();
        let mut out = s.inbox.get_mut(me).map(std::mem::take).unwrap_or_default();
        let Some(g) = s.sequenced.get(me).copied().flatten().filter(|_| settled) else { return (out, false) };
        let Some(q) = s.sequencers.get_mut(g) else { return (out, false) };
        let off = me - q.first;
        let at = q.cursor.get(off).copied().unwrap_or(usize::MAX);
        if at == q.end() && !q.staged.is_empty() {
            let batch = std::mem::take(&mut q.staged);
            q.batches.push_back(batch);
        }
        let Some(batch) = at.checked_sub(q.base).and_then(|i| q.batches.get(i)) else { return (out, false) };
        out.extend(batch.iter().filter(|(o, _, _)| *o == off).map(|(_, c, payload)| (*c, payload.clone())));
        if let Some(c) = q.cursor.get_mut(off) {
            *c += 1;
        }
        // Batches every replica has taken are dropped.
        while !q.batches.is_empty() && q.cursor.iter().all(|c| *c > q.base) {
            q.batches.pop_front();
            q.base += 1;
        }
        (out, true)
    }

    /// Delivers one tick's messages of one node at once (`(to, input, payload)`), so that a
    /// sequencer batches all of a tick's copies of a broadcast together.
    pub fn send(&self, messages: Vec<(usize, CollectionId, Payload)>) {
        let mut s = self.lock();
        for (to, input, payload) in messages {
            let sequencer = s.sequenced.get(to).copied().flatten();
            if s.stopped.get(to).copied().unwrap_or(true) {
                s.undelivered += payload.facts();
            } else if let Some(q) = sequencer.and_then(|g| s.sequencers.get_mut(g)) {
                q.staged.push((to - q.first, input, payload));
            } else if let Some(inbox) = s.inbox.get_mut(to) {
                inbox.push((input, payload));
            }
        }
        self.wake.notify_all();
    }

    /// Waits, idle, until node `me` has input (`false`) or the network is done (`true`).
    pub fn wait(&self, me: usize) -> bool {
        let mut s = self.lock();
        loop {
            if s.has_work(me) {
                if let Some(i) = s.idle.get_mut(me) {
                    *i = false;
                }
                return false;
            }
            if let Some(i) = s.idle.get_mut(me) {
                *i = true;
            }
            s.settle();
            if s.done {
                self.wake.notify_all();
                return true;
            }
            s = self.wake.wait(s).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Node `me` stops for good (it reached `max_ticks` or failed): it counts as idle, and
    /// what is sent to it from now on, what waits for it, and `taken` facts it took but will
    /// not process are counted as undelivered.
    pub fn stop(&self, me: usize, taken: u64) {
        let mut s = self.lock();
        if let Some(x) = s.stopped.get_mut(me) {
            *x = true;
        }
        if let Some(x) = s.idle.get_mut(me) {
            *x = true;
        }
        let dropped: u64 =
            s.inbox.get_mut(me).map(std::mem::take).unwrap_or_default().iter().map(|(_, m)| m.facts()).sum();
        s.undelivered += dropped + taken;
        s.settle();
        self.wake.notify_all();
    }

    /// (done, undelivered) once the nodes have finished.
    pub fn outcome(&self) -> (bool, u64) {
        let s = self.lock();
        (s.done, s.undelivered)
    }
}
