//! The `all-in-one` binary: every service in one process.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match all_in_one::main_entry().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("all-in-one: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
