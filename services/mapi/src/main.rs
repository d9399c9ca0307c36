//! The `mapi` binary: the Merchant API service.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match mapi::main_entry().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Telemetry may not be up yet (bad settings): stderr is the one sure channel.
            eprintln!("mapi: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
