//! When to probe, and what a run of probes means: fast probes while a service starts
//! (a few ms apart, backing off to the configured interval, so a fast service is seen
//! healthy within milliseconds of listening), then one per interval, `retries` failures
//! in a row making it unhealthy. The probes themselves run in the runtime ([`Prober`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::plan::ResolvedHealth;
use crate::runtime::{ContainerHealth, Prober};

/// The gap between probes while a service starts, during [`FAST_WINDOW`].
const FAST_DELAY: Duration = Duration::from_millis(2);
/// How long probes stay [`FAST_DELAY`] apart before backing off.
const FAST_WINDOW: Duration = Duration::from_secs(1);
/// How often the engine is asked about an image's own HEALTHCHECK.
const IMAGE_HEALTH_POLL: Duration = Duration::from_millis(200);

/// A change of a service's health, as the actor hears of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HealthChange {
    Healthy,
    /// `starting`: it never was healthy in this run (a failed start, not a lost liveness).
    Unhealthy {
        reason: String,
        starting: bool,
    },
}

/// The delay before the next probe of a service starting for `elapsed`: every 2 ms for the
/// first second (most services are up by then, and a refused loopback connect costs
/// microseconds), then a tenth of the time waited so far, up to `interval`.
fn backoff(elapsed: Duration, interval: Duration) -> Duration {
    if elapsed < FAST_WINDOW {
        FAST_DELAY.min(interval)
    } else {
        (elapsed / 10).clamp(FAST_DELAY, interval.max(FAST_DELAY))
    }
}

/// Probes until dropped: fast and backing off while starting (until healthy or the start
/// budget runs out), then every `interval`, reporting changes.
pub(super) async fn check_loop<P: Prober>(
    h: ResolvedHealth,
    prober: Arc<P>,
    tx: mpsc::UnboundedSender<HealthChange>,
) {
    let t = &h.timing;
    let start = Instant::now();
    let budget = t.startup_budget();
    // Starting.
    loop {
        match prober.probe(&h.probe, t.timeout).await {
            Ok(()) => {
                let _ = tx.send(HealthChange::Healthy);
                break;
            }
            Err(reason) if start.elapsed() >= budget => {
                let _ = tx.send(HealthChange::Unhealthy {
                    reason: format!(
                        "{reason} (not healthy after {})",
                        humantime::format_duration(
                            Duration::from_millis(budget.as_millis() as u64)
                        )
                    ),
                    starting: true,
                });
                // Keep probing at the interval: a late success still counts.
                loop {
                    tokio::time::sleep(t.interval).await;
                    if prober.probe(&h.probe, t.timeout).await.is_ok() {
                        let _ = tx.send(HealthChange::Healthy);
                        break;
                    }
                }
                break;
            }
            Err(_) => {}
        }
        tokio::time::sleep(backoff(start.elapsed(), t.interval)).await;
    }
    // Live: `retries` failures in a row make it unhealthy.
    let mut failures = 0u32;
    let mut healthy = true;
    loop {
        tokio::time::sleep(t.interval).await;
        match prober.probe(&h.probe, t.timeout).await {
            Ok(()) => {
                failures = 0;
                if !healthy {
                    healthy = true;
                    let _ = tx.send(HealthChange::Healthy);
                }
            }
            Err(reason) => {
                failures += 1;
                if healthy && failures >= t.retries.max(1) {
                    healthy = false;
                    let _ = tx.send(HealthChange::Unhealthy {
                        reason: format!("{reason} ({failures} failures in a row)"),
                        starting: false,
                    });
                }
            }
        }
    }
}

/// Follows a container's own HEALTHCHECK as the engine reports it, until dropped.
pub(super) async fn image_health_loop<P: Prober>(
    prober: Arc<P>,
    tx: mpsc::UnboundedSender<HealthChange>,
) {
    let mut last = None;
    let mut was_healthy = false;
    loop {
        let now = prober.image_health().await;
        if now.is_some() && now != last {
            match now {
                Some(ContainerHealth::Healthy) => {
                    was_healthy = true;
                    let _ = tx.send(HealthChange::Healthy);
                }
                Some(ContainerHealth::Unhealthy) => {
                    let _ = tx.send(HealthChange::Unhealthy {
                        reason: "the image's HEALTHCHECK reports unhealthy".into(),
                        starting: !was_healthy,
                    });
                }
                Some(ContainerHealth::Starting) | None => {}
            }
            last = now;
        }
        tokio::time::sleep(IMAGE_HEALTH_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_fast_and_caps() {
        let i = Duration::from_millis(500);
        let ms = Duration::from_millis;
        assert_eq!(backoff(ms(0), i), ms(2));
        assert_eq!(backoff(ms(999), i), ms(2));
        assert_eq!(backoff(ms(2000), i), ms(200));
        assert_eq!(backoff(ms(60_000), i), i);
    }
}
