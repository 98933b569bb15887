//! Handshake: logs in with Basic credentials (or resumes a session with its
//! bearer token) and answers with the session's bearer token.

use std::pin::Pin;

use arrow_flight::error::FlightError;
use arrow_flight::{BasicAuth, HandshakeRequest, HandshakeResponse};
use futures::{Stream, stream};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::SeglakeFlightSql;
use crate::auth::{decode_basic, strip_scheme};
use crate::error::{Result, ServerError};

/// The handshake answer stream (the type the Flight SQL trait requires).
pub(super) type HandshakeStream =
    Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

impl SeglakeFlightSql {
    pub(super) async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let peer = request.remote_addr();
        let client = match header.as_deref() {
            Some(h) if strip_scheme(h, "basic").is_some() => {
                let (user, password) = decode_basic(strip_scheme(h, "basic").expect("checked"))?;
                self.sessions.login(&user, &password, peer).await?
            }
            Some(h) if strip_scheme(h, "bearer").is_some() => self
                .sessions
                .get(strip_scheme(h, "bearer").expect("checked").trim())?,
            _ => {
                // Older clients send arrow.flight.protocol.BasicAuth as the
                // handshake payload.
                let missing = || ServerError::Unauthenticated("missing credentials".into());
                let mut inbound = request.into_inner();
                let first = inbound
                    .message()
                    .await
                    .map_err(FlightError::from)?
                    .ok_or_else(missing)?;
                let auth = BasicAuth::decode(first.payload.as_ref()).map_err(|_| missing())?;
                self.sessions
                    .login(&auth.username, &auth.password, peer)
                    .await?
            }
        };
        let token = client.token.clone();
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| ServerError::Internal("token is not a valid header value".into()))?;
        let stream: HandshakeStream = Box::pin(stream::iter([Ok(response)]));
        let mut resp = Response::new(stream);
        resp.metadata_mut().insert("authorization", value);
        Ok(resp)
    }
}
