//! Supervision of the server's long-lived background tasks (the
//! collector's committer, the segment refresh scheduler): a task that
//! fails, by returning an error or by panicking, is logged at ERROR and
//! started again after a backoff, never left silently dead.

use std::any::Any;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;
use tracing::error;

/// How long a failed task waits before it is started again: `initial`
/// after the first failure, doubling up to `max`. A run that lasted at
/// least `max` counts as healthy: the next failure waits `initial` again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s doubling to 30 s.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

/// Runs `task` until it returns `Ok(())`. When a run returns an error or
/// panics, it is logged with `tracing::error!` (naming `name`, the error
/// or panic message and the delay) and `task` is called again after the
/// backoff, with the number of the attempt (0 for the first run, so that
/// a restarted task can repair what the failed run left). `stop`
/// resolving during a backoff ends the supervision (a running task is
/// expected to watch its own shutdown and return `Ok`).
///
/// A panic is caught on the task's future (`catch_unwind`), so whatever
/// the future owns is dropped while unwinding: state that must survive a
/// restart lives outside it (captured by `task` and borrowed by each run).
pub async fn supervise<T, Fut, E>(
    name: &str,
    backoff: Backoff,
    stop: impl Future<Output = ()>,
    mut task: T,
) where
    T: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut stop = std::pin::pin!(stop);
    let mut delays = Delays::new(backoff);
    let mut attempt = 0u32;
    loop {
        let started = Instant::now();
        let failure = match AssertUnwindSafe(task(attempt)).catch_unwind().await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => format!("failed: {e}"),
            Err(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
        };
        let delay = delays.after_failure(started.elapsed());
        error!(
            task = name,
            attempt,
            restart_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "background task {name} {failure}; restarting it"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.as_mut() => return,
        }
        attempt = attempt.saturating_add(1);
    }
}

/// The backoff's sequence of delays.
#[derive(Debug)]
struct Delays {
    backoff: Backoff,
    next: Duration,
}

impl Delays {
    fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            next: backoff.initial,
        }
    }

    /// The wait after a run that failed after `ran`.
    fn after_failure(&mut self, ran: Duration) -> Duration {
        if ran >= self.backoff.max {
            self.next = self.backoff.initial;
        }
        let delay = self.next;
        self.next = (delay * 2).min(self.backoff.max);
        delay
    }
}

/// The text of a panic (`panic!("...")` payloads are `&str` or `String`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn quick() -> Backoff {
        Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(4),
        }
    }

    #[tokio::test]
    async fn a_task_that_panics_twice_is_restarted_until_it_succeeds() {
        let runs = Arc::new(AtomicU32::new(0));
        let attempts = Arc::new(parking_lot::Mutex::new(vec![]));
        let (r, a) = (Arc::clone(&runs), Arc::clone(&attempts));
        supervise("test", quick(), std::future::pending(), move |attempt| {
            let (runs, attempts) = (Arc::clone(&r), Arc::clone(&a));
            async move {
                attempts.lock().push(attempt);
                if runs.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("boom");
                }
                Ok::<(), String>(())
            }
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(*attempts.lock(), vec![0, 1, 2]);
    }

    #[tokio::test]
    async fn a_task_that_returns_an_error_is_restarted() {
        let runs = Arc::new(AtomicU32::new(0));
        let r = Arc::clone(&runs);
        supervise("test", quick(), std::future::pending(), move |_| {
            let runs = Arc::clone(&r);
            async move {
                match runs.fetch_add(1, Ordering::SeqCst) {
                    0 => Err("cannot read the catalog".to_string()),
                    _ => Ok(()),
                }
            }
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn state_outside_the_run_survives_a_panic() {
        // The committer's shape: the receiver lives across restarts, and
        // what a panicking run did not take is still there.
        let (tx, rx) = tokio::sync::mpsc::channel::<u32>(8);
        for i in 0..4 {
            tx.send(i).await.unwrap();
        }
        drop(tx);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let got = Arc::new(parking_lot::Mutex::new(vec![]));
        let (rx2, got2) = (Arc::clone(&rx), Arc::clone(&got));
        supervise("test", quick(), std::future::pending(), move |_| {
            let (rx, got) = (Arc::clone(&rx2), Arc::clone(&got2));
            async move {
                let mut rx = rx.lock().await;
                while let Some(i) = rx.recv().await {
                    if i == 1 && !got.lock().contains(&99) {
                        got.lock().push(99);
                        panic!("failed on {i}");
                    }
                    got.lock().push(i);
                }
                Ok::<(), String>(())
            }
        })
        .await;
        // 1 was taken by the run that panicked; 2 and 3 were not lost.
        assert_eq!(*got.lock(), vec![0, 99, 2, 3]);
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap_and_resets_after_a_healthy_run() {
        let mut d = Delays::new(Backoff::default());
        let quick_failure = Duration::from_millis(5);
        let waits: Vec<u64> = (0..7)
            .map(|_| d.after_failure(quick_failure).as_secs())
            .collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30]);
        // A run of at least the cap was healthy: back to the first delay.
        assert_eq!(d.after_failure(Duration::from_secs(30)).as_secs(), 1);
        assert_eq!(d.after_failure(quick_failure).as_secs(), 2);
    }

    #[tokio::test]
    async fn stop_during_the_backoff_ends_the_supervision() {
        let runs = Arc::new(AtomicU32::new(0));
        let r = Arc::clone(&runs);
        let long = Backoff {
            initial: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        };
        let supervised = supervise("test", long, std::future::ready(()), move |_| {
            let runs = Arc::clone(&r);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>("always")
            }
        });
        tokio::time::timeout(Duration::from_secs(10), supervised)
            .await
            .expect("the stop ends the backoff");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
