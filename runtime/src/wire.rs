//! The frames of a network run across processes, over TCP connections of length-delimited
//! frames: a 4-byte big-endian length, then a bincode body. Frames longer than the limit are
//! refused before they are read, and a body that does not decode closes the connection.
//!
//! Two kinds of connection, each opened with a [`Hello`] (the cluster's name, the shared
//! token, the node's name, the digest of the program it compiled, its session):
//! - **control**: a node process and the coordinator (`coordinator.rs`). The coordinator
//!   answers with a [`Welcome`]; then every frame is one numbered [`Request`] and its
//!   [`Reply`]. The coordinator keeps its last reply to each node, so a request resent after
//!   a reconnect is answered again rather than done twice. No request carries facts
//!   for another node (a node's final report carries its own outputs).
//! - **ordering**: a node process and the embedded ordering service (`order/sequencer.rs`),
//!   which answers the hello with [`Welcome::Sequencing`], then each [`Call::Position`]
//!   request with its [`Reply::Position`]. A request resent after a reconnect gets the same
//!   answer: a batch keeps its position.
//! - **data**: one node process to another (`mesh/`). The receiver answers the hello with a
//!   [`PeerWelcome`] (the last frame it has from that sender); then the sender sends
//!   numbered [`DataFrame`]s straight to the node they are for, and the receiver
//!   acknowledges them ([`Ack`]). A frame not acknowledged is sent again after a reconnect;
//!   the receiver drops a frame it already has, so none is lost or doubled.

use crate::order::BatchId;
use crate::report::NodeReport;
use crate::transport::Payload;
use bincode::Options;
use bloomc_compiler::ir::CollectionId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

/// The largest frame either side accepts unless the cluster file says otherwise (64 MiB).
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;

/// The range `max_frame` may take: a frame must hold a node's inbox, and the codec's length
/// prefix has 4 bytes, but a listener should not promise to buffer more than 1 GiB per connection.
pub const MAX_FRAME_RANGE: std::ops::RangeInclusive<usize> = 4096..=(1 << 30);

/// The largest first frame a listener reads from a connection: a hello is a few hundred bytes,
/// so a stranger cannot make it buffer `max_frame` bytes before it was admitted.
pub const HELLO_LIMIT: usize = 4096;

/// The environment variable that holds the cluster's shared token.
pub const TOKEN_VAR: &str = "BLOOMC_CLUSTER_TOKEN";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub cluster: String,
    pub token: String,
    /// The node instance, as the plan names it (`reporting[1]`).
    pub node: String,
    /// The digest of the program the node compiled (see [`digest`]).
    pub program: u64,
    /// Chosen at random by the node process when it starts. The coordinator admits one session per
    /// node: a reconnection carries the same one, while a second process for the node (or
    /// the node restarted) would run its feed again, and is refused.
    pub session: u64,
    /// Where the node listens for data from its peers (`host:port`); empty in a data
    /// connection's hello.
    pub listen: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Welcome {
    /// The node's number in the plan, and its bound on ticks (the coordination is in the
    /// program the node rewrote, which the digest covers).
    Accepted {
        me: usize,
        max_ticks: u64,
        /// The ordering service every node uses.
        order: OrderAt,
        /// A random number naming this run, so that its order in ZooKeeper is its own.
        run: u64,
    },
    /// The embedded ordering service admitted the connection (`order/sequencer.rs`): every
    /// request on it is a [`Call::Position`].
    Sequencing,
    Refused(String),
}

/// Where the nodes of a run find its ordering service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderAt {
    /// The run orders no group's batches, so it has no ordering service.
    None,
    /// The embedded one, a `bloomc sequencer` process listening at `host:port`.
    Sequencer(String),
    /// Apache ZooKeeper at `host:port`.
    ZooKeeper(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub seq: u64,
    pub call: Call,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Call {
    /// Every node's data address, once every node has said hello (`Reply::Peers`), or
    /// `Reply::NotYet`.
    Peers,
    /// The position of a batch in a sequenced group's order: the one call the embedded
    /// ordering service answers (`order/sequencer.rs`), and one the coordinator refuses.
    Position { group: String, batch: BatchId },
    /// The node is idle: its counters, for the detection of the end of the run
    /// (`coordinator.rs`), and the last round it heard of.
    Idle(Counters),
    /// The node is busy: is the run still on?
    Ping,
    /// The node finished: its report.
    Done(Box<NodeReport>),
    /// The node failed: why.
    Failed(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    Peers(Vec<String>),
    NotYet,
    Position(u64),
    /// The run is over (every node idle, nothing in flight), or not yet: the round the
    /// coordinator is collecting now.
    Idle {
        over: bool,
        round: u64,
    },
    Ack,
    /// The run was stopped (another node failed): why.
    Abort(String),
}

/// What an idle node tells the coordinator (see `coordinator.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Data frames this node has sent and received (each once, however often resent).
    pub sent: u64,
    pub received: u64,
    /// Ticks run so far: a node that ran one since its last report was not idle throughout.
    pub ticks: u64,
    /// The latest round of the coordinator's this node heard of before it read these
    /// counters.
    pub round: u64,
}

/// The receiver's answer to a data connection's hello.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerWelcome {
    /// The number of the last frame it has from this sender (0: none).
    Accepted {
        have: u64,
    },
    Refused(String),
}

/// Facts (and seal punctuations) from one node to another: what one of the sender's ticks
/// sends to this receiver, numbered per (sender, receiver) from 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataFrame {
    pub seq: u64,
    pub messages: Vec<(CollectionId, Payload)>,
    /// For a receiver in a sequenced group: the batch's position in the group's order.
    pub position: Option<u64>,
}

/// The receiver has every frame up to this number.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Ack(pub u64);

/// The frame codec with a size limit.
pub fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(max_frame).new_codec()
}

fn options(max_frame: usize) -> impl Options {
    bincode::DefaultOptions::new().with_limit(max_frame as u64)
}

/// Encodes a frame's body. It is encoded without the limit (the same format: a limit changes
/// no byte), then checked, so that an oversized frame gets the message that says what to do
/// rather than bincode's size-limit error.
pub fn encode<T: Serialize>(x: &T, max_frame: usize) -> Result<bytes::Bytes, String> {
    let body = bincode::DefaultOptions::new().serialize(x).map_err(|e| format!("cannot encode a frame: {e}"))?;
    if body.len() > max_frame {
        return Err(format!(
            "a frame of {} bytes exceeds the limit of {max_frame} bytes (raise `max_frame` in the cluster file)",
            body.len()
        ));
    }
    Ok(body.into())
}

/// Decodes a frame's body; the limit also bounds what a malformed length inside it can
/// make the decoder allocate.
pub fn decode<T: DeserializeOwned>(body: &[u8], max_frame: usize) -> Result<T, String> {
    options(max_frame).deserialize(body).map_err(|e| format!("malformed frame ({} bytes): {e}", body.len()))
}

/// A digest of a program's sources and of options given as (name, value) pairs, so the
/// coordinator and the nodes refuse a node that compiled or would feed something else.
pub fn digest(source: &[u8], options: &[(String, String)]) -> u64 {
    use differential_dataflow::hashable::Hashable;
    (source, options).hashed()
}

#[cfg(test)]
mod tests {
    use super::{decode, encode};

    #[test]
    fn an_oversized_frame_says_to_raise_max_frame_and_a_fitting_one_round_trips() {
        let big = vec![7u64; 100];
        let err = encode(&big, 64).err().unwrap_or_default();
        assert!(err.contains("exceeds the limit of 64 bytes") && err.contains("raise `max_frame`"), "{err}");
        let body = encode(&big, 4096).map_err(|e| e.to_string());
        let back: Result<Vec<u64>, String> = body.and_then(|b| decode(&b, 4096));
        assert_eq!(back, Ok(big));
    }
}
