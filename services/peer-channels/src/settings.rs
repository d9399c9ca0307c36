//! Peer-channels settings, with the reference server's environment variable names where it has them.
//!
//! | key | env | default |
//! |---|---|---|
//! | `max_message_content_length` | `MAX_MESSAGE_CONTENT_LENGTH` | 65536 (bytes of one message) |
//! | `href_host` | `HREF_HOST` | `127.0.0.1` (host in a channel's `href`) |
//! | `href_port` | `HREF_PORT` | 8080 (port in a channel's `href`: 80 → `http://host`, 443 → `https://host`) |
//! | `websocket_heartbeat_secs` | `WEBSOCKET_HEARTBEAT_SECS` | 30 |
//! | `pruner_interval_secs` | `PRUNER_INTERVAL_SECS` | 300 (0 turns the pruner off) |
//! | `websocket_fanout_capacity` | `WEBSOCKET_FANOUT_CAPACITY` | 4096 (events a socket may fall behind before it re-reads the database) |
//! | `message_page_size` | `MESSAGE_PAGE_SIZE` | 100 (messages read from the database at a time by a channel read or a socket's catch-up) |
//! | `block_parser_url` | `BLOCK_PARSER_URL` | `http://127.0.0.1:8083` (whose chain tips the account sockets announce) |
//! | `tips_poll_interval_ms` | `TIPS_POLL_INTERVAL_MS` | 1000 (how often the tips are read, as the reference polls HeaderSV; 0 turns the announcements off) |
//!
//! plus the common settings of `service_kit::settings` (`DATABASE_URL`, `INTERNAL_TOKEN`, ...).

use serde::Deserialize;
use service_kit::settings::{CommonSettings, EnvVar, ServiceSettings, SettingsError, env};

/// Peer-channels settings.
#[derive(Debug, Clone, Deserialize)]
pub struct PeerChannelsSettings {
    /// Shared settings.
    pub common: CommonSettings,
    /// Largest message body.
    pub max_message_content_length: usize,
    /// Host named in channel `href`s (the public address clients use).
    pub href_host: String,
    /// Port named in channel `href`s.
    pub href_port: u16,
    /// Seconds between websocket pings.
    pub websocket_heartbeat_secs: u64,
    /// Seconds between pruner rounds; 0 disables the pruner.
    pub pruner_interval_secs: u64,
    /// Events a socket may fall behind this replica's fan-out before it re-reads the database.
    pub websocket_fanout_capacity: usize,
    /// Messages read from the database at a time (memory stays bounded whatever a channel holds).
    pub message_page_size: i64,
    /// The headers API whose tips the account sockets announce (block-parser).
    pub block_parser_url: url::Url,
    /// Milliseconds between polls of the tips; 0 announces none.
    pub tips_poll_interval_ms: u64,
}

impl PeerChannelsSettings {
    /// The public URL of a channel, as the reference forms it.
    pub fn channel_href(&self, external_id: &str) -> String {
        match self.href_port {
            80 => format!("http://{}/api/v1/channel/{external_id}", self.href_host),
            443 => format!("https://{}/api/v1/channel/{external_id}", self.href_host),
            port => format!("http://{}:{port}/api/v1/channel/{external_id}", self.href_host),
        }
    }
}

impl ServiceSettings for PeerChannelsSettings {
    const DEFAULTS: &'static str = r#"
max_message_content_length = 65536
href_host = "127.0.0.1"
href_port = 8080
websocket_heartbeat_secs = 30
pruner_interval_secs = 300
websocket_fanout_capacity = 4096
message_page_size = 100
block_parser_url = "http://127.0.0.1:8083"
tips_poll_interval_ms = 1000
"#;
    const ENV: &'static [EnvVar] = &[
        env("MAX_MESSAGE_CONTENT_LENGTH", "max_message_content_length"),
        env("HREF_HOST", "href_host"),
        env("HREF_PORT", "href_port"),
        env("WEBSOCKET_HEARTBEAT_SECS", "websocket_heartbeat_secs"),
        env("PRUNER_INTERVAL_SECS", "pruner_interval_secs"),
        env("WEBSOCKET_FANOUT_CAPACITY", "websocket_fanout_capacity"),
        env("MESSAGE_PAGE_SIZE", "message_page_size"),
        env("BLOCK_PARSER_URL", "block_parser_url"),
        env("TIPS_POLL_INTERVAL_MS", "tips_poll_interval_ms"),
    ];

    fn common(&self) -> &CommonSettings {
        &self.common
    }

    fn validate(&self) -> Result<(), SettingsError> {
        self.common.validate()?;
        self.common.require_database_url()?;
        if self.max_message_content_length == 0 {
            return Err(SettingsError::invalid(
                Self::ENV,
                "max_message_content_length",
                "must be positive (the reference's 0 refuses every message)",
            ));
        }
        if self.href_host.trim().is_empty() {
            return Err(SettingsError::invalid(Self::ENV, "href_host", "must not be empty"));
        }
        if self.websocket_fanout_capacity == 0 {
            return Err(SettingsError::invalid(Self::ENV, "websocket_fanout_capacity", "must be positive"));
        }
        if self.message_page_size < 1 {
            return Err(SettingsError::invalid(Self::ENV, "message_page_size", "must be positive"));
        }
        if !matches!(self.block_parser_url.scheme(), "http" | "https") {
            return Err(SettingsError::invalid(
                Self::ENV,
                "block_parser_url",
                "must be an http or https URL",
            ));
        }
        if self.websocket_heartbeat_secs == 0 {
            return Err(SettingsError::invalid(Self::ENV, "websocket_heartbeat_secs", "must be positive"));
        }
        Ok(())
    }
}
