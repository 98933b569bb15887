//! The `FlightService` the server exposes: authenticates every call but
//! `Handshake`, then delegates to the Flight SQL implementation. It also
//! answers `GetSchema`, which `FlightSqlService` cannot override.

use std::sync::Arc;

use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo,
    SchemaAsIpc, SchemaResult, Ticket,
};
use tonic::{Request, Response, Status, Streaming};

use crate::auth::ClientSession;
use crate::error::dispatch_status;
use crate::service::{SeglakeFlightSql, schema_for};

#[derive(Debug, Clone)]
pub struct SeglakeService {
    inner: Arc<SeglakeFlightSql>,
}

impl SeglakeService {
    pub fn new(inner: SeglakeFlightSql) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Checks the bearer token (or Basic credentials) and attaches the
    /// caller's session.
    async fn authorize<T>(&self, request: &mut Request<T>) -> Result<Arc<ClientSession>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let client = self
            .inner
            .sessions
            .authenticate(header, request.remote_addr())
            .await?;
        request.extensions_mut().insert(Arc::clone(&client));
        Ok(client)
    }
}

type Inner = SeglakeFlightSql;

#[tonic::async_trait]
impl FlightService for SeglakeService {
    type HandshakeStream = <Inner as FlightService>::HandshakeStream;
    type ListFlightsStream = <Inner as FlightService>::ListFlightsStream;
    type DoGetStream = <Inner as FlightService>::DoGetStream;
    type DoPutStream = <Inner as FlightService>::DoPutStream;
    type DoActionStream = <Inner as FlightService>::DoActionStream;
    type ListActionsStream = <Inner as FlightService>::ListActionsStream;
    type DoExchangeStream = <Inner as FlightService>::DoExchangeStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        FlightService::handshake(self.inner.as_ref(), request).await
    }

    async fn list_flights(
        &self,
        mut request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        self.authorize(&mut request).await?;
        FlightService::list_flights(self.inner.as_ref(), request).await
    }

    async fn get_flight_info(
        &self,
        mut request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&mut request).await?;
        FlightService::get_flight_info(self.inner.as_ref(), request)
            .await
            .map_err(dispatch_status)
    }

    async fn poll_flight_info(
        &self,
        mut request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        self.authorize(&mut request).await?;
        FlightService::poll_flight_info(self.inner.as_ref(), request).await
    }

    async fn get_schema(
        &self,
        mut request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let client = self.authorize(&mut request).await?;
        let schema = schema_for(&self.inner, &client, &request.get_ref().cmd).await?;
        let result: SchemaResult = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
        Ok(Response::new(result))
    }

    async fn do_get(
        &self,
        mut request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        self.authorize(&mut request).await?;
        FlightService::do_get(self.inner.as_ref(), request)
            .await
            .map_err(dispatch_status)
    }

    async fn do_put(
        &self,
        mut request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        self.authorize(&mut request).await?;
        FlightService::do_put(self.inner.as_ref(), request)
            .await
            .map_err(dispatch_status)
    }

    async fn do_action(
        &self,
        mut request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        self.authorize(&mut request).await?;
        FlightService::do_action(self.inner.as_ref(), request)
            .await
            .map_err(dispatch_status)
    }

    async fn list_actions(
        &self,
        mut request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        self.authorize(&mut request).await?;
        FlightService::list_actions(self.inner.as_ref(), request).await
    }

    async fn do_exchange(
        &self,
        mut request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.authorize(&mut request).await?;
        FlightService::do_exchange(self.inner.as_ref(), request).await
    }
}
