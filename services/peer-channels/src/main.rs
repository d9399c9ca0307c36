//! The `peer-channels` binary: channels, tokens, messages and their notifications.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match peer_channels::main_entry().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Telemetry may not be up yet (bad settings): stderr is the one sure channel.
            eprintln!("peer-channels: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
