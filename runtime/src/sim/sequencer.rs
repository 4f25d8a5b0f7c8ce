//! The simulated sequencer of a replicated group: every message sent to any replica is
//! staged once (with the replicas it is addressed to), and a cut takes some of what is
//! staged as the next batch, which every replica takes in order.
//!
//! Seals and held reads of a sequenced group apply after sequencing, as at run time: the
//! punctuations travel through the sequencer with the facts, so every replica releases a
//! seal key at the same batch. Here that is modelled at the sequencer: the facts of a
//! sealed input wait per key until every producer of the input is done, and then go into
//! the stage as one unit, which a cut takes whole; a held read's facts wait until their
//! partition is released and go with it (or alone, when no producer sent that key).

use super::choose::{split, Chooser};
use super::Setup;
use crate::value::Row;
use bloomc_compiler::ir::CollectionId;
use std::collections::{BTreeMap, BTreeSet};

/// A fact in flight: its input and row.
pub(crate) type Item = (CollectionId, Row);

/// A staged message: the fact, with the replicas (offsets) it is addressed to.
pub(crate) type Staged = (Item, BTreeSet<usize>);

#[derive(Debug, Clone, Default)]
pub(crate) struct Sequencer {
    /// The group's first node.
    pub(crate) first: usize,
    /// Plain messages, each once.
    pub(crate) staged: Vec<Staged>,
    /// Released seal keys (with the reads they carry), each with its sealed input (none for
    /// reads alone): each taken whole by a cut.
    pub(crate) units: Vec<(Option<CollectionId>, Vec<Staged>)>,
    /// Facts of sealed inputs, per (input, key), and of held reads, per (read, key).
    held: BTreeMap<(CollectionId, Row), Vec<Staged>>,
    parked: BTreeMap<(CollectionId, Row), Vec<Staged>>,
    released: BTreeSet<(CollectionId, Row)>,
    pub(crate) batches: Vec<Vec<Staged>>,
}

fn add(slot: &mut Vec<Staged>, offset: usize, item: Item) {
    match slot.iter_mut().find(|(i, _)| *i == item) {
        Some((_, to)) => {
            to.insert(offset);
        }
        None => slot.push((item, BTreeSet::from([offset]))),
    }
}

impl Sequencer {
    pub(crate) fn new(first: usize) -> Sequencer {
        Sequencer { first, ..Sequencer::default() }
    }

    /// A message for replica `offset` arrives: staged, or held by its seal or read hold.
    pub(crate) fn stage(&mut self, setup: &Setup<'_>, offset: usize, item: Item) {
        let input = item.0;
        if let Some((sealed, cols)) = setup.reads.get(&(self.first, input)) {
            let key: Row = cols.iter().filter_map(|&c| item.1.get(c).cloned()).collect();
            if !self.released.contains(&(*sealed, key.clone())) {
                add(self.parked.entry((input, key)).or_default(), offset, item);
                return;
            }
        }
        if let Some(cols) = setup.seals.get(&(self.first, input)) {
            let key: Row = cols.iter().filter_map(|&c| item.1.get(c).cloned()).collect();
            if !self.released.contains(&(input, key.clone())) {
                add(self.held.entry((input, key)).or_default(), offset, item);
                return;
            }
        }
        add(&mut self.staged, offset, item);
    }

    /// Holds anything back?
    pub(crate) fn holding(&self) -> bool {
        !self.held.is_empty() || !self.parked.is_empty()
    }

    /// Has it anything to cut?
    pub(crate) fn cuttable(&self) -> bool {
        !self.staged.is_empty() || !self.units.is_empty()
    }

    /// Releases into the stage every held key whose input is `complete` (each key as one
    /// unit with the reads of its partition), and every parked read whose partition is
    /// released or will never be sent.
    pub(crate) fn release(&mut self, setup: &Setup<'_>, complete: &dyn Fn(CollectionId) -> bool) {
        let ready: Vec<(CollectionId, Row)> = self.held.keys().filter(|(c, _)| complete(*c)).cloned().collect();
        for key in ready {
            let mut unit = self.held.remove(&key).unwrap_or_default();
            let reads: Vec<(CollectionId, Row)> = self
                .parked
                .keys()
                .filter(|(read, k)| {
                    *k == key.1
                        && setup.reads.get(&(self.first, *read)).is_some_and(|(s, c)| *s == key.0 && !c.is_empty())
                })
                .cloned()
                .collect();
            for r in reads {
                unit.extend(self.parked.remove(&r).unwrap_or_default());
            }
            self.units.push((Some(key.0), unit));
            self.released.insert(key);
        }
        // A read without the seal's key waits until every partition has been cut.
        let reads: Vec<(CollectionId, Row)> = self
            .parked
            .keys()
            .filter(|(read, k)| {
                setup.reads.get(&(self.first, *read)).is_some_and(|(s, cols)| {
                    let sealed = (*s, k.clone());
                    if cols.is_empty() {
                        complete(*s)
                            && !self.held.keys().any(|(c, _)| c == s)
                            && !self.units.iter().any(|(c, _)| *c == Some(*s))
                    } else {
                        self.released.contains(&sealed) || (!self.held.contains_key(&sealed) && complete(*s))
                    }
                })
            })
            .cloned()
            .collect();
        for r in reads {
            let facts = self.parked.remove(&r).unwrap_or_default();
            self.units.push((None, facts));
        }
    }

    /// Cuts the next batch: some of the plain messages and units (at least one), chosen.
    pub(crate) fn cut(&mut self, choose: &mut dyn Chooser) {
        // Plain messages are units of their own, with no sealed input.
        let plain = std::mem::take(&mut self.staged).into_iter().map(|s| (None, vec![s], true));
        let units = std::mem::take(&mut self.units).into_iter().map(|(c, u)| (c, u, false));
        let (taken, left) = split(plain.chain(units).collect(), choose, true);
        for (c, mut u, plain) in left {
            match (plain, u.pop()) {
                (true, Some(one)) => self.staged.push(one),
                (_, Some(last)) => {
                    u.push(last);
                    self.units.push((c, u));
                }
                (_, None) => {}
            }
        }
        self.batches.push(taken.into_iter().flat_map(|(_, u, _)| u).collect());
    }
}
