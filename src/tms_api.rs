//! The control API of `poslab tms --api ADDR`: what an operator of a real TMS does from its
//! console, over JSON/HTTP, on a running TMS — so every maintenance flow can be driven
//! against the CLI process (by a test, a CI job or a person with curl), not only from the
//! features. Loopback unless told otherwise; requests from browsers are refused.
//!
//! ```text
//! GET    /version
//! GET    /terminals                          every terminal's record (keys by KCV only)
//! POST   /terminals                          register one {tid, mid, model, serial, ...}
//! GET    /terminals/{tid}                    its record
//! POST   /terminals/{tid}/orders             {"order": "keys-rotate"|"keys-load"|"params"|"logs"|"decommission"}
//! POST   /terminals/{tid}/replacement        {"serial": "PT-0002"}: device exchange
//! GET    /terminals/{tid}/logs               its last uploaded logs (text)
//! PUT    /parameter-sets/{name}              {version, terminal: {...}, tms: {...}}
//! POST   /packages                           {id, version, image: {generate: {...}}, target, waves}
//! GET    /packages/{id}                      its rollout: members and waves, successes, failures, halted
//! GET    /faults, POST /faults, DELETE /faults   {fault: ..., tid, times}
//! ```

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use poslab_tms::config::{Fault, PackageConfig, TerminalEntry};
use poslab_tms::params::ParameterSet;
use poslab_tms::Order;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::proxy::{json_response, no_browsers, ApiError};
use crate::tms::TmsServer;

type ApiResult = Result<Response, ApiError>;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, message)
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| bad(format!("bad request body: {e}")))
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn journal(server: &TmsServer, what: &str, body: Value) {
    server
        .journal()
        .record("tms", "api", json!({"request": what, "body": body}));
}

async fn version() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"poslab": env!("CARGO_PKG_VERSION"), "api": "tms/1"}),
    )
}

async fn terminals(State(s): State<TmsServer>) -> Response {
    let d = s.lock();
    let all: Vec<Value> = d.terminals().map(to_value).collect();
    json_response(StatusCode::OK, &Value::Array(all))
}

async fn terminal(State(s): State<TmsServer>, Path(tid): Path<String>) -> ApiResult {
    let d = s.lock();
    let r = d
        .terminal(&tid)
        .ok_or_else(|| not_found(format!("no terminal {tid}")))?;
    Ok(json_response(StatusCode::OK, &to_value(r)))
}

async fn register(State(s): State<TmsServer>, bytes: Bytes) -> ApiResult {
    let entry: TerminalEntry = body(&bytes)?;
    let mut d = s.lock();
    d.add_terminal(&entry).map_err(|e| bad(e.to_string()))?;
    journal(&s, "register", json!({"tid": entry.tid, "mid": entry.mid}));
    let r = d.terminal(&entry.tid).map(to_value).unwrap_or(Value::Null);
    Ok(json_response(StatusCode::CREATED, &r))
}

async fn order(State(s): State<TmsServer>, Path(tid): Path<String>, bytes: Bytes) -> ApiResult {
    let v: Value = body(&bytes)?;
    let text = v
        .get("order")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("expected {\"order\": \"keys-rotate\"|\"keys-load\"|\"params\"|\"logs\"|\"decommission\"}"))?;
    let order = Order::parse(text);
    if matches!(order, Order::Other(_) | Order::Firmware) {
        return Err(bad(format!(
            "order {text:?}: keys-rotate, keys-load, keys-dukpt, params, logs or decommission (firmware follows the packages)"
        )));
    }
    let mut d = s.lock();
    d.order(&tid, order).map_err(|e| not_found(e.to_string()))?;
    journal(&s, "order", json!({"tid": tid, "order": text}));
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn replacement(
    State(s): State<TmsServer>,
    Path(tid): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let v: Value = body(&bytes)?;
    let serial = v
        .get("serial")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("expected {\"serial\": \"...\"}"))?;
    let mut d = s.lock();
    d.provision_replacement(&tid, serial)
        .map_err(|e| bad(e.to_string()))?;
    journal(&s, "replacement", json!({"tid": tid, "serial": serial}));
    let r = d.terminal(&tid).map(to_value).unwrap_or(Value::Null);
    Ok(json_response(StatusCode::OK, &r))
}

async fn logs(State(s): State<TmsServer>, Path(tid): Path<String>) -> ApiResult {
    let d = s.lock();
    let r = d
        .terminal(&tid)
        .ok_or_else(|| not_found(format!("no terminal {tid}")))?;
    let logs = r
        .logs
        .clone()
        .ok_or_else(|| not_found(format!("terminal {tid} has uploaded no logs")))?;
    Ok((
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        logs,
    )
        .into_response())
}

async fn parameter_set(
    State(s): State<TmsServer>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let set: ParameterSet = body(&bytes)?;
    if set.version.trim().is_empty() {
        return Err(bad("a parameter set needs a version"));
    }
    journal(
        &s,
        "parameters",
        json!({"name": name, "version": set.version}),
    );
    s.lock().publish_parameters(&name, set);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn package(State(s): State<TmsServer>, bytes: Bytes) -> ApiResult {
    let cfg: PackageConfig = body(&bytes)?;
    let id = cfg.id.clone();
    let version = cfg.version.clone();
    let mut d = s.lock();
    d.publish_package(cfg).map_err(|e| bad(e.to_string()))?;
    journal(&s, "package", json!({"id": id, "version": version}));
    let manifest = d.manifest(&id).map(|m| {
        json!({"id": m.id, "version": m.version, "size": m.size,
               "sha256": hex::encode(m.sha256)})
    });
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"manifest": manifest, "rollout": d.rollout(&id).map(|r| to_value(&r))}),
    ))
}

async fn rollout(State(s): State<TmsServer>, Path(id): Path<String>) -> ApiResult {
    let d = s.lock();
    let r = d
        .rollout(&id)
        .ok_or_else(|| not_found(format!("no package {id}")))?;
    Ok(json_response(StatusCode::OK, &to_value(&r)))
}

async fn faults(State(s): State<TmsServer>) -> Response {
    let f = s.lock().faults();
    json_response(StatusCode::OK, &to_value(&f))
}

async fn add_fault(State(s): State<TmsServer>, bytes: Bytes) -> ApiResult {
    let fault: Fault = body(&bytes)?;
    journal(&s, "fault", to_value(&fault));
    s.lock().set_fault(fault);
    Ok(StatusCode::CREATED.into_response())
}

async fn clear_faults(State(s): State<TmsServer>) -> Response {
    journal(&s, "faults-cleared", Value::Null);
    s.lock().clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

pub fn router(server: TmsServer) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/terminals", get(terminals).post(register))
        .route("/terminals/{tid}", get(terminal))
        .route("/terminals/{tid}/orders", post(order))
        .route("/terminals/{tid}/replacement", post(replacement))
        .route("/terminals/{tid}/logs", get(logs))
        .route("/parameter-sets/{name}", put(parameter_set))
        .route("/packages", post(package))
        .route("/packages/{id}", get(rollout))
        .route("/faults", get(faults).post(add_fault).delete(clear_faults))
        .layer(middleware::from_fn(no_browsers))
        .with_state(server)
}

/// Serves the API on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    server: TmsServer,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, router(server))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
