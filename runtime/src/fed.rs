//! Seals on fed inputs. `G.I sealed on (cols)` where `I` is fed from outside the system (a
//! generator or a file) describes the feed: each key's facts arrive together. The analysis
//! relies on it and `bloomc explore` simulates it, so `bloomc run` delivers such a feed so,
//! whatever the coordination: when a node's dataflow is built, the feed is evaluated once to
//! learn the tick of each key's last row, and during the run each row waits at its node
//! until that tick, when all the key's rows are delivered together. A key's rows are
//! therefore never split across ticks, and nothing is held once the feed is done. (Each
//! worker of a multi-worker node evaluates the whole feed for itself and holds its share.)

use crate::plan::Feed;
use crate::value::Row;
use bloomc_compiler::ir::{CollectionId, GroupId, Program};
use std::collections::BTreeMap;

/// One sealed fed input of one node: its seal columns and, per tick, the keys whose last
/// row the feed delivers in that tick.
#[derive(Debug)]
pub(crate) struct FedSeal {
    cols: Vec<usize>,
    release: BTreeMap<u64, Vec<Row>>,
}

impl FedSeal {
    fn key(&self, row: &Row) -> Row {
        self.cols.iter().filter_map(|&c| row.get(c).cloned()).collect()
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

/// Evaluates the feeds of a sealed fed input (as instance `instance` receives them) to learn
/// the tick of each key's last row.
pub(crate) fn plan(input: CollectionId, cols: &[usize], instance: u32, feeds: &[Feed]) -> FedSeal {
    let mut fed = FedSeal { cols: cols.to_vec(), release: BTreeMap::new() };
    let mut last: BTreeMap<Row, u64> = BTreeMap::new();
    let mut errors = 0;
    for f in feeds.iter().filter(|f| f.input == input) {
        for t in 0..f.ticks() {
            f.visit(t, instance, (0, 1), &mut errors, &mut |row: &Row| {
                let at = last.entry(fed.key(row)).or_insert(t);
                *at = (*at).max(t);
            });
        }
    }
    for (key, t) in last {
        fed.release.entry(t).or_default().push(key);
    }
    fed
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
