//! Notifier settings: the mAPI reference's `NOTIFICATION_*` variables with their meaning, and the
//! few this service adds.
//!
//! | key | env | default |
//! |---|---|---|
//! | `notification_interval_sec` | `NOTIFICATION_NOTIFICATION_INTERVAL_SEC` | 60 (how often the background job retries failed notifications; the first retry waits this long, each later one twice the one before) |
//! | `instant_notification_tasks` | `NOTIFICATION_INSTANT_NOTIFICATION_TASKS` | 2 (concurrent delivery tasks, 2 to 100, split into a fast and a slow pool) |
//! | `instant_notifications_queue_size` | `NOTIFICATION_INSTANT_NOTIFICATIONS_QUEUE_SIZE` | 1000 (notifications waiting in memory for instant delivery; beyond it they are left to the background job) |
//! | `max_notifications_in_batch` | `NOTIFICATION_MAX_NOTIFICATIONS_IN_BATCH` | 100 (notifications of one host a task takes at a time) |
//! | `slow_host_threshold_ms` | `NOTIFICATION_SLOW_HOST_THRESHOLD_MS` | 1000 (a host whose mean response time is above this is served by the slow pool) |
//! | `instant_notifications_slow_task_percentage` | `NOTIFICATION_INSTANT_NOTIFICATIONS_SLOW_TASK_PERCENTAGE` | 20 (share of the tasks reserved for slow hosts, rounded up; also the share of the queue slow hosts may fill) |
//! | `no_of_saved_execution_times` | `NOTIFICATION_NO_OF_SAVED_EXECUTION_TIMES` | 10 (response times kept per host for its mean) |
//! | `notifications_retry_count` | `NOTIFICATION_NOTIFICATIONS_RETRY_COUNT` | 10 (failed attempts after which a notification is dead-lettered) |
//! | `slow_host_response_timeout_ms` | `NOTIFICATION_SLOW_HOST_RESPONSE_TIMEOUT_MS` | 3000 (response timeout for slow hosts and background retries) |
//! | `fast_host_response_timeout_ms` | `NOTIFICATION_FAST_HOST_RESPONSE_TIMEOUT_MS` | 1000 (response timeout for fast hosts; must be below the slow one) |
//! | `max_backoff_sec` | `NOTIFICATION_MAX_BACKOFF_SEC` | 3600 (longest wait between two retries) |
//! | `host_concurrency` | `NOTIFICATION_HOST_CONCURRENCY` | 4 (requests of one batch in flight at once) |
//! | `lease_sec` | `NOTIFICATION_LEASE_SEC` | 30 (a replica's claim on the notifications it holds, renewed every third of it; after a crash another replica takes them once it ran out) |
//! | `keep_delivered_hours` | `NOTIFICATION_KEEP_DELIVERED_HOURS` | 24 (delivered notifications are kept this long, so that a repeated request is recognised) |
//! | `block_private_targets` | `NOTIFICATION_BLOCK_PRIVATE_TARGETS` | true (refuse callback targets that resolve to loopback, private, link-local or other non-public addresses; checked on the addresses the connection uses, after DNS) |
//!
//! plus the common settings of `service_kit::settings` (`DATABASE_URL`, `INTERNAL_TOKEN`, ...).

use std::time::Duration;

use serde::Deserialize;
use service_kit::settings::{CommonSettings, EnvVar, ServiceSettings, SettingsError, env};

/// Notifier settings.
#[derive(Debug, Clone, Deserialize)]
pub struct NotifierSettings {
    /// Shared settings.
    pub common: CommonSettings,
    /// Seconds between background retry rounds (and the first backoff).
    pub notification_interval_sec: u64,
    /// Delivery tasks (fast and slow pools together).
    pub instant_notification_tasks: u32,
    /// Notifications held in memory for instant delivery.
    pub instant_notifications_queue_size: u32,
    /// Notifications of one host per batch.
    pub max_notifications_in_batch: u32,
    /// Mean response time above which a host is slow.
    pub slow_host_threshold_ms: u64,
    /// Percentage of tasks (and of the queue) for slow hosts.
    pub instant_notifications_slow_task_percentage: u32,
    /// Response times kept per host.
    pub no_of_saved_execution_times: u32,
    /// Failed attempts before a notification is dead-lettered.
    pub notifications_retry_count: u32,
    /// Response timeout for slow hosts.
    pub slow_host_response_timeout_ms: u64,
    /// Response timeout for fast hosts.
    pub fast_host_response_timeout_ms: u64,
    /// Longest wait between two retries.
    pub max_backoff_sec: u64,
    /// Requests of one batch in flight at once.
    pub host_concurrency: u32,
    /// Lease on held notifications.
    pub lease_sec: u64,
    /// How long delivered notifications are kept.
    pub keep_delivered_hours: u64,
    /// Refuse targets on non-public addresses.
    pub block_private_targets: bool,
}

impl NotifierSettings {
    /// Tasks of the slow pool: the percentage of all, rounded up, at least one, and leaving at
    /// least one for the fast pool.
    pub fn slow_tasks(&self) -> usize {
        let tasks = self.instant_notification_tasks as usize;
        let pct = self.instant_notifications_slow_task_percentage as usize;
        (tasks * pct).div_ceil(100).clamp(1, tasks.saturating_sub(1).max(1))
    }

    /// Tasks of the fast pool.
    pub fn fast_tasks(&self) -> usize {
        (self.instant_notification_tasks as usize).saturating_sub(self.slow_tasks()).max(1)
    }

    /// Notifications of slow hosts the instant queue may hold.
    pub fn slow_queue_limit(&self) -> usize {
        (self.instant_notifications_queue_size as usize
            * self.instant_notifications_slow_task_percentage as usize)
            / 100
    }

    /// The wait before retry number `errors` (1 for the first failure): the interval, doubled
    /// for each earlier failure, at most `max_backoff_sec`.
    pub fn backoff(&self, errors: u32) -> Duration {
        let doublings = errors.saturating_sub(1).min(20);
        let secs = self.notification_interval_sec.saturating_mul(1u64 << doublings);
        Duration::from_secs(secs.min(self.max_backoff_sec.max(self.notification_interval_sec)))
    }
}

impl ServiceSettings for NotifierSettings {
    const DEFAULTS: &'static str = r#"
notification_interval_sec = 60
instant_notification_tasks = 2
instant_notifications_queue_size = 1000
max_notifications_in_batch = 100
slow_host_threshold_ms = 1000
instant_notifications_slow_task_percentage = 20
no_of_saved_execution_times = 10
notifications_retry_count = 10
slow_host_response_timeout_ms = 3000
fast_host_response_timeout_ms = 1000
max_backoff_sec = 3600
host_concurrency = 4
lease_sec = 30
keep_delivered_hours = 24
block_private_targets = true
"#;
    const ENV: &'static [EnvVar] = &[
        env("NOTIFICATION_NOTIFICATION_INTERVAL_SEC", "notification_interval_sec"),
        env("NOTIFICATION_INSTANT_NOTIFICATION_TASKS", "instant_notification_tasks"),
        env("NOTIFICATION_INSTANT_NOTIFICATIONS_QUEUE_SIZE", "instant_notifications_queue_size"),
        env("NOTIFICATION_MAX_NOTIFICATIONS_IN_BATCH", "max_notifications_in_batch"),
        env("NOTIFICATION_SLOW_HOST_THRESHOLD_MS", "slow_host_threshold_ms"),
        env(
            "NOTIFICATION_INSTANT_NOTIFICATIONS_SLOW_TASK_PERCENTAGE",
            "instant_notifications_slow_task_percentage",
        ),
        env("NOTIFICATION_NO_OF_SAVED_EXECUTION_TIMES", "no_of_saved_execution_times"),
        env("NOTIFICATION_NOTIFICATIONS_RETRY_COUNT", "notifications_retry_count"),
        env("NOTIFICATION_SLOW_HOST_RESPONSE_TIMEOUT_MS", "slow_host_response_timeout_ms"),
        env("NOTIFICATION_FAST_HOST_RESPONSE_TIMEOUT_MS", "fast_host_response_timeout_ms"),
        env("NOTIFICATION_MAX_BACKOFF_SEC", "max_backoff_sec"),
        env("NOTIFICATION_HOST_CONCURRENCY", "host_concurrency"),
        env("NOTIFICATION_LEASE_SEC", "lease_sec"),
        env("NOTIFICATION_KEEP_DELIVERED_HOURS", "keep_delivered_hours"),
        env("NOTIFICATION_BLOCK_PRIVATE_TARGETS", "block_private_targets"),
    ];

    fn common(&self) -> &CommonSettings {
        &self.common
    }

    fn validate(&self) -> Result<(), SettingsError> {
        self.common.validate()?;
        self.common.require_database_url()?;
        let invalid = |key: &str, message: &str| Err(SettingsError::invalid(Self::ENV, key, message));
        if !(2..=100).contains(&self.instant_notification_tasks) {
            return invalid("instant_notification_tasks", "must be between 2 and 100");
        }
        if self.instant_notifications_slow_task_percentage > 100 {
            return invalid("instant_notifications_slow_task_percentage", "must be between 0 and 100");
        }
        if self.slow_host_response_timeout_ms <= self.fast_host_response_timeout_ms {
            return invalid(
                "slow_host_response_timeout_ms",
                "must be greater than NOTIFICATION_FAST_HOST_RESPONSE_TIMEOUT_MS",
            );
        }
        for (key, value) in [
            ("notification_interval_sec", self.notification_interval_sec),
            ("instant_notifications_queue_size", u64::from(self.instant_notifications_queue_size)),
            ("max_notifications_in_batch", u64::from(self.max_notifications_in_batch)),
            ("slow_host_threshold_ms", self.slow_host_threshold_ms),
            ("no_of_saved_execution_times", u64::from(self.no_of_saved_execution_times)),
            ("notifications_retry_count", u64::from(self.notifications_retry_count)),
            ("fast_host_response_timeout_ms", self.fast_host_response_timeout_ms),
            ("max_backoff_sec", self.max_backoff_sec),
            ("host_concurrency", u64::from(self.host_concurrency)),
            ("lease_sec", self.lease_sec),
            ("keep_delivered_hours", self.keep_delivered_hours),
        ] {
            if value == 0 {
                return invalid(key, "must be positive");
            }
        }
        if self.lease_sec * 1000 < self.slow_host_response_timeout_ms * 2 {
            return invalid("lease_sec", "must be at least twice NOTIFICATION_SLOW_HOST_RESPONSE_TIMEOUT_MS");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(tasks: u32, pct: u32) -> NotifierSettings {
        let mut s: NotifierSettings = service_kit::settings::load_from(None, |k| match k {
            "DATABASE_URL" => Some("postgres://u@127.0.0.1/db".to_owned()),
            "INTERNAL_TOKEN" => Some("an-internal-token-for-tests".to_owned()),
            _ => None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        s.instant_notification_tasks = tasks;
        s.instant_notifications_slow_task_percentage = pct;
        s
    }

    #[test]
    fn pools_split_the_tasks_as_the_reference_does() {
        assert_eq!((settings(2, 20).fast_tasks(), settings(2, 20).slow_tasks()), (1, 1));
        assert_eq!((settings(10, 20).fast_tasks(), settings(10, 20).slow_tasks()), (8, 2));
        assert_eq!((settings(10, 25).fast_tasks(), settings(10, 25).slow_tasks()), (7, 3));
        assert_eq!((settings(10, 100).fast_tasks(), settings(10, 100).slow_tasks()), (1, 9));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = settings(2, 20);
        assert_eq!(s.backoff(1), Duration::from_secs(60));
        assert_eq!(s.backoff(2), Duration::from_secs(120));
        assert_eq!(s.backoff(4), Duration::from_secs(480));
        assert_eq!(s.backoff(30), Duration::from_secs(3600));
    }
}
