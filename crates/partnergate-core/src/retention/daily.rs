//! The daily purge of a running gateway, and its settings (`[retention]` in partnergate.toml).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::audit::AuditLog;
use crate::policy::Policy;
use crate::vault::Vault;

/// `[retention]` in partnergate.toml.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Whether `serve` purges by itself (default true).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// The hour of the day, UTC (0-23), at which `serve` purges (default 3).
    #[serde(default = "default_hour")]
    pub hour: u8,
    /// Years audit records are kept before `audit prune` may archive and remove them
    /// (default 10, the practice of the Crossroads Bank for Social Security and MAGDA).
    #[serde(default = "default_audit_years")]
    pub audit_years: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            hour: default_hour(),
            audit_years: default_audit_years(),
        }
    }
}

fn default_enabled() -> bool {
    true
}

fn default_hour() -> u8 {
    3
}

fn default_audit_years() -> u32 {
    10
}

/// How long from `now` until the next `hour`:00 UTC (strictly later; an hour past 23 counts as
/// 23).
pub fn until_next(now: OffsetDateTime, hour: u8) -> Duration {
    let hour = hour.min(23);
    let today = now
        .date()
        .with_hms(hour, 0, 0)
        .expect("a valid hour")
        .assume_utc();
    let next = if today > now {
        today
    } else {
        today + time::Duration::days(1)
    };
    (next - now).try_into().unwrap_or(Duration::ZERO)
}

/// Runs the purge every day at the configured hour by the gateway's clock, until aborted.
/// Abort it before waiting for the audit writer to drain (it holds an [`AuditLog`]).
pub fn spawn(
    policy: Arc<Policy>,
    vault: Arc<Vault>,
    audit: AuditLog,
    config: RetentionConfig,
) -> Option<tokio::task::JoinHandle<()>> {
    if !config.enabled {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(until_next(crate::clock::now(), config.hour)).await;
            let today = crate::clock::today();
            match super::run(policy.agreement(), &vault, &audit, today).await {
                Ok(s) => tracing::info!(
                    day = %s.day,
                    participants = s.participants,
                    fields = s.fields,
                    shredded = s.shredded,
                    "retention purge"
                ),
                Err(e) => tracing::error!(error = %e, "retention purge failed; retrying tomorrow"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_next_run_is_the_next_occurrence_of_the_hour() {
        let at = |t| until_next(t, 3).as_secs();
        assert_eq!(at(datetime!(2031-01-02 02:59:59 UTC)), 1);
        assert_eq!(at(datetime!(2031-01-02 03:00:00 UTC)), 86_400);
        assert_eq!(at(datetime!(2031-01-02 22:00:00 UTC)), 5 * 3600);
    }
}
