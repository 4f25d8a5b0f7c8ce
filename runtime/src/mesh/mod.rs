//! A node in its own process, and its data plane: it sends facts straight to the node they
//! are for, over TCP (`outbound.rs`), and receives them on its own listener (`inbound.rs`).
//! No process relays facts for another. The coordinator (`coordinator.rs`, reached over the
//! control connection of `control.rs`) only admits nodes, tells them each other's addresses
//! and the ordering service's (which orders the batches of sequenced groups: `order/`), and
//! detects the end of the run from the counters idle nodes report.
//!
//! Delivery. Each tick, a node hands the messages of the tick to [`Mesh::send`], which makes
//! one numbered [`DataFrame`] per receiving node. A receiver in a sequenced group (`order`)
//! gets one frame per batch, tagged with the batch's position in the group's order, which the
//! producer asked the ordering service for; every replica of the group gets a frame for every
//! batch, empty or not, and takes the batches in position order, one per settled tick, so the
//! replicas take the same batches in the same order. Other receivers put a frame's messages
//! in their inbox, taken at the start of their next tick, as in one process.

mod inbound;
mod journal;
mod local;
mod outbound;

use crate::control::{unexpected, Embedded, Joined, Remote};
use crate::network::run_node;
use crate::order::{BatchId, OrderService};
use crate::plan::NodePlan;
use crate::transport::{Inbox, Payload, Transport};
use crate::wire::{encode, Call, Counters, DataFrame, Hello, OrderAt, Reply};
use bloomc_compiler::ir::{CollectionId, Program};
use local::Shared;
use outbound::PATIENCE;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A replicated group whose batches are ordered: its first node, instance count and name.
struct Sequenced {
    first: usize,
    count: usize,
    name: String,
}

/// This node's side of the network: the [`Transport`] its node loop runs over.
pub(crate) struct Mesh {
    me: usize,
    shared: Arc<Shared>,
    control: Arc<Remote>,
    order: Mutex<Box<dyn OrderService>>,
    sequenced: Vec<Sequenced>,
    /// Per receiving node: the frames to send it, and the number of the last one.
    outbound: Vec<outbound::Queue>,
    max_frame: usize,
    batches: Mutex<u64>,
    last_ping: Mutex<Instant>,
}

impl Mesh {
    fn counters(&self) -> Result<Counters, String> {
        let l = self.shared.lock();
        if let Some(f) = &l.failure {
            return Err(f.clone());
        }
        Ok(Counters { sent: l.sent, received: l.received, ticks: l.takes, round: l.round })
    }

    /// Asks the coordinator whether the run goes on, at most every 100 ms: a busy node
    /// learns so that another node failed.
    fn ping(&self) -> Result<(), String> {
        let mut last = self.last_ping.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.elapsed() < Duration::from_millis(100) {
            return Ok(());
        }
        *last = Instant::now();
        match self.control.call(Call::Ping)? {
            Reply::Ack => Ok(()),
            r => Err(unexpected(&r)),
        }
    }

    /// Waits, idle, until the run is over: for a node that stopped (`--max-ticks`), which
    /// must go on counting what reaches it until the end.
    fn finish(&self) -> Result<(), String> {
        while !self.shared.lock().over {
            self.wait(self.me)?;
        }
        Ok(())
    }
}

impl Transport for Mesh {
    fn take(&self, _me: usize, tick: u64, settled: bool) -> Result<(Inbox, bool), String> {
        self.ping()?;
        self.shared.take(tick, settled)
    }

    fn send(&self, messages: Vec<(usize, CollectionId, Payload)>) -> Result<(), String> {
        let mut by_dest: BTreeMap<usize, Inbox> = BTreeMap::new();
        for (to, input, payload) in messages {
            by_dest.entry(to).or_default().push((input, payload));
        }
        let mut frames: Vec<(usize, Inbox, Option<u64>)> = Vec::new();
        for g in &self.sequenced {
            let range = g.first..g.first + g.count;
            if !by_dest.keys().any(|to| range.contains(to)) {
                continue;
            }
            let seq = {
                let mut b = self.batches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                *b += 1;
                *b
            };
            let batch = BatchId { producer: self.me as u32, seq };
            let at = self.order.lock().unwrap_or_else(std::sync::PoisonError::into_inner).position(&g.name, batch)?;
            for to in range {
                frames.push((to, by_dest.remove(&to).unwrap_or_default(), Some(at)));
            }
        }
        frames.extend(by_dest.into_iter().map(|(to, m)| (to, m, None)));
        let count = frames.len() as u64;
        for (to, messages, position) in frames {
            let q = self.outbound.get(to).ok_or("internal error: a message to no node")?;
            let seq = q.next();
            let body = encode(&DataFrame { seq, messages, position }, self.max_frame)?;
            q.push(seq, body)?;
        }
        self.shared.lock().sent += count;
        Ok(())
    }

    fn wait(&self, _me: usize) -> Result<bool, String> {
        let mut pause = Duration::from_millis(1);
        loop {
            if self.shared.lock().has_work() {
                return Ok(false);
            }
            let counters = self.counters()?;
            let (over, round) = match self.control.call(Call::Idle(counters))? {
                Reply::Idle { over, round } => (over, round),
                r => return Err(unexpected(&r)),
            };
            let mut l = self.shared.lock();
            l.round = round;
            if over {
                l.over = true;
                return Ok(true);
            }
            // Woken early by a frame that arrives.
            let (l, _) = self.shared.wake.wait_timeout(l, pause).unwrap_or_else(std::sync::PoisonError::into_inner);
            drop(l);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    fn stop(&self, _me: usize, taken: u64) -> Result<(), String> {
        self.shared.stop(taken);
        Ok(())
    }
}

/// The replicated groups this run sequences, with their names.
fn sequenced(p: &Program, plans: &[NodePlan]) -> Vec<Sequenced> {
    let resolved = crate::coordination::operators(p, plans);
    let name = |first: usize| -> String {
        let group = plans.get(first).and_then(|x| x.group);
        p.system
            .iter()
            .flat_map(|s| s.groups.iter())
            .find(|g| Some(g.id) == group)
            .map_or_else(String::new, |g| g.name.clone())
    };
    resolved.sequenced.iter().map(|&(first, count)| Sequenced { first, count, name: name(first) }).collect()
}

/// How a node process reaches the others.
pub struct NodeOptions {
    /// The coordinator's address.
    pub coordinator: String,
    /// Where to listen for data (`host:port`; port 0 for a free one).
    pub listen: String,
    pub max_frame: usize,
    /// A delay this node adds to every data frame it sends, and twice over to every request
    /// to the ordering service (a round trip): a model of a slower network for experiments.
    pub link_delay: Duration,
    /// The directory of the node's journal (`journal.rs`): with one, a node restarted after
    /// a crash recovers by replay. It should be private to the user running the nodes.
    pub journal: Option<std::path::PathBuf>,
}

/// Runs the node `hello.node` of `plans` in this process: listens for data, joins the
/// coordinator, runs, and sends the coordinator its report.
pub fn node_process(p: Program, plans: Vec<NodePlan>, mut hello: Hello, node: &NodeOptions) -> Result<(), String> {
    let NodeOptions { coordinator, listen, max_frame, link_delay, journal } = node;
    let (max_frame, link_delay) = (*max_frame, *link_delay);
    let name = hello.node.clone();
    let Some(local) = plans.iter().position(|x| x.node_name == name) else {
        let names: Vec<&str> = plans.iter().map(|x| x.node_name.as_str()).collect();
        return Err(format!("the program has no node `{name}`; its nodes are {}", names.join(", ")));
    };
    let (listener, mut journal) = listen_and_recover(&name, listen, journal.as_deref())?;
    hello.listen = listener.local_addr().map_err(|e| format!("node `{name}`: {e}"))?.to_string();
    if let Some((j, r)) = journal.as_mut().filter(|(_, r)| r.listen.is_none()) {
        j.listen(&hello.listen)?;
        r.listen = Some(hello.listen.clone());
    }
    eprintln!("node {name}: listening for data on {}", hello.listen);
    let (remote, joined) = Remote::connect(coordinator, hello.clone(), max_frame, PATIENCE)?;
    let Joined { me, options, order, run } = joined;
    if me != local {
        return Err(format!("the coordinator numbers node `{name}` {me}, and this program numbers it {local}"));
    }
    let control = Arc::new(remote);
    let result = (|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the node's runtime: {e}"))?;
        let shared = Arc::new(Shared::new(plans.len(), journal.take()));
        let names: Vec<String> = plans.iter().map(|x| x.node_name.clone()).collect();
        let inbound = inbound::Inbound {
            hello: hello.clone(),
            names: names.clone(),
            max_frame,
            shared: shared.clone(),
            gate: Arc::new(crate::admission::Gate::new(format!("node {name}"), Arc::new(|l| eprintln!("{l}")))),
        };
        inbound.start(&rt, listener)?;
        let outbound = links(rt.handle(), &peers(&control)?, &names, &hello, &shared, max_frame, link_delay);
        let sequenced = sequenced(&p, &plans);
        let order: Box<dyn OrderService> = match sequenced.is_empty() {
            true => Box::new(Unordered),
            false => ordering(&order, run, &hello, max_frame)?,
        };
        let mesh = Arc::new(Mesh {
            me,
            shared: shared.clone(),
            control: control.clone(),
            order: Mutex::new(Box::new(Delayed { inner: order, delay: link_delay * 2 })),
            sequenced,
            outbound,
            max_frame,
            batches: Mutex::new(0),
            last_ping: Mutex::new(Instant::now()),
        });
        let mut report = run_node(p, plans, me, mesh.clone(), &options)?;
        mesh.finish()?;
        let l = shared.lock();
        report.undelivered = l.undelivered;
        report.frames_from =
            names.iter().zip(&l.frames_from).filter(|(_, n)| **n > 0).map(|(s, n)| (s.clone(), *n)).collect();
        drop(l);
        Ok::<_, String>(report)
    })();
    match result {
        Ok(report) => match control.call(Call::Done(Box::new(report)))? {
            Reply::Ack => Ok(()),
            r => Err(unexpected(&r)),
        },
        Err(e) => {
            // The coordinator learns why (unless it is the coordinator that is gone).
            let _ = control.call(Call::Failed(e.clone()));
            Err(e)
        }
    }
}

/// Binds the node's data listener: where its journal says its previous process listened
/// (so its peers find it), else at `listen`; opens the journal in `dir`, if any, and says
/// what it recovers.
fn listen_and_recover(
    name: &str,
    listen: &str,
    dir: Option<&std::path::Path>,
) -> Result<(std::net::TcpListener, Option<(journal::Journal, journal::Recovered)>), String> {
    let journal = dir.map(|dir| journal::Journal::open(dir, name)).transpose()?;
    let listen = journal.as_ref().and_then(|(_, r)| r.listen.clone()).unwrap_or_else(|| listen.to_string());
    let listener =
        std::net::TcpListener::bind(&listen).map_err(|e| format!("node `{name}` cannot listen on {listen}: {e}"))?;
    if let Some((_, r)) = journal.as_ref().filter(|(_, r)| !r.took.is_empty() || !r.frames.is_empty()) {
        eprintln!(
            "node {name}: recovering from its journal: {} ticks to replay, {} frames received",
            r.took.len(),
            r.frames.len()
        );
    }
    Ok((listener, journal))
}

/// One outbound queue per node of the run, to the address `peers` gives it.
fn links(
    rt: &tokio::runtime::Handle,
    peers: &[String],
    names: &[String],
    hello: &Hello,
    shared: &Arc<Shared>,
    max_frame: usize,
    delay: Duration,
) -> Vec<outbound::Queue> {
    let mut out_hello = hello.clone();
    out_hello.listen = String::new();
    peers
        .iter()
        .enumerate()
        .map(|(to, addr)| {
            let link = outbound::Link {
                peer: names.get(to).cloned().unwrap_or_default(),
                addr: addr.clone(),
                hello: out_hello.clone(),
                max: max_frame,
                shared: shared.clone(),
                drop_every: None,
                delay,
                patience: PATIENCE,
            };
            outbound::Queue::new(rt, link)
        })
        .collect()
}

/// The run's ordering service: the embedded one at `addr` (`order/sequencer.rs`), or
/// ZooKeeper at `addr`, where the run's order lives under `/bloomc/run-RUN` (a random number
/// the coordinator chose).
fn ordering(at: &OrderAt, run: u64, hello: &Hello, max_frame: usize) -> Result<Box<dyn OrderService>, String> {
    Ok(match at {
        OrderAt::None => {
            return Err("this node orders batches, and the coordinator named no ordering service".to_string())
        }
        OrderAt::Sequencer(addr) => {
            let mut hello = hello.clone();
            hello.listen = String::new();
            Box::new(Embedded(Remote::sequencer(addr, hello, max_frame, PATIENCE)?))
        }
        OrderAt::ZooKeeper(addr) => {
            let root = format!("/bloomc/run-{run:016x}");
            Box::new(crate::order::zookeeper::ZkOrder::connect(addr, &root, PATIENCE)?)
        }
    })
}

/// The ordering service of a node that sends no batch to a sequenced group: never asked.
struct Unordered;

impl OrderService for Unordered {
    fn position(&mut self, group: &str, _: BatchId) -> Result<u64, String> {
        Err(format!("this node was told it orders no batches, yet it sends one to `{group}`"))
    }
}

/// An ordering service behind a slower network: `delay` before each request
/// (`--link-delay-ms`, twice over: a round trip).
struct Delayed {
    inner: Box<dyn OrderService>,
    delay: Duration,
}

impl OrderService for Delayed {
    fn position(&mut self, group: &str, batch: BatchId) -> Result<u64, String> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.inner.position(group, batch)
    }
}

/// Every node's data address, once every node has joined.
fn peers(control: &Remote) -> Result<Vec<String>, String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match control.call(Call::Peers)? {
            Reply::Peers(all) => return Ok(all),
            Reply::NotYet if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Reply::NotYet => return Err(format!("not every node joined the run within {PATIENCE:?}")),
            r => return Err(unexpected(&r)),
        }
    }
}
