//! Captures every log line of a test process, to check that no secret reaches the logs.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// The captured output of a process-wide subscriber. Install it in a test binary of its own
/// (a process has one global subscriber).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::fmt::Debug for LogCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogCapture").finish_non_exhaustive()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Installs the global subscriber: TRACE everywhere, with `directives` on top (for example the
    /// caps services apply), written here without colours.
    pub fn install(directives: &[&str]) -> Self {
        let capture = Self::default();
        let writer = capture.clone();
        let filter = directives.iter().fold(tracing_subscriber::EnvFilter::new("trace"), |f, d| {
            f.add_directive(d.parse().expect("directive"))
        });
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        capture
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}
