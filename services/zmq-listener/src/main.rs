//! The `zmq-listener` binary: the nodes' ZMQ notifications, forwarded to the services that act on
//! them.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match zmq_listener::main_entry().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Telemetry may not be up yet (bad settings): stderr is the one sure channel.
            eprintln!("zmq-listener: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
