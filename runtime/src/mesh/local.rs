//! What a node process's listener and its main thread share: the frames that arrived and
//! not yet taken, the counters of the end-of-run detection, and the journal (`journal.rs`),
//! through which a restarted node replays the ticks its previous process ran before it takes
//! anything new.

use super::journal::{Journal, Recovered};
use crate::transport::Inbox;
use crate::wire::DataFrame;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard};

/// A frame's messages with the frame's sender and number.
type Arrived = (usize, u64, Inbox);

#[derive(Default)]
pub(crate) struct Local {
    inbox: Vec<Arrived>,
    /// Batches of this node's sequenced group that arrived, by position.
    batches: BTreeMap<u64, Arrived>,
    /// The position of the next batch to take.
    next: u64,
    /// Data frames sent and received (each counted once), ticks taken: the counters of the
    /// end-of-run detection.
    pub sent: u64,
    pub received: u64,
    pub takes: u64,
    /// Per sender: the last frame number it has, and the session that sent them.
    pub have: Vec<u64>,
    pub sessions: Vec<Option<u64>>,
    pub frames_from: Vec<u64>,
    /// The node stopped (`--max-ticks`): what reaches it now is counted, not delivered.
    stopped: bool,
    pub undelivered: u64,
    /// Why the node cannot go on (a peer it could not reach, a journal it cannot write).
    pub failure: Option<String>,
    /// The coordinator's round this node heard of last, and whether the run is over.
    pub round: u64,
    pub over: bool,
    journal: Option<Journal>,
    /// The ticks the previous process of this node ran, to run again with the same inputs,
    /// and the frames they took.
    replay: super::journal::Took,
    replay_frames: HashMap<(usize, u64), DataFrame>,
}

impl Local {
    pub fn has_work(&self) -> bool {
        !self.replay.is_empty() || (!self.stopped && (!self.inbox.is_empty() || self.batches.contains_key(&self.next)))
    }

    pub fn replaying(&self) -> bool {
        !self.replay.is_empty()
    }

    fn arrive(&mut self, from: usize, frame: DataFrame) {
        match frame.position {
            Some(at) => {
                self.batches.insert(at, (from, frame.seq, frame.messages));
            }
            None => self.inbox.push((from, frame.seq, frame.messages)),
        }
    }
}

pub(crate) struct Shared {
    local: Mutex<Local>,
    pub wake: Condvar,
}

impl Shared {
    /// The state of a node of a network of `n` nodes; with a journal, what it recovered is
    /// replayed first, and the frames it had received but not taken wait in its inbox.
    pub fn new(n: usize, journal: Option<(Journal, Recovered)>) -> Shared {
        let mut l = Local { have: vec![0; n], sessions: vec![None; n], frames_from: vec![0; n], ..Local::default() };
        if let Some((journal, recovered)) = journal {
            let mut frames: Vec<((usize, u64), DataFrame)> = recovered.frames.into_iter().collect();
            frames.sort_by_key(|(k, _)| *k);
            let taken: std::collections::HashSet<(usize, u64)> =
                recovered.took.values().flat_map(|(f, _)| f.iter().copied()).collect();
            for ((from, seq), frame) in frames {
                if let Some(h) = l.have.get_mut(from) {
                    *h = (*h).max(seq);
                }
                if let Some(c) = l.frames_from.get_mut(from) {
                    *c += 1;
                }
                l.received += 1;
                if taken.contains(&(from, seq)) {
                    l.replay_frames.insert((from, seq), frame);
                } else {
                    l.arrive(from, frame);
                }
            }
            l.replay = recovered.took;
            l.journal = Some(journal);
        }
        Shared { local: Mutex::new(l), wake: Condvar::new() }
    }

    pub fn lock(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The node cannot go on: it fails at its next call.
    pub fn fail(&self, reason: String) {
        let mut l = self.lock();
        l.failure.get_or_insert(reason);
        self.wake.notify_all();
    }

    /// Frame `frame` from node `from`: journaled, then applied once, whatever the number of
    /// times it arrives. Returns the last frame number this node has from `from`, or `None`
    /// when the frame skips a number (a broken sender) or cannot be journaled.
    pub fn deliver(&self, from: usize, frame: DataFrame) -> Option<u64> {
        let mut l = self.lock();
        let have = l.have.get(from).copied()?;
        if frame.seq <= have {
            return Some(have);
        }
        if frame.seq != have + 1 {
            return None;
        }
        if let Some(j) = l.journal.as_mut() {
            if let Err(e) = j.frame(from, &frame) {
                l.failure.get_or_insert(e);
                self.wake.notify_all();
                return None;
            }
        }
        if let Some(h) = l.have.get_mut(from) {
            *h = frame.seq;
        }
        if let Some(n) = l.frames_from.get_mut(from) {
            *n += 1;
        }
        l.received += 1;
        let seq = frame.seq;
        if l.stopped {
            l.undelivered += frame.messages.iter().map(|(_, m)| m.facts()).sum::<u64>();
        } else {
            l.arrive(from, frame);
        }
        self.wake.notify_all();
        Some(seq)
    }

    /// What tick `tick` takes: while replaying, what the previous process's tick took (and
    /// nothing else); then the inbox, and the next batch when `settled`. A live take is
    /// journaled before it is returned, so the tick's effects never precede its record.
    pub fn take(&self, tick: u64, settled: bool) -> Result<(Inbox, bool), String> {
        let mut l = self.lock();
        if let Some(f) = &l.failure {
            return Err(f.clone());
        }
        if l.replaying() {
            let (ids, batch) = l.replay.remove(&tick).unwrap_or_default();
            let mut out = Inbox::new();
            for id in ids {
                let frame = l.replay_frames.remove(&id).ok_or("internal error: the journal lost a frame it took")?;
                out.extend(frame.messages);
            }
            if let Some(at) = batch {
                l.next = at + 1;
            }
            l.takes += 1;
            return Ok((out, batch.is_some()));
        }
        let mut ids = Vec::new();
        let mut out = Inbox::new();
        for (from, seq, messages) in std::mem::take(&mut l.inbox) {
            ids.push((from, seq));
            out.extend(messages);
        }
        let mut batch = None;
        if settled {
            let next = l.next;
            if let Some((from, seq, messages)) = l.batches.remove(&next) {
                ids.push((from, seq));
                out.extend(messages);
                l.next += 1;
                batch = Some(next);
            }
        }
        if let Some(j) = l.journal.as_mut() {
            j.took(tick, ids, batch)?;
        }
        if batch.is_some() || !out.is_empty() {
            l.takes += 1;
        }
        Ok((out, batch.is_some()))
    }

    /// The node stopped for good: what it took but will not process (`taken` facts), and
    /// what waits for it, are undelivered, as is all that reaches it from now on.
    pub fn stop(&self, taken: u64) {
        let mut l = self.lock();
        l.stopped = true;
        let inbox: u64 = std::mem::take(&mut l.inbox).iter().flat_map(|(_, _, m)| m).map(|(_, m)| m.facts()).sum();
        let batches: u64 =
            std::mem::take(&mut l.batches).values().flat_map(|(_, _, m)| m).map(|(_, m)| m.facts()).sum();
        l.undelivered += taken + inbox + batches;
    }
}
