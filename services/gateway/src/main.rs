//! The `gateway` binary: the public edge of the system.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match gateway::main_entry().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Telemetry may not be up yet (bad settings): stderr is the one sure channel.
            eprintln!("gateway: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
