//! The launcher of `bloomc run --processes`: it writes nothing to a shared temporary
//! directory (paths an attacker planted at its old predictable name are neither followed nor
//! touched), and its node processes never outlive it, however it ends. Loopback only; every
//! process is waited for with a time limit.

mod common;

use common::PIPE;

use common::procs::{finish, scratch};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A source that never runs out within the test's patience.
const ENDLESS: &str = "module Src { input feed_in(n: int); output out(n: int); out <= feed_in; }
module Sink { input got(n: int); table seen(n: int); output all(n: int); seen <= got; all <= seen; }
system S {
  node src: Src;
  node sink: Sink;
  feed src.feed_in from generate(rows: 100000000, seed: 1, batch: 1) { n: row() };
  src.out -> sink.got any;
}";

#[test]
fn nothing_planted_at_the_old_temporary_path_is_followed() {
    let dir = scratch("launcher-plant", &[("pipe.bl", PIPE)]);
    let file = dir.join("pipe.bl");
    // The launcher used `$TMPDIR/bloomc-<its pid>/cluster.toml`. A shell plants something
    // there under its own pid, then becomes the launcher with `exec`, keeping that pid.
    let plants = [
        // The directory is a symlink to a victim directory whose cluster.toml is a symlink
        // to a victim file.
        r#"ln -s "$VICTIM" "$TMPDIR/bloomc-$$""#,
        // The directory holds a FIFO where the file was written (opening it blocks).
        r#"mkdir "$TMPDIR/bloomc-$$" && mkfifo "$TMPDIR/bloomc-$$/cluster.toml""#,
        // The directory's name is a FIFO.
        r#"mkfifo "$TMPDIR/bloomc-$$""#,
    ];
    for (i, plant) in plants.iter().enumerate() {
        let tmp = dir.join(format!("tmp{i}"));
        let victim = dir.join(format!("victim{i}"));
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_dir_all(&victim);
        std::fs::create_dir_all(&tmp).expect("tmp");
        std::fs::create_dir_all(&victim).expect("victim");
        std::fs::write(victim.join("secret.txt"), "untouched").expect("write");
        std::os::unix::fs::symlink("secret.txt", victim.join("cluster.toml")).expect("symlink");
        let child = Command::new("sh")
            .args(["-c", &format!(r#"{plant} && exec "$BLOOMC" run "$FILE" --processes"#)])
            .env("TMPDIR", &tmp)
            .env("VICTIM", &victim)
            .env("BLOOMC", env!("CARGO_BIN_EXE_bloomc"))
            .env("FILE", &file)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh starts");
        let (code, out, err) = finish(child, Duration::from_secs(60));
        assert_eq!(code, Some(0), "{plant}: {err}");
        assert!(out.contains("-- sink.all: 300 facts emitted"), "{plant}: {out}");
        assert_eq!(std::fs::read_to_string(victim.join("secret.txt")).ok().as_deref(), Some("untouched"));
        let mut names: Vec<String> = std::fs::read_dir(&victim)
            .expect("victim")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["cluster.toml", "secret.txt"], "{plant}");
        assert!(std::fs::symlink_metadata(victim.join("cluster.toml")).expect("meta").file_type().is_symlink());
        // What was planted is still there, as it was: the launcher did not use the path.
        let planted: Vec<_> = std::fs::read_dir(&tmp).expect("tmp").map(|e| e.expect("entry").path()).collect();
        assert_eq!(planted.len(), 1, "{plant}: {planted:?}");
    }
}

/// Whether process `pid` has ended (it is gone, or a zombie nobody reaped yet).
fn ended(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn nodes_stop_when_their_launcher_is_killed() {
    let dir = scratch("launcher-killed", &[("endless.bl", ENDLESS)]);
    let file = dir.join("endless.bl").display().to_string();
    for signal in ["KILL", "TERM", "INT"] {
        let mut launcher = common::procs::spawn(&["run", &file, "--processes"], &[]);
        let mut err = std::io::BufReader::new(launcher.stderr.take().expect("stderr"));
        let mut pids = Vec::new();
        let mut line = String::new();
        while pids.len() < 2 && err.read_line(&mut line).is_ok_and(|n| n > 0) {
            let pid = line.split_once("(pid ").and_then(|(_, r)| r.trim().strip_suffix(')'));
            pids.extend(pid.filter(|_| line.starts_with("started node ")).map(str::to_string));
            line.clear();
        }
        assert_eq!(pids.len(), 2, "the launcher names both nodes' pids");
        std::thread::sleep(Duration::from_millis(500));
        let sent = Command::new("kill").args([&format!("-{signal}"), &launcher.id().to_string()]).status();
        assert!(sent.is_ok_and(|s| s.success()));
        let _ = launcher.wait();
        let start = Instant::now();
        while !pids.iter().all(|p| ended(p)) && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in &pids {
            if !ended(pid) {
                let _ = Command::new("kill").args(["-9", pid]).status();
                panic!("node {pid} outlived its launcher (SIG{signal}) by 10 s");
            }
        }
    }
}
