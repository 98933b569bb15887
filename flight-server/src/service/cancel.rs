//! Cancelling a query by its `FlightInfo`: the Flight `CancelFlightInfo`
//! action and Flight SQL's older `CancelQuery`.
//!
//! A query's `FlightInfo` carries one ticket, a sealed handle unique to that
//! `GetFlightInfo` (see [`crate::handle`]). Cancelling it stops every `DoGet`
//! of the ticket in progress (its stream is dropped, which stops the
//! statement's work, as when the client closes the stream; the statement
//! ends `cancelled` in `system.queries`) and refuses every later `DoGet` of
//! it with CANCELLED. Only the ticket's owner can cancel it: the handle is
//! opened for the caller like at `DoGet`, and another user's is refused.
//!
//! Cancelling runs no statement and changes nothing on disk: it is the
//! client stopping its own call, with the same right as closing its stream.
//! A command's `FlightInfo` (commands run at `GetFlightInfo`) is not
//! cancellable: it already ran.

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, Any, CommandPreparedStatementQuery,
    TicketStatementQuery,
};
use arrow_flight::{CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightInfo};
use bytes::Bytes;
use futures::{FutureExt, Stream};
use parking_lot::Mutex;
use prost::Message;
use seglake_engine::EngineError;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::SeglakeFlightSql;
use super::encoding::FlightDataStream;
use crate::auth::ClientSession;
use crate::error::{Result, ServerError};
use crate::handle::Payload;

/// How many cancelled tickets are remembered (the oldest is forgotten
/// first; a forgotten one could be fetched again).
const REMEMBERED: usize = 10_000;

/// The tickets being fetched and the cancelled ones, server-wide.
#[derive(Debug, Default)]
pub(crate) struct Cancels {
    state: Mutex<State>,
    next: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// The `DoGet`s in progress, by ticket handle.
    running: HashMap<Bytes, Vec<(u64, CancellationToken)>>,
    cancelled: HashSet<Bytes>,
    order: VecDeque<Bytes>,
}

/// One `DoGet` of a ticket in progress; it leaves the registry when
/// dropped.
pub(crate) struct Fetch {
    cancels: Arc<Cancels>,
    handle: Bytes,
    id: u64,
    token: CancellationToken,
}

impl Cancels {
    /// A `DoGet` of `handle` begins; refused when the ticket was cancelled.
    pub(crate) fn begin(self: &Arc<Self>, handle: &[u8]) -> Result<Fetch> {
        let handle = Bytes::copy_from_slice(handle);
        let mut state = self.state.lock();
        if state.cancelled.contains(&handle) {
            return Err(cancelled());
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        state
            .running
            .entry(handle.clone())
            .or_default()
            .push((id, token.clone()));
        Ok(Fetch {
            cancels: Arc::clone(self),
            handle,
            id,
            token,
        })
    }

    /// Cancels the ticket `handle`: its fetches in progress stop, later
    /// ones are refused. How many fetches were stopped.
    pub(crate) fn cancel(&self, handle: &[u8]) -> usize {
        let handle = Bytes::copy_from_slice(handle);
        let mut state = self.state.lock();
        if state.cancelled.insert(handle.clone()) {
            state.order.push_back(handle.clone());
            while state.order.len() > REMEMBERED {
                if let Some(old) = state.order.pop_front() {
                    state.cancelled.remove(&old);
                }
            }
        }
        let running = state.running.get(&handle).map_or(&[][..], Vec::as_slice);
        for (_, token) in running {
            token.cancel();
        }
        running.len()
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        let mut state = self.cancels.state.lock();
        if let Some(list) = state.running.get_mut(&self.handle) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                state.running.remove(&self.handle);
            }
        }
    }
}

impl Fetch {
    /// Fires when the ticket is cancelled.
    pub(crate) fn cancelled(&self) -> WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }

    /// `stream`, stopped (dropped, which stops the statement) when the
    /// ticket is cancelled; the fetch ends with the stream.
    pub(crate) fn watch(self, stream: FlightDataStream) -> FlightDataStream {
        Box::pin(Watched {
            cancelled: Box::pin(self.cancelled()),
            inner: Some(stream),
            _fetch: self,
        })
    }
}

struct Watched {
    inner: Option<FlightDataStream>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    _fetch: Fetch,
}

impl Stream for Watched {
    type Item = Result<arrow_flight::FlightData>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = inner.as_mut().poll_next(cx) {
            if item.is_none() {
                self.inner = None;
            }
            return Poll::Ready(item);
        }
        if self.cancelled.poll_unpin(cx).is_ready() {
            self.inner = None;
            return Poll::Ready(Some(Err(cancelled())));
        }
        Poll::Pending
    }
}

pub(super) fn cancelled() -> ServerError {
    ServerError::Engine(EngineError::Cancelled(
        "the query was cancelled by its client (CancelFlightInfo)".into(),
    ))
}

impl SeglakeFlightSql {
    /// `CancelFlightInfo`: the action body is a `CancelFlightInfoRequest`.
    pub(super) fn cancel_flight_info(&self, client: &ClientSession, body: &[u8]) -> Result<Bytes> {
        let request = CancelFlightInfoRequest::decode(body).map_err(|e| {
            ServerError::InvalidArgument(format!("bad CancelFlightInfoRequest: {e}"))
        })?;
        let info = request.info.ok_or_else(|| {
            ServerError::InvalidArgument("CancelFlightInfoRequest without a FlightInfo".into())
        })?;
        let status = match self.cancel_info(client, &info)? {
            true => CancelStatus::Cancelled,
            false => CancelStatus::NotCancellable,
        };
        Ok(CancelFlightInfoResult::new(status).encode_to_vec().into())
    }

    /// Flight SQL's `CancelQuery` (deprecated for `CancelFlightInfo`).
    pub(super) fn cancel_query(
        &self,
        client: &ClientSession,
        request: ActionCancelQueryRequest,
    ) -> Result<ActionCancelQueryResult> {
        let info = FlightInfo::decode(request.info)
            .map_err(|e| ServerError::InvalidArgument(format!("bad FlightInfo: {e}")))?;
        // `ActionCancelQueryResult.CancelResult` (not re-exported by
        // arrow-flight): 1 cancelled, 3 not cancellable.
        let result = match self.cancel_info(client, &info)? {
            true => 1,
            false => 3,
        };
        Ok(ActionCancelQueryResult { result })
    }

    /// Cancels the tickets of `info`; false when it holds no query (a
    /// command's, which already ran).
    fn cancel_info(&self, client: &ClientSession, info: &FlightInfo) -> Result<bool> {
        let mut handles = vec![];
        for endpoint in &info.endpoint {
            let Some(ticket) = &endpoint.ticket else {
                continue;
            };
            let handle = ticket_handle(&ticket.ticket)?;
            // The caller's own ticket only (as at DoGet).
            if let Payload::Statement { .. } = self.sealer.open(client.user(), &handle)? {
                handles.push(handle);
            }
        }
        if handles.is_empty() {
            return Ok(false);
        }
        for handle in &handles {
            let stopped = self.cancels.cancel(handle);
            tracing::debug!(user = client.user(), stopped, "ticket cancelled");
        }
        Ok(true)
    }
}

/// The statement handle a ticket carries.
fn ticket_handle(ticket: &[u8]) -> Result<Bytes> {
    let bad = || ServerError::InvalidArgument("the FlightInfo's ticket is not Seglake's".into());
    let any = Any::decode(ticket).map_err(|_| bad())?;
    if let Some(t) = any.unpack::<TicketStatementQuery>().map_err(|_| bad())? {
        return Ok(t.statement_handle);
    }
    if let Some(p) = any
        .unpack::<CommandPreparedStatementQuery>()
        .map_err(|_| bad())?
    {
        return Ok(p.prepared_statement_handle);
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_flight::sql::ProstMessageExt;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_cancelled_ticket_stops_its_fetches_and_refuses_later_ones() {
        let cancels = Arc::new(Cancels::default());
        let first = cancels.begin(b"t1").unwrap();
        let other = cancels.begin(b"t2").unwrap();
        let mut stream = first.watch(Box::pin(futures::stream::pending()));
        assert_eq!(cancels.cancel(b"t1"), 1);
        let item = stream.next().await.expect("an error, then the end");
        assert!(matches!(
            item,
            Err(ServerError::Engine(EngineError::Cancelled(_)))
        ));
        assert!(stream.next().await.is_none());
        drop(stream);
        assert!(!cancels.state.lock().running.contains_key(&b"t1"[..]));
        assert!(matches!(
            cancels.begin(b"t1"),
            Err(ServerError::Engine(EngineError::Cancelled(_)))
        ));
        // Another ticket goes on.
        assert!(!other.token.is_cancelled());
    }

    #[test]
    fn only_the_newest_cancels_are_remembered() {
        let cancels = Arc::new(Cancels::default());
        for i in 0..REMEMBERED + 1 {
            cancels.cancel(format!("t{i}").as_bytes());
        }
        assert!(cancels.begin(b"t0").is_ok());
        assert!(cancels.begin(b"t1").is_err());
    }

    #[test]
    fn foreign_tickets_are_refused() {
        assert!(ticket_handle(b"garbage").is_err());
        let any = arrow_flight::sql::CommandGetCatalogs {}
            .as_any()
            .encode_to_vec();
        assert!(matches!(
            ticket_handle(&any),
            Err(ServerError::InvalidArgument(_))
        ));
    }
}
