//! Ends of streams: how a producer that receives messages learns that it is done, so that it
//! can punctuate at the end of its stream (`seal.rs`) like one whose inputs are all fed.
//!
//! A node is done when its feeds are over, a tick changed nothing, nothing is arriving, and
//! every node that sends to it is done and has said so: it has sent its last message. A node
//! that is done tells every node of every group it sends to, once, with a [`Payload::End`]
//! after its last message; the transport keeps each sender's messages in order, so the
//! receiver has taken everything the sender sent when it hears the end. So the ends flow
//! down the wires from the groups no wire reaches, and reach only groups that no cycle of
//! wires reaches: a group on a cycle, or downstream of one, may always receive more, and
//! cannot punctuate at its end (`seal::plan` refuses it, naming it).
//!
//! Only the groups that must know send and hear ends: the producers that punctuate at the
//! end of their stream and receive messages, and every group upstream of one. A run with no
//! such producer exchanges no end.

use crate::plan::NodePlan;
use crate::transport::Payload;
use bloomc_compiler::ir::{CollectionId, GroupId, System};
use std::collections::{BTreeMap, BTreeSet};

/// One node's part: whose ends it waits for, and whom it tells its own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ends {
    awaiting: BTreeSet<usize>,
    heard: BTreeSet<usize>,
    /// Every node to tell, with an input of it that a wire from this node's group reaches.
    tell: Vec<(usize, CollectionId)>,
    told: bool,
}

impl Ends {
    /// Node `from` has sent its last message to this node.
    pub(crate) fn heard(&mut self, from: usize) {
        self.heard.insert(from);
    }

    /// Has every node that sends to this one sent its last message?
    pub(crate) fn upstream_done(&self) -> bool {
        self.awaiting.is_subset(&self.heard)
    }

    /// This node (`me`) is done: its end, to every node it tells, once.
    pub(crate) fn end(&mut self, me: usize) -> Vec<(usize, CollectionId, Payload)> {
        if std::mem::replace(&mut self.told, true) {
            return Vec::new();
        }
        self.tell.iter().map(|&(to, input)| (to, input, Payload::End { producer: me })).collect()
    }
}

/// The groups that no cycle of wires reaches: those whose every sender is such a group and
/// that are on no cycle (Kahn's algorithm over the groups and their wires).
pub(crate) fn finite_groups(s: &System) -> BTreeSet<GroupId> {
    let mut into: BTreeMap<GroupId, BTreeSet<GroupId>> = BTreeMap::new();
    let mut out: BTreeMap<GroupId, BTreeSet<GroupId>> = BTreeMap::new();
    for w in &s.wires {
        into.entry(w.to.group).or_default().insert(w.from.group);
        out.entry(w.from.group).or_default().insert(w.to.group);
    }
    let mut waiting: BTreeMap<GroupId, usize> = into.iter().map(|(g, from)| (*g, from.len())).collect();
    let mut ready: Vec<GroupId> = s.groups.iter().map(|g| g.id).filter(|g| !into.contains_key(g)).collect();
    let mut finite = BTreeSet::new();
    while let Some(g) = ready.pop() {
        finite.insert(g);
        for d in out.get(&g).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    ready.push(*d);
                }
            }
        }
    }
    finite
}

/// Per node, its part in the ends that the producer groups `ending` (which punctuate at the
/// end of their stream) need: they and every group upstream of them wait for their senders'
/// ends and tell theirs downstream. `None` for a node that takes no part.
pub(crate) fn plan(s: &System, plans: &[NodePlan], ending: &BTreeSet<GroupId>) -> Vec<Option<Ends>> {
    let nodes_of = |g: GroupId| -> Vec<usize> {
        (0..plans.len()).filter(|&i| plans.get(i).is_some_and(|n| n.group == Some(g))).collect()
    };
    // The groups that take part: `ending` and, transitively, every group that sends to one.
    let mut part: BTreeSet<GroupId> = ending.clone();
    let mut queue: Vec<GroupId> = ending.iter().copied().collect();
    while let Some(g) = queue.pop() {
        for w in s.wires.iter().filter(|w| w.to.group == g) {
            if part.insert(w.from.group) {
                queue.push(w.from.group);
            }
        }
    }
    let mut out: Vec<Option<Ends>> = vec![None; plans.len()];
    for &g in &part {
        let awaiting: BTreeSet<usize> =
            s.wires.iter().filter(|w| w.to.group == g).flat_map(|w| nodes_of(w.from.group)).collect();
        // One input per receiving group: where the end lands (any input a wire reaches).
        let mut inputs: BTreeMap<GroupId, CollectionId> = BTreeMap::new();
        for w in s.wires.iter().filter(|w| w.from.group == g && part.contains(&w.to.group)) {
            inputs.entry(w.to.group).or_insert(w.to.collection);
        }
        let tell: Vec<(usize, CollectionId)> =
            inputs.iter().flat_map(|(&d, &input)| nodes_of(d).into_iter().map(move |n| (n, input))).collect();
        for n in nodes_of(g) {
            if let Some(slot) = out.get_mut(n) {
                *slot = Some(Ends { awaiting: awaiting.clone(), tell: tell.clone(), ..Ends::default() });
            }
        }
    }
    out
}
