//! The `block-parser` binary: follows the nodes' best chain and serves the headers API.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match block_parser::main_entry().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Telemetry may not be up yet (bad settings): stderr is the one sure channel.
            eprintln!("block-parser: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
