//! The ad-tracking network on Hydro's DFIR (`dfir_rs` 0.16), for `benches/network.rs`:
//! every node a DFIR graph on its own thread, nodes connected by `std::sync::mpsc`
//! channels. Ad servers generate their clicks with the bloomc feed of their node (the same
//! generator, the same batches of 50, in their own thread, as bloomc's ad servers do) and
//! send every batch to every replica. A replica takes whatever has arrived, runs one tick
//! over it (as a bloomc node takes its inbox in one tick): `fold_keyed::<'static>` counts
//! clicks per (ad, campaign), and a `join` answers the analyst's questions (every counted
//! campaign of the asked ad, poor or not). The analyst sends its questions (its node's
//! feed) to every replica and takes the answers. The caches of `adtrack.bl` are left out
//! (the analyst asks the replicas directly); they carry only the 200 questions.

use super::int;
use bloomc_runtime::feed::Feed;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Instant;

type Click = (i64, i64, i64, i64);
/// (question, ad, campaign, poor, replica).
type Answer = (i64, i64, i64, bool, usize);

enum Msg {
    Clicks(Vec<Click>),
    Ask(Vec<(i64, i64)>),
}

/// What the DFIR network did: the time from its start to the last replica's last tick,
/// each replica's final count per (ad, campaign), and the answers the analyst received.
pub struct Run {
    pub seconds: f64,
    pub counts: Vec<BTreeMap<(i64, i64), u64>>,
    pub answers: usize,
}

/// The rows of tick `t` of a node's feed, as tuples of up to four integers.
fn batch(feed: &Feed, instance: u32, t: u64) -> Vec<Click> {
    let mut out = Vec::new();
    let mut errors = 0;
    feed.visit(t, instance, (0, 1), &mut errors, &mut |r| {
        out.push((int(r.first()), int(r.get(1)), int(r.get(2)), int(r.get(3))));
    });
    out
}

/// An ad server: a graph over its feed's ticks, each batch sent to every replica.
fn adserver(feed: Feed, instance: u32, replicas: Vec<Sender<Msg>>) {
    let ticks = feed.ticks();
    let mut flow = dfir_rs::dfir_syntax! {
        source_iter(0..ticks)
            -> map(|t: u64| batch(&feed, instance, t))
            -> for_each(|b: Vec<Click>| {
                for r in &replicas {
                    let _ = r.send(Msg::Clicks(b.clone()));
                }
            });
    };
    flow.run_available_sync();
}

/// The analyst: a graph that sends its questions to every replica; then it counts the
/// answers until every replica is done.
fn analyst(feed: Feed, instance: u32, replicas: Vec<Sender<Msg>>, answers: Receiver<Answer>) -> usize {
    let ticks = feed.ticks();
    let mut flow = dfir_rs::dfir_syntax! {
        source_iter(0..ticks)
            -> map(|t: u64| batch(&feed, instance, t).into_iter().map(|(qid, id, _, _)| (qid, id)).collect())
            -> for_each(|asks: Vec<(i64, i64)>| {
                for r in &replicas {
                    let _ = r.send(Msg::Ask(asks.clone()));
                }
            });
    };
    flow.run_available_sync();
    drop(flow);
    answers.iter().count()
}

/// A replica: one tick per take of its inbox, until every sender is gone; then one more
/// tick (an empty batch wakes the fold) reads the final counts out. Returns the time of its
/// last tick with input and the counts.
fn replica(
    me: usize,
    inbox: Receiver<Msg>,
    out: Sender<Answer>,
    poor: u64,
    start: Instant,
) -> (f64, BTreeMap<(i64, i64), u64>) {
    let (clicks_in, clicks) = dfir_rs::util::unbounded_channel::<Vec<Click>>();
    let (asks_in, asks) = dfir_rs::util::unbounded_channel::<Vec<(i64, i64)>>();
    let last = Rc::new(RefCell::new(None::<BTreeMap<(i64, i64), u64>>));
    let kept = last.clone();
    let mut flow = dfir_rs::dfir_syntax! {
        counts = source_stream(clicks)
            -> flat_map(|b: Vec<Click>| b.into_iter())
            -> map(|(_, id, campaign, _): Click| ((id, campaign), ()))
            -> fold_keyed::<'static, (i64, i64), u64>(|| 0, |n: &mut u64, _: ()| *n += 1)
            -> tee();
        counts -> for_each(|(g, n): ((i64, i64), u64)| {
            if let Some(m) = kept.borrow_mut().as_mut() {
                m.insert(g, n);
            }
        });
        counts -> map(|((id, campaign), n): ((i64, i64), u64)| (id, (campaign, n))) -> [0]answer;
        source_stream(asks) -> flat_map(|b: Vec<(i64, i64)>| b.into_iter()) -> map(|(qid, id)| (id, qid)) -> [1]answer;
        answer = join::<'tick, 'tick>()
            -> for_each(|(id, ((campaign, n), qid)): (i64, ((i64, u64), i64))| {
                let _ = out.send((qid, id, campaign, n < poor, me));
            });
    };
    let mut seconds = 0.0;
    while let Ok(first) = inbox.recv() {
        for m in std::iter::once(first).chain(inbox.try_iter()) {
            let _ = match m {
                Msg::Clicks(b) => clicks_in.send(b).map_err(|_| ()),
                Msg::Ask(q) => asks_in.send(q).map_err(|_| ()),
            };
        }
        flow.run_tick_sync();
        seconds = start.elapsed().as_secs_f64();
    }
    *last.borrow_mut() = Some(BTreeMap::new());
    let _ = clicks_in.send(Vec::new());
    flow.run_tick_sync();
    let counts = last.borrow_mut().take().unwrap_or_default();
    (seconds, counts)
}

/// Runs the network: the ad servers' feeds (with their instances), the analyst's, and
/// `replicas` replicas with the threshold `poor`.
pub fn network(adservers: Vec<(Feed, u32)>, asker: (Feed, u32), replicas: usize, poor: u64) -> Run {
    let start = Instant::now();
    let (answers_out, answers) = channel::<Answer>();
    let mut inboxes = Vec::new();
    let mut threads = Vec::new();
    for me in 0..replicas {
        let (send, inbox) = channel::<Msg>();
        inboxes.push(send);
        let out = answers_out.clone();
        threads.push(std::thread::spawn(move || replica(me, inbox, out, poor, start)));
    }
    drop(answers_out);
    let servers: Vec<_> = adservers
        .into_iter()
        .map(|(feed, instance)| {
            let to = inboxes.clone();
            std::thread::spawn(move || adserver(feed, instance, to))
        })
        .collect();
    let (feed, instance) = asker;
    let to = inboxes.clone();
    drop(inboxes);
    let asking = std::thread::spawn(move || analyst(feed, instance, to, answers));
    for s in servers {
        let _ = s.join();
    }
    let mut run = Run { seconds: 0.0, counts: Vec::new(), answers: 0 };
    for t in threads {
        if let Ok((seconds, counts)) = t.join() {
            run.seconds = run.seconds.max(seconds);
            run.counts.push(counts);
        }
    }
    run.answers = asking.join().unwrap_or(0);
    run
}
