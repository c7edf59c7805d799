//! Running the crate's examples from tests: the built binary (built first if this run did not
//! build it), and a started example whose output is read line by line (included with `#[path]`).
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

/// How long a started example may take to print what a test waits for before the test fails
/// (a bound against a hang, not a timing).
pub const PATIENCE: Duration = Duration::from_secs(120);

/// The built example `name`, built first when this run did not build it.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let dir = std::env::current_exe()
        .unwrap()
        .parent() // deps
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        BUILT.get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--examples", "--all-features", "--manifest-path"])
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cargo build --examples failed");
        });
    }
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A started example, killed when dropped; its output read line by line on threads.
pub struct Server {
    pub child: Child,
    lines: mpsc::Receiver<(bool, String)>,
    pub seen: Vec<(bool, String)>,
}

impl Server {
    pub fn start(name: &str, args: &[&str]) -> Server {
        Self::start_with_env(name, args, &[])
    }

    pub fn start_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        // The quickstart keeps its state in one default file (target/quickstart.db) that one
        // process holds at a time: tests run side by side, so each names its own state.
        let own_state = ["--memory", "--data", "--redis"];
        let memory: &[&str] = if name == "quickstart" && !args.iter().any(|a| own_state.contains(a))
        {
            &["--memory"]
        } else {
            &[]
        };
        let mut child = Command::new(example(name))
            .args(args)
            .args(memory)
            .envs(env.iter().copied())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        fn pump(out: impl Read + Send + 'static, err: bool, tx: mpsc::Sender<(bool, String)>) {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((err, line)).is_err() {
                        break;
                    }
                }
            });
        }
        pump(child.stdout.take().unwrap(), false, tx.clone());
        pump(child.stderr.take().unwrap(), true, tx);
        Server {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads until a line (of stderr when `err`) contains `what`; returns that line.
    pub fn wait_for(&mut self, err: bool, what: &str) -> String {
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok((e, line)) => {
                    self.seen.push((e, line.clone()));
                    if e == err && line.contains(what) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {what:?}; the example printed {:#?}",
                    self.seen
                ),
            }
        }
    }

    pub fn printed(&self, err: bool) -> Vec<&str> {
        self.seen
            .iter()
            .filter(|(e, _)| *e == err)
            .map(|(_, l)| l.as_str())
            .collect()
    }
}

impl Server {
    /// Sends the process `signal` (`INT`, `TERM`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// The address it serves, from its first line.
    pub fn base(&mut self) -> String {
        let line = self.wait_for(false, "Serving API ");
        line.split(" on http://").nth(1).unwrap().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
