//! The `notifier` binary: delivers callbacks.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match notifier::main_entry().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Telemetry may not be up yet (bad settings): stderr is the one sure channel.
            eprintln!("notifier: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
