//! The fault proxy: TCP proxies whose connections run through fault pipelines, driven by
//! toxiproxy's REST API (2.x dialect), so toxiproxy clients and the Testcontainers module
//! drive poslab unchanged.
//!
//! Differences from toxiproxy, all on purpose:
//! - toxics given in a config file or a `/populate` body are applied (toxiproxy drops them);
//! - every random decision comes from a stream seeded by `--seed` and the toxic's key
//!   (proxy, connection number, direction, toxic name), and is journaled;
//! - toxic types beyond toxiproxy's (`loss`, `duplication`, `reordering`, `corruption`,
//!   `flapping`, `cut`, `refuse`, `dns_failure`, `down`, `message`) share the same API;
//! - the control plane never waits for the data plane: a handler changes state under a
//!   short lock and publishes it (tokio `watch`); connections pick it up on their own.
//!
//! Connections are numbered per proxy in accept order; connection `n` of proxy `host`
//! journals as link `proxy/host#n`, and its stages draw from `host#n/<stream>/<toxic>`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use poslab_faults::spec::{parse_proxies, DEFAULT_LISTEN};
use poslab_faults::{FaultError, ProxySpec, StreamDir, ToxicSpec};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::faultlink::{run_link, LinkCtx, LinkEnd, Side, ToxicSet};
use crate::journal::Journal;

/// The toxiproxy version this API speaks (reported by `GET /version`).
pub const TOXIPROXY_VERSION: &str = "2.12.0";

/// How long connecting to an upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// All proxies of one server, shared by the API handlers and the accept loops.
#[derive(Clone)]
pub struct Proxies {
    inner: Arc<Shared>,
}

struct Shared {
    seed: u64,
    journal: Journal,
    proxies: tokio::sync::Mutex<BTreeMap<String, Entry>>,
    shutdown: CancellationToken,
}

struct Entry {
    name: String,
    /// The listen address: as given while disabled, the bound address while listening.
    listen: String,
    upstream: String,
    enabled: bool,
    toxics: Vec<ToxicSpec>,
    upstream_tx: watch::Sender<ToxicSet>,
    downstream_tx: watch::Sender<ToxicSet>,
    /// Cancels the accept loop, which then drops the listener.
    accept: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    /// Cancels every open connection of the proxy.
    conns: CancellationToken,
    next_conn: Arc<AtomicU64>,
}

/// An API error: toxiproxy's `{"error": ..., "status": ...}` body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn proxy_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "proxy not found")
    }
    fn toxic_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "toxic not found")
    }
}

impl From<FaultError> for ApiError {
    fn from(err: FaultError) -> ApiError {
        let status = match &err {
            FaultError::ToxicExists(_) | FaultError::ProxyExists(_) => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.message, "status": self.status.as_u16()});
        json_response(self.status, &body)
    }
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

impl Entry {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": self.toxics_json(),
        })
    }

    /// Upstream toxics first, then downstream, each in the order they were added.
    fn toxics_json(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for dir in [StreamDir::Upstream, StreamDir::Downstream] {
            out.extend(
                self.toxics
                    .iter()
                    .filter(|t| t.stream == dir)
                    .map(ToxicSpec::to_json),
            );
        }
        out
    }

    fn publish(&self) {
        for (dir, tx) in [
            (StreamDir::Upstream, &self.upstream_tx),
            (StreamDir::Downstream, &self.downstream_tx),
        ] {
            let set: Vec<ToxicSpec> = self
                .toxics
                .iter()
                .filter(|t| t.stream == dir)
                .cloned()
                .collect();
            tx.send_replace(Arc::new(set));
        }
    }

    /// Stops listening and drops every open connection (toxiproxy's `Stop`). Waits for the
    /// accept loop to let go of the port (so it can be bound again at once), never for
    /// connections to drain.
    async fn stop(&mut self) {
        if let Some((accept, task)) = self.accept.take() {
            accept.cancel();
            let _ = task.await;
        }
        self.conns.cancel();
        self.conns = CancellationToken::new();
    }
}

impl Proxies {
    pub fn new(seed: u64, journal: Journal, shutdown: CancellationToken) -> Proxies {
        Proxies {
            inner: Arc::new(Shared {
                seed,
                journal,
                proxies: tokio::sync::Mutex::new(BTreeMap::new()),
                shutdown,
            }),
        }
    }

    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// Adds a proxy (and its toxics) and starts it when enabled.
    pub async fn create(&self, spec: ProxySpec) -> Result<Value, ApiError> {
        let mut map = self.inner.proxies.lock().await;
        if map.contains_key(&spec.name) {
            return Err(ApiError::new(StatusCode::CONFLICT, "proxy already exists"));
        }
        let mut entry = Entry {
            name: spec.name.clone(),
            listen: spec.listen,
            upstream: spec.upstream,
            enabled: false,
            toxics: spec.toxics,
            upstream_tx: watch::Sender::new(Arc::new(Vec::new())),
            downstream_tx: watch::Sender::new(Arc::new(Vec::new())),
            accept: None,
            conns: CancellationToken::new(),
            next_conn: Arc::new(AtomicU64::new(0)),
        };
        entry.publish();
        if spec.enabled {
            self.start(&mut entry)?;
        }
        let body = entry.to_json();
        self.inner.journal.record(
            &format!("proxy/{}", entry.name),
            "proxy",
            json!({"event": "created", "proxy": body}),
        );
        map.insert(spec.name, entry);
        Ok(body)
    }

    /// Binds the listener (synchronously: never while holding an await) and spawns the
    /// accept loop.
    fn start(&self, entry: &mut Entry) -> Result<(), ApiError> {
        if entry.accept.is_some() {
            return Ok(());
        }
        let listen = if entry.listen.is_empty() {
            DEFAULT_LISTEN.to_owned()
        } else {
            entry.listen.clone()
        };
        let std_listener = std::net::TcpListener::bind(&listen)
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .map_err(|err| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("listen tcp {listen}: {err}"),
                )
            })?;
        let listener = TcpListener::from_std(std_listener).map_err(|err| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("listen tcp {listen}: {err}"),
            )
        })?;
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or(listen);
        entry.listen = addr;
        entry.enabled = true;
        let accept = self.inner.shutdown.child_token();
        let conn = ConnSetup {
            proxy: entry.name.clone(),
            upstream: entry.upstream.clone(),
            upstream_rx: entry.upstream_tx.subscribe(),
            downstream_rx: entry.downstream_tx.subscribe(),
            seed: self.inner.seed,
            journal: self.inner.journal.clone(),
            conns: entry.conns.clone(),
            next_conn: entry.next_conn.clone(),
        };
        let task = tokio::spawn(accept_loop(listener, accept.clone(), conn));
        entry.accept = Some((accept, task));
        Ok(())
    }

    pub async fn list(&self) -> Value {
        let map = self.inner.proxies.lock().await;
        Value::Object(
            map.iter()
                .map(|(name, e)| (name.clone(), e.to_json()))
                .collect(),
        )
    }

    pub async fn show(&self, name: &str) -> Result<Value, ApiError> {
        let map = self.inner.proxies.lock().await;
        map.get(name)
            .map(Entry::to_json)
            .ok_or_else(ApiError::proxy_not_found)
    }

    /// `POST /proxies/{name}`: `enabled`, `listen` and `upstream` given replace the
    /// current ones; a new listen or upstream address restarts the proxy.
    pub async fn update(&self, name: &str, body: &[u8]) -> Result<Value, ApiError> {
        let input: Value = serde_json::from_slice(body).map_err(|err| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("bad request body: {err}"))
        })?;
        let mut map = self.inner.proxies.lock().await;
        let entry = map.get_mut(name).ok_or_else(ApiError::proxy_not_found)?;
        let field = |key: &str| input.get(key).filter(|v| !v.is_null());
        let bad = |key: &str, what: &str| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("bad request body: {key} must be {what}"),
            )
        };
        let listen = match field("listen") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad("listen", "a string")),
            None => entry.listen.clone(),
        };
        let upstream = match field("upstream") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad("upstream", "a string")),
            None => entry.upstream.clone(),
        };
        let enabled = match field("enabled") {
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("enabled", "a boolean")),
            None => entry.enabled,
        };
        let moved = listen != entry.listen || upstream != entry.upstream;
        if moved || !enabled {
            entry.stop().await;
            entry.enabled = false;
        }
        entry.listen = listen;
        entry.upstream = upstream;
        if enabled {
            self.start(entry)?;
        }
        let body = entry.to_json();
        self.inner.journal.record(
            &format!("proxy/{name}"),
            "proxy",
            json!({"event": "updated", "proxy": body}),
        );
        Ok(body)
    }

    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut map = self.inner.proxies.lock().await;
        let mut entry = map.remove(name).ok_or_else(ApiError::proxy_not_found)?;
        entry.stop().await;
        self.inner.journal.record(
            &format!("proxy/{name}"),
            "proxy",
            json!({"event": "deleted"}),
        );
        Ok(())
    }

    /// `POST /populate`: every proxy is checked first (all or nothing); a proxy that exists
    /// with the same listen and upstream is kept (its toxics replaced when the body gives
    /// some), otherwise it is replaced.
    pub async fn populate(&self, proxies: Vec<ProxySpec>) -> Result<Value, ApiError> {
        let mut out = Vec::new();
        for spec in proxies {
            let keep = {
                let mut map = self.inner.proxies.lock().await;
                match map.get_mut(&spec.name) {
                    Some(e) if e.listen == spec.listen && e.upstream == spec.upstream => {
                        if !spec.toxics.is_empty() {
                            e.toxics = spec.toxics.clone();
                            e.publish();
                        }
                        out.push(e.to_json());
                        true
                    }
                    Some(e) => {
                        e.stop().await;
                        map.remove(&spec.name);
                        false
                    }
                    None => false,
                }
            };
            if !keep {
                out.push(self.create(spec).await?);
            }
        }
        Ok(json!({ "proxies": out }))
    }

    /// `POST /reset`: every proxy enabled, every toxic removed.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut map = self.inner.proxies.lock().await;
        for entry in map.values_mut() {
            entry.toxics.clear();
            entry.publish();
            if !entry.enabled {
                self.start(entry)?;
            }
        }
        self.inner
            .journal
            .record("proxy", "proxy", json!({"event": "reset"}));
        Ok(())
    }

    pub async fn toxics(&self, proxy: &str) -> Result<Value, ApiError> {
        let map = self.inner.proxies.lock().await;
        let entry = map.get(proxy).ok_or_else(ApiError::proxy_not_found)?;
        Ok(Value::Array(entry.toxics_json()))
    }

    pub async fn add_toxic(&self, proxy: &str, body: &[u8]) -> Result<Value, ApiError> {
        let mut map = self.inner.proxies.lock().await;
        let entry = map.get_mut(proxy).ok_or_else(ApiError::proxy_not_found)?;
        let toxic = ToxicSpec::from_json(body)?;
        if entry.toxics.iter().any(|t| t.name == toxic.name) {
            return Err(ApiError::new(StatusCode::CONFLICT, "toxic already exists"));
        }
        let body = toxic.to_json();
        entry.toxics.push(toxic);
        entry.publish();
        self.inner.journal.record(
            &format!("proxy/{proxy}"),
            "toxic",
            json!({"event": "added", "toxic": body}),
        );
        Ok(body)
    }

    pub async fn show_toxic(&self, proxy: &str, toxic: &str) -> Result<Value, ApiError> {
        let map = self.inner.proxies.lock().await;
        let entry = map.get(proxy).ok_or_else(ApiError::proxy_not_found)?;
        entry
            .toxics
            .iter()
            .find(|t| t.name == toxic)
            .map(ToxicSpec::to_json)
            .ok_or_else(ApiError::toxic_not_found)
    }

    pub async fn update_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        let mut map = self.inner.proxies.lock().await;
        let entry = map.get_mut(proxy).ok_or_else(ApiError::proxy_not_found)?;
        let slot = entry
            .toxics
            .iter_mut()
            .find(|t| t.name == toxic)
            .ok_or_else(ApiError::toxic_not_found)?;
        *slot = slot.updated(body)?;
        let shown = slot.to_json();
        entry.publish();
        self.inner.journal.record(
            &format!("proxy/{proxy}"),
            "toxic",
            json!({"event": "updated", "toxic": shown}),
        );
        Ok(shown)
    }

    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ApiError> {
        let mut map = self.inner.proxies.lock().await;
        let entry = map.get_mut(proxy).ok_or_else(ApiError::proxy_not_found)?;
        let before = entry.toxics.len();
        entry.toxics.retain(|t| t.name != toxic);
        if entry.toxics.len() == before {
            return Err(ApiError::toxic_not_found());
        }
        entry.publish();
        self.inner.journal.record(
            &format!("proxy/{proxy}"),
            "toxic",
            json!({"event": "removed", "toxic": toxic}),
        );
        Ok(())
    }

    /// Stops every proxy (at shutdown).
    pub async fn stop_all(&self) {
        let mut map = self.inner.proxies.lock().await;
        for entry in map.values_mut() {
            entry.stop().await;
        }
    }
}

/// What a connection of a proxy needs.
#[derive(Clone)]
struct ConnSetup {
    proxy: String,
    upstream: String,
    upstream_rx: watch::Receiver<ToxicSet>,
    downstream_rx: watch::Receiver<ToxicSet>,
    seed: u64,
    journal: Journal,
    conns: CancellationToken,
    next_conn: Arc<AtomicU64>,
}

async fn accept_loop(listener: TcpListener, stop: CancellationToken, setup: ConnSetup) {
    let mut backoff = Duration::from_millis(1);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, addr)) => {
                backoff = Duration::from_millis(1);
                let _ = client.set_nodelay(true);
                let id = setup.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
                tokio::spawn(serve_conn(client, addr, id, setup.clone()));
            }
            Err(err) => {
                tracing::warn!(proxy = %setup.proxy, error = %err, "accept failed; retrying in {backoff:?}");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Closes with an RST instead of a FIN.
fn abort(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve_conn(client: TcpStream, addr: SocketAddr, id: u64, setup: ConnSetup) {
    let link = format!("{}#{id}", setup.proxy);
    let journal_link = format!("proxy/{link}");
    let (mut up, mut down) = Side::live_pair(
        setup.upstream_rx.clone(),
        setup.downstream_rx.clone(),
        setup.seed,
        &link,
        &poslab_faults::protocol::Tally::new(),
    );
    let ctx = LinkCtx {
        link: journal_link.clone(),
        journal: setup.journal.clone(),
        start: tokio::time::Instant::now(),
        cancel: setup.conns.child_token(),
    };
    let verdict = up
        .pipeline_mut()
        .handle_connect(Duration::ZERO, &setup.upstream)
        .or_else(|| {
            down.pipeline_mut()
                .handle_connect(Duration::ZERO, &setup.upstream)
        });
    for (dir, side) in [("upstream", &mut up), ("downstream", &mut down)] {
        for e in side.pipeline_mut().poll_events() {
            setup.journal.record(
                &format!("{journal_link}/{dir}"),
                "fault",
                json!({"stage": e.stage, "type": e.kind, "rng": e.rng, "link_ms": e.at_ms, "decision": e.decision}),
            );
        }
    }
    if let Some(action) = verdict {
        setup.journal.record(
            &journal_link,
            "connection",
            json!({"event": "refused", "client": addr.to_string(), "action": action}),
        );
        abort(client);
        return;
    }
    let server = tokio::select! {
        _ = ctx.cancel.cancelled() => return,
        server = crate::net::connect(&setup.upstream, CONNECT_TIMEOUT) => server,
    };
    let server = match server {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!(proxy = %setup.proxy, conn = id, error = format!("{err:#}"), "upstream unreachable");
            setup.journal.record(
                &journal_link,
                "connection",
                json!({"event": "upstream_failed", "client": addr.to_string(), "error": format!("{err:#}")}),
            );
            drop(client);
            return;
        }
    };
    setup.journal.record(
        &journal_link,
        "connection",
        json!({"event": "open", "client": addr.to_string(), "upstream": setup.upstream}),
    );
    let outcome = run_link(client, server, up, down, ctx).await;
    setup.journal.record(
        &journal_link,
        "connection",
        json!({"event": "closed", "end": format!("{:?}", outcome.end).to_lowercase()}),
    );
    if outcome.end == LinkEnd::Reset {
        abort(outcome.a);
        abort(outcome.b);
    }
}

/// Refuses requests from browsers (toxiproxy does the same, against CSRF from web pages).
pub(crate) async fn no_browsers(headers: HeaderMap, request: Request, next: Next) -> Response {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if agent.starts_with("Mozilla/") {
        return (StatusCode::FORBIDDEN, "User agent not allowed\n").into_response();
    }
    next.run(request).await
}

fn ok(status: StatusCode, result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(body) => json_response(status, &body),
        Err(err) => err.into_response(),
    }
}

fn no_content(result: Result<(), ApiError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn proxy_index(State(p): State<Proxies>) -> Response {
    json_response(StatusCode::OK, &p.list().await)
}

async fn proxy_create(State(p): State<Proxies>, body: Bytes) -> Response {
    let result = (|| {
        let value: Value = serde_json::from_slice(&body).map_err(|err| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("bad request body: {err}"))
        })?;
        for key in ["name", "upstream"] {
            if value
                .get(key)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("missing required field: {key}"),
                ));
            }
        }
        let spec = ProxySpec::from_value(&value, "proxy").map_err(|err| match err {
            FaultError::Config { reason, .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("bad request body: {reason}"),
            ),
            other => other.into(),
        })?;
        Ok(spec)
    })();
    let result = match result {
        Ok(spec) => p.create(spec).await,
        Err(err) => Err(err),
    };
    ok(StatusCode::CREATED, result)
}

async fn populate(State(p): State<Proxies>, body: Bytes) -> Response {
    let result = serde_json::from_slice::<Value>(&body)
        .map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, format!("bad request body: {err}")))
        .and_then(|v| {
            parse_proxies(&v).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
        });
    let result = match result {
        Ok(specs) => p.populate(specs).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(body) => json_response(StatusCode::CREATED, &body),
        Err(err) => json_response(
            err.status,
            &json!({"error": err.message, "status": err.status.as_u16(), "proxies": []}),
        ),
    }
}

async fn reset(State(p): State<Proxies>) -> Response {
    no_content(p.reset().await)
}

async fn version() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        format!("{{\"version\": \"{TOXIPROXY_VERSION}\"}}\n"),
    )
        .into_response()
}

async fn proxy_show(State(p): State<Proxies>, Path(name): Path<String>) -> Response {
    ok(StatusCode::OK, p.show(&name).await)
}

async fn proxy_update(State(p): State<Proxies>, Path(name): Path<String>, body: Bytes) -> Response {
    ok(StatusCode::OK, p.update(&name, &body).await)
}

async fn proxy_delete(State(p): State<Proxies>, Path(name): Path<String>) -> Response {
    no_content(p.delete(&name).await)
}

async fn toxic_index(State(p): State<Proxies>, Path(name): Path<String>) -> Response {
    ok(StatusCode::OK, p.toxics(&name).await)
}

async fn toxic_create(State(p): State<Proxies>, Path(name): Path<String>, body: Bytes) -> Response {
    ok(StatusCode::OK, p.add_toxic(&name, &body).await)
}

async fn toxic_show(
    State(p): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
) -> Response {
    ok(StatusCode::OK, p.show_toxic(&name, &toxic).await)
}

async fn toxic_update(
    State(p): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    ok(StatusCode::OK, p.update_toxic(&name, &toxic, &body).await)
}

async fn toxic_delete(
    State(p): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
) -> Response {
    no_content(p.remove_toxic(&name, &toxic).await)
}

/// The REST API (toxiproxy 2.x paths, bodies, status codes and error bodies).
pub fn router(proxies: Proxies) -> Router {
    Router::new()
        .route("/reset", post(reset))
        .route("/proxies", get(proxy_index).post(proxy_create))
        .route("/populate", post(populate))
        .route(
            "/proxies/{proxy}",
            get(proxy_show)
                .post(proxy_update)
                .patch(proxy_update)
                .delete(proxy_delete),
        )
        .route(
            "/proxies/{proxy}/toxics",
            get(toxic_index).post(toxic_create),
        )
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(toxic_show)
                .post(toxic_update)
                .patch(toxic_update)
                .delete(toxic_delete),
        )
        .route("/version", get(version))
        .layer(middleware::from_fn(no_browsers))
        .with_state(proxies)
}

/// Serves the API on `listener` until `shutdown` fires; then stops every proxy.
pub async fn serve_api(
    listener: TcpListener,
    proxies: Proxies,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = router(proxies.clone());
    let stop = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    proxies.stop_all().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies() -> Proxies {
        Proxies::new(1, Journal::in_memory(), CancellationToken::new())
    }

    fn spec(name: &str) -> ProxySpec {
        ProxySpec {
            name: name.into(),
            listen: "127.0.0.1:0".into(),
            upstream: "127.0.0.1:9".into(),
            enabled: true,
            toxics: Vec::new(),
        }
    }

    #[tokio::test]
    async fn toxic_lifecycle_matches_toxiproxy() {
        let p = proxies();
        let created = p.create(spec("db")).await.unwrap();
        assert_ne!(created["listen"], "127.0.0.1:0", "the bound port is shown");
        assert_eq!(
            p.create(spec("db")).await.unwrap_err().status,
            StatusCode::CONFLICT
        );

        let t = p
            .add_toxic(
                "db",
                br#"{"type":"latency","stream":"upstream","attributes":{"latency":10}}"#,
            )
            .await
            .unwrap();
        assert_eq!(t["name"], "latency_upstream");
        let again = p
            .add_toxic("db", br#"{"type":"latency","stream":"upstream"}"#)
            .await
            .unwrap_err();
        assert_eq!(
            (again.status, again.message.as_str()),
            (StatusCode::CONFLICT, "toxic already exists")
        );
        let bad = p
            .add_toxic("db", br#"{"type":"teleport"}"#)
            .await
            .unwrap_err();
        assert_eq!(
            (bad.status, bad.message.as_str()),
            (StatusCode::BAD_REQUEST, "invalid toxic type")
        );
        assert_eq!(
            p.add_toxic("nope", b"{}").await.unwrap_err().message,
            "proxy not found"
        );

        let u = p
            .update_toxic("db", "latency_upstream", br#"{"attributes":{"jitter":3}}"#)
            .await
            .unwrap();
        assert_eq!(u["attributes"], json!({"latency": 10, "jitter": 3}));
        assert_eq!(p.toxics("db").await.unwrap().as_array().unwrap().len(), 1);
        p.remove_toxic("db", "latency_upstream").await.unwrap();
        assert_eq!(
            p.remove_toxic("db", "latency_upstream")
                .await
                .unwrap_err()
                .message,
            "toxic not found"
        );

        let off = p.update("db", br#"{"enabled":false}"#).await.unwrap();
        assert_eq!(off["enabled"], false);
        p.add_toxic("db", br#"{"type":"loss","attributes":{"probability":0.5}}"#)
            .await
            .unwrap();
        p.reset().await.unwrap();
        let shown = p.show("db").await.unwrap();
        assert_eq!(shown["enabled"], true);
        assert_eq!(shown["toxics"], json!([]));
        p.delete("db").await.unwrap();
        assert_eq!(
            p.show("db").await.unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn populate_keeps_identical_proxies_and_replaces_moved_ones() {
        let p = proxies();
        let first = p.create(spec("a")).await.unwrap();
        let listen = first["listen"].as_str().unwrap().to_owned();
        let same = ProxySpec {
            listen: listen.clone(),
            ..spec("a")
        };
        let out = p.populate(vec![same, spec("b")]).await.unwrap();
        assert_eq!(out["proxies"][0]["listen"], listen.as_str());
        assert_eq!(out["proxies"].as_array().unwrap().len(), 2);
        let moved = ProxySpec {
            upstream: "127.0.0.1:10".into(),
            ..spec("a")
        };
        let out = p.populate(vec![moved]).await.unwrap();
        assert_eq!(out["proxies"][0]["upstream"], "127.0.0.1:10");
    }
}
