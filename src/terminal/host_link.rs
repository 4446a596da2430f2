//! The terminal's link to the acquirer host: one connection, opened when needed and
//! dropped after a timeout (a late answer then dies with it), requests matched to answers
//! by response MTI and STAN; anything else that arrives is journaled and ignored.

use std::time::Duration;

use poslab_iso8583::{Message, Spec};
use serde_json::json;

use crate::journal::Journal;
use crate::link::{BoxIo, Dialer};
use crate::net::FramedStream;

pub struct HostLink {
    dialer: Dialer,
    spec: Spec,
    conn: Option<FramedStream<BoxIo>>,
    journal: Journal,
    name: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("cannot reach the {0}: {1}")]
    Connect(&'static str, String),
    #[error("no answer from the {0} within {1:?}")]
    Timeout(&'static str, Duration),
    #[error("the {0} link failed: {1}")]
    Link(&'static str, String),
    #[error("cannot pack the request: {0}")]
    Pack(String),
}

impl ExchangeError {
    /// Whether the request may have reached the host (so a money-moving one must be
    /// reversed).
    pub fn maybe_delivered(&self) -> bool {
        !matches!(self, ExchangeError::Connect(..) | ExchangeError::Pack(_))
    }
}

fn answer_mti(request: &Message) -> String {
    request.mti.response().as_str().to_string()
}

impl HostLink {
    pub fn new(name: &'static str, dialer: Dialer, spec: Spec, journal: Journal) -> HostLink {
        HostLink {
            dialer,
            spec,
            conn: None,
            journal,
            name,
        }
    }

    /// Drops the connection (after a timeout, so that a late answer is never taken for
    /// the answer to the next request).
    pub fn drop_connection(&mut self) {
        self.conn = None;
    }

    /// Sends `request` and waits up to `timeout` for its answer.
    pub async fn exchange(
        &mut self,
        request: &Message,
        timeout: Duration,
    ) -> Result<Message, ExchangeError> {
        let name = self.name;
        let payload = self
            .spec
            .pack(request)
            .map_err(|e| ExchangeError::Pack(e.to_string()))?;
        let frame = self
            .spec
            .framing()
            .encode(&[], &payload, &[])
            .map_err(|e| ExchangeError::Pack(e.to_string()))?;
        if self.conn.is_none() {
            let stream = tokio::time::timeout(timeout, self.dialer.dial())
                .await
                .map_err(|_| ExchangeError::Connect(name, "connect timed out".into()))?
                .map_err(|e| ExchangeError::Connect(name, e.to_string()))?;
            self.conn = Some(FramedStream::new(stream));
        }
        let want_mti = answer_mti(request);
        let want_stan = request.text(11).map(str::to_owned);
        self.journal.record(
            name,
            "sent",
            json!({"mti": request.mti.as_str(), "stan": want_stan, "message": request.to_json(&self.spec)}),
        );
        let Some(conn) = self.conn.as_mut() else {
            return Err(ExchangeError::Link(name, "no connection".into()));
        };
        if let Err(e) = conn.write_all(&frame).await {
            self.conn = None;
            return Err(ExchangeError::Link(name, e.to_string()));
        }
        let framing = self.spec.framing().clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Err(ExchangeError::Link(name, "no connection".into()));
            };
            let next = tokio::time::timeout_at(deadline, conn.next(|b| framing.decode(b))).await;
            let frame = match next {
                Err(_) => {
                    self.conn = None;
                    return Err(ExchangeError::Timeout(name, timeout));
                }
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => {
                    self.conn = None;
                    return Err(ExchangeError::Link(
                        name,
                        "the host closed the connection".into(),
                    ));
                }
                Ok(Err(e)) => {
                    self.conn = None;
                    return Err(ExchangeError::Link(name, e.to_string()));
                }
            };
            match self.spec.unpack(&frame.payload) {
                Ok(answer)
                    if answer.mti.as_str() == want_mti
                        && answer.text(11).map(str::to_owned) == want_stan =>
                {
                    self.journal.record(
                        name,
                        "received",
                        json!({"mti": answer.mti.as_str(), "code": answer.text(39), "message": answer.to_json(&self.spec)}),
                    );
                    return Ok(answer);
                }
                Ok(other) => {
                    // a late answer to an earlier request, a duplicate, an unsolicited message
                    self.journal.record(
                        name,
                        "ignored",
                        json!({"mti": other.mti.as_str(), "stan": other.text(11), "code": other.text(39),
                               "why": format!("waiting for {want_mti} STAN {}", want_stan.as_deref().unwrap_or("-"))}),
                    );
                }
                Err(e) => {
                    self.journal.record(
                        name,
                        "bad-frame",
                        json!({"error": e.to_string(), "bytes": frame.payload.len()}),
                    );
                }
            }
        }
    }
}
