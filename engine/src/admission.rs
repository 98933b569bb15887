//! Admission control: how many statements run at once
//! (`--max-running-queries`), how many may wait for a slot
//! (`--max-queued-queries`), and the slots kept for the server's own work
//! (`--reserved-service-queries`).
//!
//! A statement takes a slot before it runs ([`Admission::acquire`]) and
//! holds it until it ends: a command to its end, a query until its stream
//! ends or is dropped (the [`Permit`] travels with the stream). Without a
//! free slot it waits, `queued` in `system.queries`. The queue serves
//! users in turn (round robin; each user's statements in order), so one
//! user's burst of statements does not starve another user's one. Past
//! the queue's limit a statement is refused at once (RESOURCE_EXHAUSTED).
//!
//! The service (the HTTP collector's commits, scheduled segment refreshes)
//! takes one of its reserved slots or a free general slot, and is never
//! refused for a full queue: a server saturated by queries still ingests.
//! Other statements only take general slots.
//!
//! Waiting is cancellable: the statement's future is dropped (KILL QUERY,
//! its timeout, its client gone) and its waiter leaves the queue; a slot
//! handed to a waiter that went away meanwhile is passed on to the next.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::{EngineError, Result};

/// The limits of an [`Admission`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// General slots: statements running at once (at least 1).
    pub(crate) running: usize,
    /// Statements that may wait for a general slot.
    pub(crate) queued: usize,
    /// Slots only the service takes, beside the general ones.
    pub(crate) reserved: usize,
}

/// The slots statements run in, and the queue of those waiting for one.
#[derive(Debug, Clone)]
pub(crate) struct Admission(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    limits: Limits,
    state: parking_lot::Mutex<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    General,
    Reserved,
}

#[derive(Debug, Default)]
struct State {
    /// General slots taken.
    general: usize,
    /// Reserved slots taken.
    reserved: usize,
    /// Statements waiting (the service's included).
    queued: usize,
    /// Users with statements waiting, in the order they are served next.
    turn: VecDeque<String>,
    /// Each user's waiting statements, oldest first.
    waiters: HashMap<String, VecDeque<Waiter>>,
    next_id: u64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    service: bool,
    grant: oneshot::Sender<Permit>,
}

/// A slot, held until dropped; then it goes to the next waiter.
pub(crate) struct Permit {
    inner: Arc<Inner>,
    /// `None` once given back.
    slot: Option<Slot>,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit").field("slot", &self.slot).finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.inner.release(slot);
        }
    }
}

impl Admission {
    /// Refuses `limits.running == 0`: nothing could ever run.
    pub(crate) fn new(limits: Limits) -> Result<Self> {
        if limits.running == 0 {
            return Err(EngineError::InvalidArgument(
                "--max-running-queries must be at least 1".into(),
            ));
        }
        Ok(Self(Arc::new(Inner {
            limits,
            state: parking_lot::Mutex::new(State::default()),
        })))
    }

    /// A slot for a statement of `user` (`service`: the collector's or the
    /// scheduler's), at once when one is free, else when its turn comes.
    /// Refuses with RESOURCE_EXHAUSTED when the queue is full (never the
    /// service). Dropping the future leaves the queue.
    pub(crate) async fn acquire(&self, user: &str, service: bool) -> Result<Permit> {
        let limits = self.0.limits;
        let (id, rx) = {
            let mut state = self.0.state.lock();
            // No waiter fits a free slot (each release hands slots out), so
            // taking one here jumps no queue.
            if let Some(slot) = state.free_slot(&limits, service) {
                state.take(slot);
                return Ok(Permit {
                    inner: Arc::clone(&self.0),
                    slot: Some(slot),
                });
            }
            if !service && state.queued >= limits.queued {
                return Err(EngineError::ResourceExhausted(format!(
                    "the server is saturated: {} statement(s) running \
                     (--max-running-queries {}) and {} waiting (--max-queued-queries {}); \
                     try again later",
                    state.general, limits.running, state.queued, limits.queued
                )));
            }
            let (tx, rx) = oneshot::channel();
            (state.enqueue(user, service, tx), rx)
        };
        let mut waiting = Waiting {
            inner: &self.0,
            user,
            id,
            rx,
        };
        (&mut waiting.rx)
            .await
            .map_err(|_| EngineError::Internal("the admission queue went away".into()))
    }

    /// Slots taken (general, reserved) and statements waiting.
    #[cfg(test)]
    fn usage(&self) -> (usize, usize, usize) {
        let state = self.0.state.lock();
        (state.general, state.reserved, state.queued)
    }
}

impl Inner {
    /// `slot` is free again: hand out what fits to the waiters in turn.
    fn release(self: &Arc<Self>, slot: Slot) {
        let mut freed = vec![slot];
        while let Some(slot) = freed.pop() {
            let grants = {
                let mut state = self.state.lock();
                state.free(slot);
                state.dispatch(&self.limits)
            };
            // Sent outside the lock: a refused permit (its waiter went
            // away after leaving the queue) is passed on, not dropped here.
            for (waiter, slot) in grants {
                let permit = Permit {
                    inner: Arc::clone(self),
                    slot: Some(slot),
                };
                if let Err(mut permit) = waiter.grant.send(permit) {
                    freed.extend(permit.slot.take());
                }
            }
        }
    }
}

impl State {
    /// The slot a statement would take now: the service its reserved ones
    /// first (general slots stay for users), then a general one.
    fn free_slot(&self, limits: &Limits, service: bool) -> Option<Slot> {
        if service && self.reserved < limits.reserved {
            Some(Slot::Reserved)
        } else if self.general < limits.running {
            Some(Slot::General)
        } else {
            None
        }
    }

    fn take(&mut self, slot: Slot) {
        match slot {
            Slot::General => self.general += 1,
            Slot::Reserved => self.reserved += 1,
        }
    }

    fn free(&mut self, slot: Slot) {
        match slot {
            Slot::General => self.general -= 1,
            Slot::Reserved => self.reserved -= 1,
        }
    }

    fn enqueue(&mut self, user: &str, service: bool, grant: oneshot::Sender<Permit>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.queued += 1;
        let waiters = self.waiters.entry(user.to_string()).or_insert_with(|| {
            self.turn.push_back(user.to_string());
            VecDeque::new()
        });
        waiters.push_back(Waiter { id, service, grant });
        id
    }

    /// Takes waiter `id` of `user` out of the queue; false when it is not
    /// there (it was given a slot).
    fn remove(&mut self, user: &str, id: u64) -> bool {
        let Some(waiters) = self.waiters.get_mut(user) else {
            return false;
        };
        let Some(at) = waiters.iter().position(|w| w.id == id) else {
            return false;
        };
        waiters.remove(at);
        self.queued -= 1;
        if waiters.is_empty() {
            self.waiters.remove(user);
            self.turn.retain(|u| u != user);
        }
        true
    }

    /// The waiters the free slots go to, each with its slot (taken): users
    /// in turn, a served user going to the back of the turn.
    fn dispatch(&mut self, limits: &Limits) -> Vec<(Waiter, Slot)> {
        let mut grants = vec![];
        while let Some((position, at, slot)) = self.next_fit(limits) {
            let user = self.turn.remove(position).expect("in turn");
            let waiters = self.waiters.get_mut(&user).expect("a user in turn waits");
            let waiter = waiters.remove(at).expect("found");
            if waiters.is_empty() {
                self.waiters.remove(&user);
            } else {
                self.turn.push_back(user);
            }
            self.queued -= 1;
            self.take(slot);
            grants.push((waiter, slot));
        }
        grants
    }

    /// The next waiter to serve (its user's place in the turn, its place
    /// among the user's waiters, its slot): the first user in turn with a
    /// statement that fits a free slot, that user's oldest such statement
    /// (a reserved slot only fits the service's).
    fn next_fit(&self, limits: &Limits) -> Option<(usize, usize, Slot)> {
        self.turn.iter().enumerate().find_map(|(position, user)| {
            self.waiters[user].iter().enumerate().find_map(|(at, w)| {
                self.free_slot(limits, w.service)
                    .map(|slot| (position, at, slot))
            })
        })
    }
}

/// A statement in the queue: dropped (the statement stopped, or got its
/// slot), it leaves the queue, and a slot given to it meanwhile goes back.
struct Waiting<'a> {
    inner: &'a Arc<Inner>,
    user: &'a str,
    id: u64,
    rx: oneshot::Receiver<Permit>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let removed = self.inner.state.lock().remove(self.user, self.id);
        if !removed {
            // Given a slot: received (nothing to do), or sent and not
            // received, or about to be sent (refused after `close`, then
            // passed on by the sender).
            self.rx.close();
            if let Ok(permit) = self.rx.try_recv() {
                drop(permit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::Poll;

    use futures::poll;

    use super::*;
    use crate::ErrorKind;

    fn admission(running: usize, queued: usize, reserved: usize) -> Admission {
        Admission::new(Limits {
            running,
            queued,
            reserved,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn users_are_served_in_turn() {
        let adm = admission(1, 100, 0);
        let held = adm.acquire("c", false).await.unwrap();
        // Ann queues 50 statements, then Bob one.
        let mut ann: Vec<_> = (0..50)
            .map(|_| Box::pin(adm.acquire("ann", false)))
            .collect();
        for f in &mut ann {
            assert!(poll!(f.as_mut()).is_pending());
        }
        let mut bob = pin!(adm.acquire("bob", false));
        assert!(poll!(bob.as_mut()).is_pending());
        assert_eq!(adm.usage(), (1, 0, 51));
        // The slot goes to Ann's first statement (she queued first), the
        // next one to Bob, not to Ann's 49 others.
        drop(held);
        let Poll::Ready(Ok(first)) = poll!(ann[0].as_mut()) else {
            panic!("ann's first statement was not served");
        };
        assert!(poll!(bob.as_mut()).is_pending());
        drop(first);
        let Poll::Ready(Ok(bobs)) = poll!(bob.as_mut()) else {
            panic!("bob waited behind ann's burst");
        };
        assert!(poll!(ann[1].as_mut()).is_pending());
        // Then Ann's, in order.
        drop(bobs);
        let Poll::Ready(Ok(second)) = poll!(ann[1].as_mut()) else {
            panic!("ann's second statement was not served");
        };
        assert!(poll!(ann[2].as_mut()).is_pending());
        drop(second);
        drop(ann);
        assert_eq!(adm.usage(), (0, 0, 0));
    }

    #[tokio::test]
    async fn past_the_queue_limit_a_statement_is_refused_at_once() {
        let adm = admission(1, 2, 1);
        let _held = adm.acquire("ann", false).await.unwrap();
        let mut w1 = pin!(adm.acquire("ann", false));
        let mut w2 = pin!(adm.acquire("bob", false));
        assert!(poll!(w1.as_mut()).is_pending());
        assert!(poll!(w2.as_mut()).is_pending());
        let err = adm.acquire("bob", false).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceExhausted);
        let message = err.to_string();
        assert!(
            message.contains("--max-queued-queries 2")
                && message.contains("--max-running-queries 1"),
            "{message}"
        );
        assert_eq!(adm.usage(), (1, 0, 2));
        // The service is not refused for a full queue.
        let service = adm.acquire("seglake-collector", true).await.unwrap();
        assert_eq!(adm.usage(), (1, 1, 2));
        drop(service);
    }

    #[tokio::test]
    async fn the_service_has_its_reserved_share() {
        let adm = admission(2, 10, 1);
        let a = adm.acquire("ann", false).await.unwrap();
        let b = adm.acquire("bob", false).await.unwrap();
        // The general slots are taken: a user waits, the service runs.
        let mut user = pin!(adm.acquire("cat", false));
        assert!(poll!(user.as_mut()).is_pending());
        let service = adm.acquire("seglake-collector", true).await.unwrap();
        assert_eq!(adm.usage(), (2, 1, 1));
        // A second service statement waits for the reserved slot (or a
        // general one), and a freed reserved slot goes to the service,
        // never to the user.
        let mut second = pin!(adm.acquire("seglake-scheduler", true));
        assert!(poll!(second.as_mut()).is_pending());
        drop(service);
        let Poll::Ready(Ok(second)) = poll!(second.as_mut()) else {
            panic!("the service did not get its reserved slot back");
        };
        assert!(poll!(user.as_mut()).is_pending());
        assert_eq!(adm.usage(), (2, 1, 1));
        // A free general slot goes to the user.
        drop(a);
        assert!(matches!(poll!(user.as_mut()), Poll::Ready(Ok(_))));
        drop(second);
        drop(b);
    }

    #[tokio::test]
    async fn the_service_takes_a_free_general_slot() {
        let adm = admission(1, 10, 1);
        let reserved = adm.acquire("seglake-collector", true).await.unwrap();
        let general = adm.acquire("seglake-scheduler", true).await.unwrap();
        assert_eq!(adm.usage(), (1, 1, 0));
        drop((reserved, general));
        assert_eq!(adm.usage(), (0, 0, 0));
    }

    #[tokio::test]
    async fn a_dropped_waiter_leaves_the_queue_and_no_slot_leaks() {
        let adm = admission(1, 10, 0);
        let held = adm.acquire("ann", false).await.unwrap();
        {
            let mut gone = pin!(adm.acquire("bob", false));
            assert!(poll!(gone.as_mut()).is_pending());
            assert_eq!(adm.usage(), (1, 0, 1));
        }
        assert_eq!(adm.usage(), (1, 0, 0));
        // A waiter given the slot but dropped before it looked: the slot
        // goes on to the next one.
        let mut given = Box::pin(adm.acquire("bob", false));
        assert!(poll!(given.as_mut()).is_pending());
        let mut next = pin!(adm.acquire("cat", false));
        assert!(poll!(next.as_mut()).is_pending());
        drop(held);
        drop(given);
        let Poll::Ready(Ok(permit)) = poll!(next.as_mut()) else {
            panic!("the slot of the dropped waiter was lost");
        };
        assert_eq!(adm.usage(), (1, 0, 0));
        drop(permit);
        assert_eq!(adm.usage(), (0, 0, 0));
        // All slots come back: a new statement runs at once.
        drop(adm.acquire("dan", false).await.unwrap());
    }

    /// Through sessions: which statements take a slot, the queue as
    /// `system.queries` shows it, the refusal, the service's share.
    mod sessions {
        use std::sync::Arc;
        use std::time::{Duration, Instant};

        use futures::TryStreamExt;

        use crate::{Engine, EngineConfig, ErrorKind, Outcome, Session};

        async fn engine() -> (tempfile::TempDir, Arc<Engine>) {
            let dir = tempfile::tempdir().unwrap();
            let mut config = EngineConfig::new(dir.path().to_str().unwrap());
            config.max_running_queries = 1;
            config.max_queued_queries = 1;
            config.reserved_service_queries = 1;
            let engine = Engine::open(config).await.unwrap();
            (dir, engine)
        }

        async fn run(session: &Session, sql: &str) -> crate::Result<Vec<Vec<String>>> {
            let batches: Vec<_> = match session.execute(sql, vec![]).await? {
                Outcome::Rows { stream, .. } => stream.try_collect().await?,
                Outcome::Done { .. } => return Ok(vec![]),
            };
            Ok(crate::test_text::as_text(&batches))
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_saturated_server_queues_refuses_and_still_answers_the_admin() {
            let (_dir, engine) = engine().await;
            let admin = engine.session("admin").unwrap();
            // A query holds its slot until its stream ends (not read yet).
            let Outcome::Rows { stream: held, .. } =
                admin.execute("SELECT 42", vec![]).await.unwrap()
            else {
                panic!("a query gives rows");
            };
            assert_eq!(engine.admission().usage(), (1, 0, 0));
            // Bob's statement waits, `queued` (system.queries needs no slot).
            let bob = engine.session("bob").unwrap();
            let waiting = tokio::spawn(async move { run(&bob, "SELECT 1 + 1").await });
            let deadline = Instant::now() + Duration::from_secs(30);
            let queued = loop {
                let rows = run(
                    &admin,
                    "SELECT query_id, state, started_at IS NULL FROM system.queries \
                     WHERE user_name = 'bob' AND finished_at IS NULL",
                )
                .await
                .unwrap();
                if let Some(row) = rows.first() {
                    assert_eq!(row[1..], ["queued", "true"]);
                    break row[0].clone();
                }
                assert!(Instant::now() < deadline, "bob's statement never queued");
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            // The queue (1) is full: refused at once.
            let cat = engine.session("cat").unwrap();
            for sql in [
                "SELECT 3",
                // Not metadata alone: a join, a table function, a subquery.
                "SELECT count(*) FROM system.queries a, system.queries b",
                "SELECT count(*) FROM generate_series(1, 10)",
                "SELECT count(*) FROM system.queries WHERE rows IN (SELECT rows FROM system.queries)",
                "CREATE TABLE t AS SELECT 1 AS x",
            ] {
                let err = run(&cat, sql).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::ResourceExhausted, "{sql}: {err}");
                assert!(err.to_string().contains("--max-queued-queries 1"), "{err}");
            }
            // What needs no slot still answers.
            run(&cat, "SET datafusion.execution.batch_size = 100")
                .await
                .unwrap();
            let settings = run(&cat, "SHOW datafusion.execution.batch_size")
                .await
                .unwrap();
            assert_eq!(settings[0][1], "100");
            assert!(!run(&cat, "SHOW ALL").await.unwrap().is_empty());
            assert!(!run(&cat, "SHOW TABLES").await.unwrap().is_empty());
            let mine = run(
                &cat,
                "SELECT count(*) FROM system.queries WHERE user_name = 'cat'",
            )
            .await
            .unwrap();
            assert!(mine[0][0].parse::<u64>().unwrap() >= 5, "{mine:?}");
            // A service statement takes its reserved slot.
            let service = engine.service_session("seglake-collector").unwrap();
            assert_eq!(run(&service, "SELECT 5").await.unwrap(), [["5"]]);
            // Killing the queued statement takes it out of the queue.
            run(&admin, &format!("KILL QUERY '{queued}'"))
                .await
                .unwrap();
            let err = waiting.await.unwrap().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
            assert_eq!(engine.admission().usage(), (1, 0, 0));
            // A new statement waits, and runs once the held stream ends.
            let dan = engine.session("dan").unwrap();
            let waiting = tokio::spawn(async move { run(&dan, "SELECT 6 * 7").await });
            while engine.admission().usage().2 == 0 {
                assert!(!waiting.is_finished(), "dan's statement did not wait");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let rows: Vec<_> = held.try_collect().await.unwrap();
            assert_eq!(rows[0].num_rows(), 1);
            assert_eq!(waiting.await.unwrap().unwrap(), [["42"]]);
            assert_eq!(engine.admission().usage(), (0, 0, 0));
        }
    }

    #[test]
    fn no_running_slot_is_refused() {
        let err = Admission::new(Limits {
            running: 0,
            queued: 1,
            reserved: 1,
        })
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
}
