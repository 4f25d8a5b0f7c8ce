//! Seals on fed inputs. `G.I sealed on (cols)` where `I` is fed from outside the system (a
//! generator or a file) describes the feed: each key's facts arrive together. The analysis
//! relies on it and `bloomc explore` simulates it, so `bloomc run` delivers such a feed so,
//! whatever the coordination: when a node's dataflow is built, the feed is evaluated once to
//! learn the tick of each key's last row, and during the run each row waits at its node
//! until that tick, when all the key's rows are delivered together. A key's rows are
//! therefore never split across ticks, and nothing is held once the feed is done. (Each
//! worker of a multi-worker node evaluates the whole feed for itself and holds its share.)

use crate::feed::Feed;
use crate::value::Row;
use bloomc_compiler::ir::{CollectionId, GroupId, Program};
use std::collections::BTreeMap;

/// One sealed fed input of one node: its seal columns and, per tick, the keys whose last
/// row the feed delivers in that tick.
#[derive(Debug)]
pub(crate) struct FedSeal {
    cols: Vec<usize>,
    release: BTreeMap<u64, Vec<Row>>,
    last: BTreeMap<Row, u64>,
}

impl FedSeal {
    fn key(&self, row: &Row) -> Row {
        self.cols.iter().filter_map(|&c| row.get(c).cloned()).collect()
    }

    /// The tick in which the partition of `key` is complete: that of its last row (0 when
    /// the feed never sends it); with no key, the tick in which every partition is.
    fn due(&self, key: Option<&Row>) -> u64 {
        match key {
            Some(k) => self.last.get(k).copied().unwrap_or(0),
            None => self.release.keys().next_back().copied().unwrap_or(0),
        }
    }
}

/// The fed inputs of group `group` with a declared seal, and their seal columns.
pub(crate) fn sealed_feeds(p: &Program, group: GroupId, feeds: &[Feed]) -> Vec<(CollectionId, Vec<usize>)> {
    let mut out: Vec<(CollectionId, Vec<usize>)> = Vec::new();
    for seal in p.system.iter().flat_map(|s| s.seals.iter()).filter(|s| s.stream.group == group) {
        let input = seal.stream.collection;
        if feeds.iter().any(|f| f.input == input) && !out.iter().any(|(c, _)| *c == input) {
            out.push((input, seal.columns.clone()));
        }
    }
    out
}

/// The reads of group `group` held until their partition of a sealed feed of
/// `sealed_feeds` is complete: the program's `hold G.R [on (..)] until G.S sealed` items
/// whose `G.S` is such a feed, as (read, sealed input, the read's key columns).
pub(crate) fn fed_reads(
    p: &Program,
    group: GroupId,
    sealed_feeds: &[(CollectionId, Vec<usize>)],
) -> Vec<(CollectionId, CollectionId, Vec<usize>)> {
    let holds = p.system.iter().flat_map(|s| s.coordination.holds.iter());
    holds
        .filter(|h| h.stream.group == group)
        .filter_map(|h| {
            let sealed =
                h.until.filter(|u| u.group == group && sealed_feeds.iter().any(|(c, _)| *c == u.collection))?;
            Some((h.stream.collection, sealed.collection, h.columns.clone()))
        })
        .collect()
}

/// Evaluates `feeds` (as instance `instance` receives them) to learn the tick of each key's
/// last row, the key being the row's `cols`. Rows whose fields fail to evaluate are left
/// out, as the run leaves them out. (A producer of a sealed wire learns its seals so too.)
pub(crate) fn last_ticks<'f>(
    feeds: impl Iterator<Item = &'f Feed>,
    instance: u32,
    cols: &[usize],
) -> BTreeMap<Row, u64> {
    let mut last: BTreeMap<Row, u64> = BTreeMap::new();
    let mut errors = 0;
    for f in feeds {
        for t in 0..f.ticks() {
            f.visit(t, instance, (0, 1), &mut errors, &mut |row: &Row| {
                let key: Row = cols.iter().filter_map(|&c| row.get(c).cloned()).collect();
                let at = last.entry(key).or_insert(t);
                *at = (*at).max(t);
            });
        }
    }
    last
}

/// The plan of a sealed fed input: when each of its keys is complete.
pub(crate) fn plan(input: CollectionId, cols: &[usize], instance: u32, feeds: &[Feed]) -> FedSeal {
    let last = last_ticks(feeds.iter().filter(|f| f.input == input), instance, cols);
    let mut release: BTreeMap<u64, Vec<Row>> = BTreeMap::new();
    for (key, t) in &last {
        release.entry(*t).or_default().push(key.clone());
    }
    FedSeal { cols: cols.to_vec(), release, last }
}

/// One worker's hold on a sealed fed input: the rows of keys whose last tick is still ahead.
#[derive(Debug)]
pub(crate) struct FedHold {
    seal: FedSeal,
    held: BTreeMap<Row, Vec<Row>>,
}

impl FedHold {
    pub(crate) fn new(seal: FedSeal) -> FedHold {
        FedHold { seal, held: BTreeMap::new() }
    }

    /// This tick's feed rows in, the rows to deliver in tick `tick` out: every row of each
    /// key whose last row the feed delivered in this tick (or earlier, which the plan rules
    /// out; such a row is delivered at once rather than held for good).
    pub(crate) fn take(&mut self, tick: u64, rows: Vec<Row>) -> Vec<Row> {
        for row in rows {
            self.held.entry(self.seal.key(&row)).or_default().push(row);
        }
        let mut now = Vec::new();
        for key in self.seal.release.get(&tick).into_iter().flatten() {
            now.extend(self.held.remove(key).unwrap_or_default());
        }
        if self.seal.release.range(tick + 1..).next().is_none() {
            // The feed is done: nothing may stay behind.
            now.extend(std::mem::take(&mut self.held).into_values().flatten());
        }
        now
    }
}

/// A read protected by a sealed feed (the analysis's hold, `coordination::ReadHold`): each
/// of its facts waits, keyed by `cols` (in the order of the seal's columns), until the
/// tick in which its partition of the sealed feed is complete, and enters in that tick;
/// with no columns, until every partition is.
#[derive(Debug)]
struct FedRead {
    read: CollectionId,
    sealed: CollectionId,
    cols: Vec<usize>,
    waiting: BTreeMap<u64, Vec<Row>>,
}

/// One worker's sealed feeds and the reads they protect.
#[derive(Debug, Default)]
pub(crate) struct Feeds {
    holds: BTreeMap<CollectionId, FedHold>,
    reads: Vec<FedRead>,
}

impl Feeds {
    /// The holds of instance `instance`'s sealed feeds (a plan's `sealed_feeds`, over its
    /// `feeds`) and of the reads they protect (its `fed_reads`).
    pub(crate) fn new(
        sealed_feeds: &[(CollectionId, Vec<usize>)],
        fed_reads: &[(CollectionId, CollectionId, Vec<usize>)],
        instance: u32,
        feeds: &[Feed],
    ) -> Feeds {
        let holds: BTreeMap<CollectionId, FedHold> =
            sealed_feeds.iter().map(|(c, cols)| (*c, FedHold::new(self::plan(*c, cols, instance, feeds)))).collect();
        let reads = fed_reads
            .iter()
            .filter(|(_, sealed, _)| holds.contains_key(sealed))
            .map(|(read, sealed, cols)| FedRead {
                read: *read,
                sealed: *sealed,
                cols: cols.clone(),
                waiting: BTreeMap::new(),
            })
            .collect();
        Feeds { holds, reads }
    }

    /// Does input `c` go through here (a sealed feed, or a read one protects)?
    pub(crate) fn handles(&self, c: CollectionId) -> bool {
        self.holds.contains_key(&c) || self.reads.iter().any(|r| r.read == c)
    }

    /// The facts of input `c` to enter in tick `tick`, from those that arrived and the
    /// feed rows of this tick.
    pub(crate) fn take(&mut self, c: CollectionId, tick: u64, mut rows: Vec<Row>) -> Vec<Row> {
        if let Some(h) = self.holds.get_mut(&c) {
            rows = h.take(tick, rows);
        }
        for r in self.reads.iter_mut().filter(|r| r.read == c) {
            let Some(seal) = self.holds.get(&r.sealed).map(|h| &h.seal) else { continue };
            let mut now = Vec::new();
            for row in rows {
                let key: Row = r.cols.iter().filter_map(|&i| row.get(i).cloned()).collect();
                let due = seal.due((!r.cols.is_empty()).then_some(&key));
                if due > tick {
                    r.waiting.entry(due).or_default().push(row);
                } else {
                    now.push(row);
                }
            }
            // Every fact whose partition is complete by now (due at this tick, or earlier).
            let later = r.waiting.split_off(&(tick + 1));
            now.extend(std::mem::replace(&mut r.waiting, later).into_values().flatten());
            rows = now;
        }
        rows
    }
}
