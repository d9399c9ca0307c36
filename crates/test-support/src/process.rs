//! A service binary run as its own process, as an orchestrator runs it: started with environment
//! variables, waited for until `/ready`, stopped with SIGTERM, its exit and its log examined.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running service process; killed on drop if still running.
#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
    /// Where its stdout and stderr go (a file: a pipe nobody reads would block it).
    log: tempfile::NamedTempFile,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

/// How a stopped service process ended.
#[derive(Debug)]
pub struct Stopped {
    /// Its exit status.
    pub status: ExitStatus,
    /// Time from SIGTERM to exit.
    pub took: Duration,
    /// What it wrote to stderr and stdout (its log).
    pub log: String,
}

impl Stopped {
    /// The JSON log lines (`LOG_FORMAT=json`: fields at the top level) whose message is `message`.
    pub fn events(&self, message: &str) -> Vec<serde_json::Value> {
        self.log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["message"] == message)
            .collect()
    }
}

impl ServiceProcess {
    /// Starts `binary` on a free port with `env` (plus `LISTEN_ADDR` and JSON logs) and waits up
    /// to 30 s for `/ready` to answer 200.
    pub async fn start(binary: &str, env: &HashMap<&str, String>) -> Self {
        Self::start_on(binary, env, crate::free_port()).await
    }

    /// [`Self::start`] on a given port (a restart on the port its peers know).
    pub async fn start_on(binary: &str, env: &HashMap<&str, String>, port: u16) -> Self {
        let log = tempfile::NamedTempFile::new().expect("log file");
        // Both streams append to one file (separate offsets would overwrite each other).
        let append = || std::fs::OpenOptions::new().append(true).open(log.path()).expect("log file");
        let (out, err) = (append(), append());
        let child = Command::new(binary)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        let mut process = Self { child, log, url: format!("http://127.0.0.1:{port}") };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(resp) = http.get(format!("{}/ready", process.url)).send().await
                && resp.status() == 200
            {
                return process;
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!("{binary} exited with {status} before it was ready:\n{}", process.drain_log());
            }
            assert!(
                Instant::now() < deadline,
                "{binary} was not ready within 30 s:\n{}",
                process.drain_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit, at most `limit` (then kills it and panics).
    pub async fn terminate(mut self, limit: Duration) -> Stopped {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let took = started.elapsed();
                return Stopped { status, took, log: self.drain_log() };
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!("still running {limit:?} after SIGTERM:\n{}", self.drain_log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL: no shutdown code runs) and returns its log.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.drain_log()
    }

    /// Everything the process wrote so far.
    pub fn log(&mut self) -> String {
        self.drain_log()
    }

    /// Everything the process wrote so far.
    fn drain_log(&mut self) -> String {
        let mut log = String::new();
        if let Ok(mut file) = self.log.reopen() {
            let _ = file.read_to_string(&mut log);
        }
        log
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
