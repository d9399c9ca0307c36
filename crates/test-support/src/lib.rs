#![doc = include_str!("../README.md")]
// Test helpers fail loudly: a broken fixture should stop the test with a clear message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod bitcoind;
mod chaos;
pub mod cpu;
mod logs;
mod postgres;
mod process;
mod receiver;
mod server;
mod txs;

pub use bitcoind::{BitcoindNode, NodeOptions};
pub use chaos::ChaosProxy;
pub use logs::LogCapture;
pub use postgres::{TestDatabase, admin_database_url, execute_sql, host_tag, query_json};
pub use process::{ServiceProcess, Stopped};
pub use receiver::{RecordedRequest, RecordingReceiver};
pub use server::{RunningServer, serve};
pub use txs::{OP_TRUE, RawTx, spend_op_true, txid_of};

/// A listener on 127.0.0.1 with a port the OS picked, for starting a service under test.
pub fn local_listener() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
}

/// A port that was free a moment ago (for programs that take a port number, not a socket).
pub fn free_port() -> u16 {
    local_listener().local_addr().expect("local addr").port()
}

/// The workspace root, for finding `scripts/`.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("workspace root").to_path_buf()
}

/// The path of a workspace service binary (`mapi`, `gateway`, ...) of the profile the tests run in,
/// built first when it is missing (a test of one package may run another's binary as a process).
/// A workspace test run (`scripts/test`) builds every binary first; a run of one package alone
/// may find another package's binary out of date: build it (`cargo build -p <name>`) first.
pub fn service_binary(name: &str) -> String {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(std::path::Path::parent).expect("target directory");
    let path = dir.join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .args(["build", "--locked", "-p", name, "--bin", name])
            .current_dir(workspace_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building {name} failed");
    }
    assert!(path.exists(), "{} is missing", path.display());
    path.to_string_lossy().into_owned()
}

/// Installs a `tracing` subscriber once per test process, honouring `RUST_LOG`.
pub fn init_test_tracing() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
    });
}
