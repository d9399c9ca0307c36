//! The `indexer` binary: the indexer APIs, native or proxied to an external indexer.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match indexer::main_entry().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Telemetry may not be up yet (bad settings): stderr is the one sure channel.
            eprintln!("indexer: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
