//! What the coordinator of a run across processes holds for connections it has not admitted:
//! a first frame of at most `wire::HELLO_LIMIT` bytes, at most `admission::PENDING_LIMIT`
//! connections waiting for their hello, refusals logged at a bounded rate, and a failed
//! `accept` (out of file descriptors) retried rather than ending the coordinator's listening
//! (every node's data listener shares these limits: `runtime/src/admission.rs`). Also the cluster file's
//! checked values (`max_frame`, an empty `token`) and a refusal that does not name the
//! cluster. Loopback only; every process is waited for with a time limit.

mod common;

use common::PIPE;

use bloomc_runtime::admission::PENDING_LIMIT;
use bloomc_runtime::wire::{decode, encode, Hello, Welcome, DEFAULT_MAX_FRAME, HELLO_LIMIT, TOKEN_VAR};
use common::procs::{finish, scratch, spawn};
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

struct Hub {
    child: Child,
    err: std::io::BufReader<ChildStderr>,
    port: u16,
    file: String,
    cluster: String,
}

/// Starts a coordinator for `PIPE` with `--cluster` on a free port, with at most `files` open file
/// descriptors when given; returns once it listens.
fn coordinator(name: &str, files: Option<u32>) -> Hub {
    let dir = scratch(name, &[("pipe.bl", PIPE)]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let cluster = dir.join("cluster.toml");
    std::fs::write(&cluster, format!("cluster = \"lab\"\ncoordinator = \"127.0.0.1:{port}\"\ntoken = \"s3cret\"\n"))
        .expect("write");
    let (file, cluster) = (dir.join("pipe.bl").display().to_string(), cluster.display().to_string());
    let limit = files.map_or(String::new(), |n| format!("ulimit -n {n} && "));
    let mut child = Command::new("sh")
        .args(["-c", &format!(r#"{limit}exec "$BLOOMC" run "$FILE" --cluster "$CLUSTER""#)])
        .env("BLOOMC", env!("CARGO_BIN_EXE_bloomc"))
        .env("FILE", &file)
        .env("CLUSTER", &cluster)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh starts");
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("the coordinator speaks");
    assert!(line.contains("waiting for 3 nodes"), "{line}");
    Hub { child, err, port, file, cluster }
}

impl Hub {
    /// Runs the three nodes by hand; returns the coordinator's stderr (past its first line) and
    /// stdout once the run is over.
    fn run_nodes(mut self) -> (String, String) {
        let nodes: Vec<Child> = ["src[0]", "src[1]", "sink"]
            .iter()
            .map(|n| spawn(&["node", &self.file, "--name", n, "--cluster", &self.cluster], &[(TOKEN_VAR, "s3cret")]))
            .collect();
        for node in nodes {
            let (code, _, err) = finish(node, Duration::from_secs(60));
            assert_eq!(code, Some(0), "{err}");
        }
        let mut rest = String::new();
        self.err.read_to_string(&mut rest).expect("coordinator stderr");
        let (code, out, _) = finish(self.child, Duration::from_secs(60));
        assert_eq!(code, Some(0), "{rest}");
        assert!(out.contains("-- sink.all: 300 facts emitted"), "{out}");
        (rest, out)
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the coordinator");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s
}

/// Sends `bytes` and returns the body of the hub's first answer (empty if it said nothing).
fn poke(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = connect(port);
    let _ = s.write_all(bytes);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer.get(4..).map(<[u8]>::to_vec).unwrap_or_default()
}

fn refused(answer: &[u8]) -> String {
    match decode::<Welcome>(answer, DEFAULT_MAX_FRAME) {
        Ok(Welcome::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_stranger_gets_a_small_first_frame_and_a_bounded_queue() {
    let hub = coordinator("coordinator-limits-pending", None);
    // A first frame announced at 1 MiB (well under `max_frame`) is refused before it is read.
    let mut big = (1u32 << 20).to_be_bytes().to_vec();
    big.extend_from_slice(&[0; 1024]);
    let why = refused(&poke(hub.port, &big));
    assert!(why.contains(&format!("a hello has at most {HELLO_LIMIT} bytes")), "{why}");
    // A hello naming another cluster is refused without naming this one.
    let hello = Hello {
        cluster: "other".into(),
        token: "x".into(),
        node: "sink".into(),
        program: 0,
        session: 1,
        listen: String::new(),
    };
    let mut frame = Vec::new();
    let body = encode(&hello, DEFAULT_MAX_FRAME).expect("encode");
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    assert_eq!(refused(&poke(hub.port, &frame)), "it names another cluster");
    // Connections that say nothing fill the queue; the next one is closed at once, unanswered.
    let idle: Vec<TcpStream> = (0..PENDING_LIMIT).map(|_| connect(hub.port)).collect();
    std::thread::sleep(Duration::from_millis(300));
    assert!(poke(hub.port, &frame).is_empty());
    drop(idle);
    // A refusal a second later brings the count of those not logged.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(refused(&poke(hub.port, &frame)), "it names another cluster");
    let (log, _) = hub.run_nodes();
    assert!(log.contains(&format!("{PENDING_LIMIT} connections are already waiting for their hello")), "{log}");
    assert!(log.contains("more refused connections were not logged"), "{log}");
    // 66 refusals, of which at most 5 a second are logged (the test takes a few seconds).
    let logged = log.matches("refused a connection").count();
    assert!(logged <= 20, "{logged} refusals logged: {log}");
    assert!(!log.contains("`lab`") && !log.contains("cluster `"), "{log}");
}

#[test]
fn the_coordinator_keeps_listening_after_accept_fails() {
    // With 32 file descriptors, connections that say nothing use up the rest, and `accept`
    // fails (EMFILE); once they close, the nodes are accepted and the run completes.
    let hub = coordinator("coordinator-limits-accept", Some(32));
    let idle: Vec<TcpStream> = (0..40).map(|_| connect(hub.port)).collect();
    std::thread::sleep(Duration::from_millis(500));
    drop(idle);
    let (log, _) = hub.run_nodes();
    assert!(log.contains("coordinator: cannot accept a connection") && log.contains("trying again in"), "{log}");
}

#[test]
fn cluster_files_with_an_unusable_max_frame_or_an_empty_token_are_refused() {
    let dir = scratch("coordinator-limits-files", &[("pipe.bl", PIPE)]);
    let file = dir.join("pipe.bl").display().to_string();
    let cases = [
        ("max_frame = 18446744073709551615", "out of range: give a number of bytes from 4096 to 1073741824"),
        ("max_frame = 10", "out of range"),
        ("token = \"\"", "`token` is empty"),
    ];
    for (i, (line, why)) in cases.iter().enumerate() {
        let path = dir.join(format!("c{i}.toml"));
        std::fs::write(&path, format!("cluster = \"x\"\ncoordinator = \"127.0.0.1:9\"\n{line}\n")).expect("write");
        let path = path.display().to_string();
        for args in [vec!["node", &file, "--name", "sink", "--cluster", &path], vec!["run", &file, "--cluster", &path]]
        {
            let out = common::bloomc(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{line}: {err}");
            assert!(err.contains(why) && err.contains(&format!("c{i}.toml")), "{line}: {err}");
        }
    }
}
