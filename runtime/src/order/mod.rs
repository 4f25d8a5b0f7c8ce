//! The ordering service of `--coordination order` across processes: one total order of
//! batches per replicated group, shared by all of the group's replicas.
//!
//! A producer node that sends a tick's messages to a sequenced group first asks the service
//! for the position of that batch, names the batch by a [`BatchId`] it chooses (its own node
//! number and a number it never reuses), and sends every replica of the group its share of
//! the batch (possibly empty) tagged with that position. Each replica takes the batches in
//! position order, so every replica processes the same batches in the same order.
//!
//! Backends: `embedded` (`bloomc sequencer`, a process of its own: `sequencer.rs`) and `zookeeper` (Apache
//! ZooKeeper, the Blazes paper's choice).

use serde::{Deserialize, Serialize};

pub mod sequencer;
pub mod zookeeper;

/// A batch, named by its producer: the producer's node number and a number the producer
/// never gives another batch of its own (its tick count, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BatchId {
    pub producer: u32,
    pub seq: u64,
}

/// One total order of batches per group.
///
/// Contract, for every backend:
/// - positions of a group are 0, 1, 2, ... with no gaps, in the order the service assigned
///   them;
/// - asking again for a batch that already has a position answers the same position, also
///   when the asking process restarted in between (a producer that crashed after asking but
///   before it sent the batch asks again after its restart and gets the same number, so no
///   replica waits forever for a position nobody fills);
/// - the order survives the restart of any replica or producer.
pub trait OrderService: Send {
    /// The position of `batch` in the order of `group` (the group's name in the system).
    fn position(&mut self, group: &str, batch: BatchId) -> Result<u64, String>;
}
