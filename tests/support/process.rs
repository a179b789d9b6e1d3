//! The real `agent-platform` binary as a child process, for what only a
//! process can show: signals, crashes, and several workers or API replicas.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// The binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_agent-platform");

/// A running child process, killed if dropped.
pub struct Process {
    child: Child,
    /// Its name in assertion messages.
    pub name: String,
}

impl Process {
    /// Starts `agent-platform <args>` with `env` on top of a quiet log level.
    pub fn start(name: &str, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut command = Command::new(BINARY);
        command
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("CHILD_RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("CHILD_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("start {name}: {error}"));
        Self {
            child,
            name: name.to_owned(),
        }
    }

    /// A worker on `database_url`, with fast heartbeats and polls.
    pub fn worker(name: &str, database_url: &str, extra: &[(&str, String)]) -> Self {
        let mut env = vec![
            ("DATABASE_URL", database_url.to_owned()),
            ("DATABASE_MAX_CONNECTIONS", "8".to_owned()),
            ("WORKER_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
            ("WORKER_HEARTBEAT_SECS", "1".to_owned()),
            ("WORKER_MISSED_HEARTBEATS", "3".to_owned()),
            ("WORKER_POLL_INTERVAL_MS", "200".to_owned()),
            ("RETRY_BASE_DELAY_MS", "100".to_owned()),
            ("SIMULATED_LATENCY_MS", "0".to_owned()),
        ];
        env.extend(extra.iter().map(|(key, value)| (*key, value.clone())));
        Self::start(name, &["worker"], &env)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process is running")
    }

    /// Sends a signal (`TERM`, `KILL`, ...).
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    /// Kills the process, if it still runs, and waits until it is gone.
    pub async fn kill(mut self) {
        // A process that already exited has nothing left to kill.
        let _ = self.child.kill().await;
    }

    /// Waits for the process to exit, failing after `within`.
    pub async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {within:?}", self.name))
            .expect("wait");
        status.code()
    }
}

/// How a one-shot command ended and what it printed.
#[derive(Debug)]
pub struct Output {
    /// The exit status (`None` if a signal ended it).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `agent-platform <args>` to its end with exactly the database
/// settings in `env`: any the test process inherited are removed first.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(BINARY);
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("DATABASE_MAX_CONNECTIONS")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("run agent-platform {args:?}: {error}"));
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs an admin command against `database_url`, asserting it succeeds.
#[track_caller]
pub fn admin(database_url: &str, args: &[&str]) -> String {
    let output = run(
        args,
        &[
            ("DATABASE_URL", database_url),
            ("DATABASE_MAX_CONNECTIONS", "2"),
        ],
    );
    assert_eq!(output.code, Some(0), "agent-platform {args:?}: {output:?}");
    output.stdout
}

impl Process {
    /// An API replica on `database_url`, on a free port of its own; waits
    /// until it answers and returns its port with it.
    pub async fn api(name: &str, database_url: &str, extra: &[(&str, String)]) -> (u16, Self) {
        let port = free_port();
        let mut env = vec![
            ("DATABASE_URL", database_url.to_owned()),
            ("DATABASE_MAX_CONNECTIONS", "8".to_owned()),
            ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
        ];
        env.extend(extra.iter().map(|(key, value)| (*key, value.clone())));
        let process = Self::start(name, &["api"], &env);
        wait_until_healthy(port).await;
        (port, process)
    }
}

/// A port nothing listens on now (a moment's race with other processes is
/// accepted: nothing else here binds fixed ports).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Waits until `/healthz` on `port` answers 200.
pub async fn wait_until_healthy(port: u16) {
    let url = format!("http://127.0.0.1:{port}/healthz");
    for _ in 0..400 {
        if reqwest::get(&url)
            .await
            .is_ok_and(|reply| reply.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing healthy on port {port} after 20 s");
}
