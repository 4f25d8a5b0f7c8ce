//! The `zookeeper` backend of the ordering service against a real ZooKeeper server (Debian's
//! package, started by the test on a loopback port): positions are dense per group, shared
//! by concurrent clients, stable across a client's restart, and survive a server crash in
//! the middle of a stream of requests.

mod zk_server;

use bloomc_runtime::order::zookeeper::ZkOrder;
use bloomc_runtime::order::{BatchId, OrderService};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bounds every client call, retries included.
const TIMEOUT: Duration = Duration::from_secs(30);

fn batch(producer: u32, seq: u64) -> BatchId {
    BatchId { producer, seq }
}

fn client(addr: &str, root: &str) -> ZkOrder {
    match ZkOrder::connect(addr, root, TIMEOUT) {
        Ok(order) => order,
        Err(e) => panic!("connect: {e}"),
    }
}

fn position(order: &mut ZkOrder, group: &str, b: BatchId) -> u64 {
    match order.position(group, b) {
        Ok(pos) => pos,
        Err(e) => panic!("position of {b:?} in {group}: {e}"),
    }
}

fn dense(positions: impl IntoIterator<Item = u64>, n: u64) {
    let all: Vec<u64> = positions.into_iter().collect();
    let set: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(set.len(), all.len(), "duplicate positions: {all:?}");
    assert_eq!(set, (0..n).collect(), "positions are not 0..{n}");
}

#[test]
fn positions_are_dense_per_group_and_groups_are_independent() {
    let Some(server) = zk_server::server() else { return };
    let mut order = client(&server.addr(), "/bloomc/test/dense");
    let mut a = Vec::new();
    let mut b = Vec::new();
    for seq in 0..20 {
        a.push(position(&mut order, "replicas", batch(1, seq)));
        if seq % 2 == 0 {
            b.push(position(&mut order, "other.group", batch(2, seq)));
        }
    }
    assert_eq!(a, (0..20).collect::<Vec<_>>(), "one client's batches in the order asked");
    assert_eq!(b, (0..10).collect::<Vec<_>>(), "a second group starts at 0");
    // Asking again answers the same position.
    assert_eq!(position(&mut order, "replicas", batch(1, 7)), 7);
    // Another run's root is another order.
    let mut other_run = client(&server.addr(), "/bloomc/test/dense2");
    assert_eq!(position(&mut other_run, "replicas", batch(1, 7)), 0);
}

#[test]
fn concurrent_producers_share_one_dense_order() {
    let Some(server) = zk_server::server() else { return };
    let (producers, per) = (4u32, 40u64);
    let addr = server.addr();
    let root = "/bloomc/test/concurrent";
    let threads: Vec<_> = (0..producers)
        .map(|p| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut order = client(&addr, root);
                let mine: Vec<u64> = (0..per).map(|s| position(&mut order, "g", batch(p, s))).collect();
                (order, mine)
            })
        })
        .collect();
    let mut clients = Vec::new();
    let mut all = Vec::new();
    for t in threads {
        let (order, mine) = t.join().unwrap_or_else(|_| panic!("a producer thread failed"));
        assert!(mine.windows(2).all(|w| w.first() < w.get(1)), "a producer's batches keep its order");
        all.extend(mine.iter().copied());
        clients.push((order, mine));
    }
    dense(all, u64::from(producers) * per);
    // Every client, asked about every batch (most of them another producer's), sees the same
    // order.
    let expected: Vec<Vec<u64>> = clients.iter().map(|(_, mine)| mine.clone()).collect();
    for (order, _) in &mut clients {
        for (p, mine) in expected.iter().enumerate() {
            let p = u32::try_from(p).unwrap_or(u32::MAX);
            for (s, &pos) in (0u64..).zip(mine) {
                assert_eq!(position(order, "g", batch(p, s)), pos);
            }
        }
    }
}

#[test]
fn a_restarted_client_gets_the_same_positions() {
    let Some(server) = zk_server::server() else { return };
    let root = "/bloomc/test/restart-client";
    let first: Vec<u64> = {
        let mut order = client(&server.addr(), root);
        (0..15).map(|s| position(&mut order, "g", batch(3, s))).collect()
    };
    // A fresh client (the producer's process restarted) asks again, twice (the second answer
    // comes from what the first lookup recorded), then asks for a new batch.
    for _ in 0..2 {
        let mut order = client(&server.addr(), root);
        let again: Vec<u64> = (0..15).rev().map(|s| position(&mut order, "g", batch(3, s))).collect();
        assert_eq!(again.into_iter().rev().collect::<Vec<_>>(), first);
    }
    let mut order = client(&server.addr(), root);
    assert_eq!(position(&mut order, "g", batch(3, 15)), 15);
}

/// Crashes the server (SIGKILL) while one producer is mid-stream, keeps it down for `down`,
/// starts it again on the same port and data directory, and checks the producer's positions
/// and a fresh client's view. Answers the number of sessions the producer opened.
fn crash_mid_stream(root: &'static str, down: Duration) -> Option<u64> {
    let mut server = zk_server::server()?;
    let addr = server.addr();
    let n = 120u64;
    let done = Arc::new(AtomicU64::new(0));
    let producer = {
        let (addr, done) = (addr.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut order = client(&addr, root);
            let mut got = Vec::new();
            for s in 0..n {
                got.push(position(&mut order, "g", batch(0, s)));
                done.store(s + 1, Ordering::SeqCst);
            }
            (got, order.sessions_opened())
        })
    };
    let deadline = Instant::now() + TIMEOUT;
    while done.load(Ordering::SeqCst) < n / 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let at_crash = done.load(Ordering::SeqCst);
    server.stop();
    std::thread::sleep(down);
    if let Err(e) = server.start_again() {
        panic!("restart: {e}");
    }
    let (got, sessions) = producer.join().unwrap_or_else(|_| panic!("the producer thread failed"));
    eprintln!(
        "server crashed after {at_crash} of {n} positions, down {down:?}; the client carried on \
         with {sessions} session(s)"
    );
    assert!(at_crash < n, "the crash came mid-stream");
    assert_eq!(got, (0..n).collect::<Vec<_>>());
    // A fresh client after the restart sees the same order.
    let mut order = client(&addr, root);
    for s in (0..n).step_by(7) {
        assert_eq!(position(&mut order, "g", batch(0, s)), s);
    }
    assert_eq!(position(&mut order, "g", batch(1, 0)), n);
    Some(sessions)
}

#[test]
fn a_server_crash_mid_stream_leaves_no_gap_or_duplicate() {
    // Down briefly: the client reconnects, most likely on the same session.
    crash_mid_stream("/bloomc/test/server-restart", Duration::from_millis(700));
}

#[test]
fn a_session_that_expires_during_an_outage_is_replaced() {
    // Down longer than the longest session the test server grants (20 ticks of 200 ms, and
    // the client gives up on it after 7/5 of that): the client opens a new session.
    if let Some(sessions) = crash_mid_stream("/bloomc/test/session-expiry", Duration::from_secs(7)) {
        assert!(sessions >= 2, "the expired session was replaced: {sessions} session(s)");
    }
}

#[test]
fn bad_names_and_unreachable_servers_are_errors() {
    let Some(server) = zk_server::server() else { return };
    let mut order = client(&server.addr(), "/bloomc/test/names");
    for bad in ["", "a/b", "..", "with space", "ünï"] {
        let err = order.position(bad, batch(0, 0));
        assert!(matches!(&err, Err(e) if e.contains("group name")), "{bad:?}: {err:?}");
    }
    assert_eq!(position(&mut order, "fine", batch(0, 0)), 0);
    for bad in ["relative", "/a//b", "/zookeeper/x"] {
        assert!(ZkOrder::connect(&server.addr(), bad, TIMEOUT).is_err(), "{bad:?}");
    }
    // Nothing listens on a port just freed: a clear error naming the address, in bounded time.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(1);
    let addr = format!("127.0.0.1:{port}");
    match ZkOrder::connect(&addr, "/bloomc/test/none", Duration::from_secs(2)) {
        Ok(_) => panic!("connected to {addr}, where nothing listens"),
        Err(e) => assert!(e.contains(&addr) && e.contains("zookeeper"), "{e}"),
    }
}

#[test]
fn positions_per_second_for_one_client() {
    let Some(server) = zk_server::server() else { return };
    let mut order = client(&server.addr(), "/bloomc/test/rate");
    let n = 500u64;
    let start = Instant::now();
    for s in 0..n {
        assert_eq!(position(&mut order, "g", batch(0, s)), s);
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "zookeeper order: {n} positions for one client in {secs:.2} s: {:.0} positions/s \
         (one multi round trip each, loopback, standalone server)",
        n as f64 / secs.max(1e-9)
    );
}
