//! A real Apache ZooKeeper server for tests: Debian's package (`apt-get install zookeeper`,
//! which `.ci/run` does), started standalone on a free loopback port with its data in a
//! private temporary directory (mode 0700, unpredictable name), stopped and deleted on drop.
//!
//! If ZooKeeper is not installed, [`server`] fails the test with a message saying how to
//! install it, unless `BLOOMC_SKIP_ZOOKEEPER=1` is set, when it prints a loud notice and the
//! test returns early.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Debian's server jar; its manifest names the jars it needs.
const JAR: &str = "/usr/share/java/zookeeper.jar";
/// How long a start may take before the test fails (a JVM's start on a busy machine).
const START_WITHIN: Duration = Duration::from_secs(60);

/// One test at a time talks to its own server: a JVM each at once would crowd the machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct ZkServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    _turn: MutexGuard<'static, ()>,
}

/// A started server, or `None` (after a loud notice) when the opt-out is set and ZooKeeper
/// is missing. Fails the test when ZooKeeper is missing otherwise, or when it does not start.
pub fn server() -> Option<ZkServer> {
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(missing) = installed() {
        if std::env::var("BLOOMC_SKIP_ZOOKEEPER").as_deref() == Ok("1") {
            eprintln!(
                "\n!!!! BLOOMC_SKIP_ZOOKEEPER=1: SKIPPING a ZooKeeper test ({missing}).\n\
                 !!!! The ZooKeeper ordering backend is NOT tested in this run.\n"
            );
            return None;
        }
        panic!(
            "{missing}. These tests need a real ZooKeeper server: install Debian's package with \
             `apt-get install --no-install-recommends zookeeper` (see .ci/run), or set \
             BLOOMC_SKIP_ZOOKEEPER=1 to skip them knowingly"
        );
    }
    match ZkServer::start(turn) {
        Ok(server) => Some(server),
        Err(e) => panic!("cannot start a ZooKeeper server for the test: {e}"),
    }
}

fn installed() -> Result<(), String> {
    if !Path::new(JAR).is_file() {
        return Err(format!("ZooKeeper is not installed ({JAR} is missing)"));
    }
    match Command::new("java").arg("-version").stderr(Stdio::null()).status() {
        Ok(status) if status.success() => Ok(()),
        _ => Err("`java` does not run, and ZooKeeper needs it".to_string()),
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("no free loopback port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("no free loopback port: {e}"))
}

impl ZkServer {
    fn start(turn: MutexGuard<'static, ()>) -> Result<ZkServer, String> {
        let dir = tempfile::Builder::new()
            .prefix("bloomc-zk-")
            .tempdir()
            .map_err(|e| format!("cannot create a private temporary directory: {e}"))?;
        let port = free_port()?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
        // A short tick lets sessions time out in seconds (2 to 20 ticks), as tests want.
        let config = format!(
            "tickTime=200\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\nmaxClientCnxns=0\n",
            data.display()
        );
        let config_path = dir.path().join("zoo.cfg");
        std::fs::write(&config_path, config).map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
        let mut server = ZkServer { dir, port, child: None, _turn: turn };
        server.start_again()?;
        Ok(server)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Starts the server (again) on the same port and data directory, and waits until it
    /// serves requests.
    pub fn start_again(&mut self) -> Result<(), String> {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("cannot open the server log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("cannot open the server log: {e}"))?;
        let child = Command::new("java")
            .args(["-Xmx256m", "-Dzookeeper.admin.enableServer=false", "-cp", JAR])
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(self.dir.path().join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot run java: {e}"))?;
        self.child = Some(child);
        self.wait_serving()
    }

    /// Kills the server process at once (SIGKILL, as a crash), if it runs.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_serving(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_WITHIN;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("the server exited ({status}); {}", self.log_tail()));
                }
            }
            if self.serving() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("the server did not serve within {START_WITHIN:?}; {}", self.log_tail()))
    }

    /// Whether the server answers the `srvr` four-letter command as a serving standalone.
    fn serving(&self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream.write_all(b"srvr").is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.contains("Mode: standalone")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines.get(lines.len().saturating_sub(15)..).unwrap_or_default();
        format!("server log tail:\n{}", tail.join("\n"))
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        self.stop();
    }
}
