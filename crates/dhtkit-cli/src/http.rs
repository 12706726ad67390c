//! `dhtkit node --http ADDR`: the running node's HTTP/JSON API, for programs in any language,
//! and pkarr's relay protocol (see [`crate::pkarr`]) on the same server.
//!
//! Every route is described in `/openapi.json` (OpenAPI 3.0). Bodies are JSON, at most
//! [`MAX_BODY`] bytes; at most `max_requests` requests are served at once (others get 429);
//! every error is a JSON object `{"status", "code", "message"}`. Lookups run on the node
//! itself, so they share its limits (a lookup the node refuses is a 503 `busy`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use dhtkit::{Dht, Error, Id, Item};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::oneshot::{hex, parse_hex_bytes, put_json, report_json, value_bytes};
use crate::BadInput;

/// Most bytes of a request body (a BEP 44 value is at most 1,000 bytes; hex doubles it).
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// The HTTP server's settings.
pub(crate) struct HttpOptions {
    /// Where to listen.
    pub bind: SocketAddr,
    /// Users allowed in (HTTP Basic); `None` lets anyone who can reach `bind` in.
    pub auth: Option<Arc<dhtkit_web::auth::Credentials>>,
    /// The node's own ed25519 seed, for mutable puts the caller does not sign.
    pub key: Option<[u8; 32]>,
    /// Most requests served at once.
    pub max_requests: usize,
    /// pkarr relay settings.
    pub pkarr: crate::pkarr::RelayOptions,
}

/// What every handler shares.
pub(crate) struct Api {
    pub dht: Dht,
    key: Option<[u8; 32]>,
    auth: Option<Arc<dhtkit_web::auth::Credentials>>,
    permits: Arc<tokio::sync::Semaphore>,
    pub pkarr: crate::pkarr::Relay,
}

type Shared = State<Arc<Api>>;

/// An error response: `{"status": 400, "code": "bad_hex", "message": "..."}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Fields added to the body (a refused item's KRPC code, a get's report).
    pub extra: Option<Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }

    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn with(mut self, extra: Value) -> Self {
        self.extra = Some(extra);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "status": self.status.as_u16(),
            "code": self.code,
            "message": self.message,
        });
        if let (Some(Value::Object(extra)), Some(obj)) = (self.extra, body.as_object_mut()) {
            obj.extend(extra);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

/// The node's errors as HTTP: a refusal by the node is 503, bad items 400.
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidItem { code, message } => {
                ApiError::bad("invalid_item", message).with(json!({"krpc_code": code}))
            }
            Error::Refused(why) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", why),
            Error::Timeout => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", e.to_string()),
            Error::Remote { code, message } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "remote_error", message)
                    .with(json!({"krpc_code": code}))
            }
            Error::BadAddress(a) => ApiError::bad("bad_address", format!("bad address {a:?}")),
            Error::Shutdown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the node is shutting down",
            ),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "node_error",
                other.to_string(),
            ),
        }
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(v: Value) -> ApiResult {
    Ok(axum::Json(v).into_response())
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes.
async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes = read_body(body, MAX_BODY).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad("bad_json", e.to_string()))
}

/// A body of at most `limit` bytes; 413 beyond.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is over {limit} bytes"),
        )
    })
}

fn id_of(what: &'static str, s: &str) -> Result<Id, ApiError> {
    s.parse::<Id>()
        .map_err(|_| ApiError::bad("bad_id", format!("{what} {s:?} is not 40 hex digits")))
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(t)| t)
        .map_err(|e| ApiError::bad("bad_path", e.body_text()))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad("bad_query", e.body_text()))
}

fn addr_of(s: &str) -> Result<SocketAddr, ApiError> {
    s.parse::<SocketAddr>().map_err(|_| {
        ApiError::bad(
            "bad_address",
            format!("{s:?} is not IP:PORT (IPv6 as [ADDR]:PORT)"),
        )
    })
}

fn hex_field(name: &'static str, s: &str) -> Result<Vec<u8>, ApiError> {
    parse_hex_bytes(s).ok_or_else(|| {
        ApiError::bad(
            "bad_hex",
            format!("{name} is not an even count of hex digits"),
        )
    })
}

fn nodes_json(nodes: &[(Id, SocketAddr)]) -> Value {
    Value::Array(
        nodes
            .iter()
            .map(|(id, a)| json!({"id": id.to_hex(), "addr": a.to_string()}))
            .collect(),
    )
}

/// Starts the server; returns the address it listens on.
pub(crate) async fn serve(dht: Dht, o: HttpOptions) -> Result<SocketAddr, BadInput> {
    let listener = tokio::net::TcpListener::bind(o.bind)
        .await
        .map_err(|e| BadInput(format!("--http: cannot listen on {}: {e}", o.bind)))?;
    let local = listener.local_addr().unwrap_or(o.bind);
    let app = router(Arc::new(Api {
        pkarr: crate::pkarr::Relay::new(o.pkarr),
        dht,
        key: o.key,
        auth: o.auth,
        permits: Arc::new(tokio::sync::Semaphore::new(o.max_requests.max(1))),
    }));
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("http server: {e}");
        }
    });
    Ok(local)
}

fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/api/stats", get(stats))
        .route("/api/size", get(size))
        .route("/api/routing-table", get(routing_table))
        .route("/api/peers/{info_hash}", get(peers))
        .route("/api/announce", post(announce))
        .route("/api/advertise", post(advertise))
        .route(
            "/api/advertise/{info_hash}",
            axum::routing::delete(stop_advertising),
        )
        .route("/api/find_node/{target}", get(find_node))
        .route("/api/ping", post(ping))
        .route("/api/sample", get(sample))
        .route("/api/scrape/{info_hash}", get(scrape))
        .route("/api/items/{target}", get(get_item))
        .route("/api/items/immutable", post(put_immutable))
        .route("/api/items/mutable", post(put_mutable))
        .route(
            "/{key}",
            get(crate::pkarr::get_record)
                .put(crate::pkarr::put_record)
                .options(crate::pkarr::preflight),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(api.clone(), gate))
        .with_state(api)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {}; see /openapi.json", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not served at {}; see /openapi.json",
            uri.path()
        ),
    )
}

/// Authentication, then a permit from the concurrency limit (429 when none is free).
async fn gate(State(api): Shared, req: Request, next: Next) -> Response {
    if let Some(creds) = &api.auth {
        let user = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(dhtkit_web::auth::basic);
        let allowed = match user {
            Some((u, p)) => creds.check(&u, &p).await,
            None => false,
        };
        if !allowed && req.method() != Method::OPTIONS {
            let mut r = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this API needs a user and password (HTTP Basic)",
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"dhtkit\", charset=\"UTF-8\""),
            );
            return r;
        }
    }
    let Ok(permit) = api.permits.clone().try_acquire_owned() else {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many requests at once; try again",
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    // The permit is held until the body is sent: a streamed one (get_peers) holds it until
    // its lookup ends.
    let (parts, body) = next.run(req).await.into_parts();
    if axum::body::HttpBody::size_hint(&body).exact().is_some() {
        // Already whole (and its length sent as Content-Length): the permit goes now.
        return Response::from_parts(parts, body);
    }
    let body = futures_util::StreamExt::map(body.into_data_stream(), move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

async fn stats(State(api): Shared) -> ApiResult {
    let s = api.dht.stats().await?;
    let n = &s.node;
    ok(json!({
        "id": s.id.to_hex(),
        "local_addrs": api.dht.local_addrs().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "nodes": s.nodes,
        "peers_stored": s.peers_stored,
        "infohashes_stored": s.infohashes_stored,
        "lookups_running": s.lookups_running,
        "pending_queries": s.pending_queries,
        "advertised": s.advertised,
        "dht_size_estimate": n.dht_size_estimate,
        "queries_in": n.queries_in,
        "queries_out": n.queries_out,
        "replies_out": n.replies_out,
        "errors_out": n.errors_out,
        "responses_in": n.responses_in,
        "timeouts": n.timeouts,
        "invalid_in": n.invalid_in,
        "rate_limited": n.rate_limited,
        "lookups": n.lookups.count,
    }))
}

async fn size(State(api): Shared) -> ApiResult {
    let s = api.dht.stats().await?;
    ok(json!({"dht_size_estimate": s.node.dht_size_estimate, "nodes": s.nodes}))
}

async fn routing_table(State(api): Shared) -> ApiResult {
    let t = api.dht.routing_table().await?;
    ok(Value::Array(
        t.iter()
            .map(|n| {
                json!({
                    "id": n.id.to_hex(),
                    "addr": n.addr.to_string(),
                    "good": n.good,
                    "rtt_ms": n.rtt.map(|d| d.as_millis() as u64),
                })
            })
            .collect(),
    ))
}

/// get_peers: one JSON line per peer as it is found, then a line with the lookup's totals.
async fn peers(State(api): Shared, p: Result<Path<String>, PathRejection>) -> ApiResult {
    let ih = id_of("info_hash", &path(p)?)?;
    let lookup = api.dht.get_peers(ih).await?;
    enum St {
        Peers(dhtkit::GetPeers, usize),
        Done,
    }
    let stream = futures_util::stream::unfold(St::Peers(lookup, 0), |st| async move {
        match st {
            St::Done => None,
            St::Peers(mut l, n) => match l.next_peer().await {
                Some(peer) => {
                    let line = format!("{}\n", json!({"peer": peer.to_string()}));
                    Some((Ok::<_, std::convert::Infallible>(line), St::Peers(l, n + 1)))
                }
                None => {
                    let end = match l.finish().await {
                        Ok(r) => json!({
                            "done": true,
                            "peers": n,
                            "queries": r.queries,
                            "responses": r.responses,
                            "closest": nodes_json(&r.closest),
                        }),
                        Err(e) => json!({"done": true, "peers": n, "error": e.to_string()}),
                    };
                    Some((Ok(format!("{end}\n")), St::Done))
                }
            },
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnnounceBody {
    info_hash: String,
    /// TCP port; absent: the node's UDP port (implied_port).
    port: Option<u16>,
    #[serde(default)]
    seed: bool,
}

async fn announce(State(api): Shared, body: Body) -> ApiResult {
    let b: AnnounceBody = read_json(body).await?;
    let ih = id_of("info_hash", &b.info_hash)?;
    let r = api.dht.announce_as(ih, b.port, b.seed).await?;
    ok(json!({
        "info_hash": ih.to_hex(),
        "announced": r.announced,
        "peers": r.peers.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvertiseBody {
    info_hash: String,
    port: Option<u16>,
}

async fn advertise(State(api): Shared, body: Body) -> ApiResult {
    let b: AdvertiseBody = read_json(body).await?;
    let ih = id_of("info_hash", &b.info_hash)?;
    api.dht.advertise(ih, b.port).await?;
    ok(json!({"info_hash": ih.to_hex(), "advertising": true}))
}

async fn stop_advertising(State(api): Shared, p: Result<Path<String>, PathRejection>) -> ApiResult {
    let ih = id_of("info_hash", &path(p)?)?;
    api.dht.stop_advertising(ih).await?;
    ok(json!({"info_hash": ih.to_hex(), "advertising": false}))
}

async fn find_node(State(api): Shared, p: Result<Path<String>, PathRejection>) -> ApiResult {
    let target = id_of("target", &path(p)?)?;
    let nodes = api.dht.find_node(target).await?;
    ok(json!({"target": target.to_hex(), "nodes": nodes_json(&nodes)}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PingBody {
    addr: String,
}

async fn ping(State(api): Shared, body: Body) -> ApiResult {
    let b: PingBody = read_json(body).await?;
    let addr = addr_of(&b.addr)?;
    let started = std::time::Instant::now();
    match remote(api.dht.ping(addr).await)? {
        Ok(id) => ok(json!({
            "addr": addr.to_string(),
            "answered": true,
            "id": id.to_hex(),
            "rtt_ms": started.elapsed().as_millis() as u64,
        })),
        Err(v) => ok(with_addr(v, addr)),
    }
}

/// A query to one remote node: its answer, or (not an error of this API) what it said
/// instead: `{"answered": false}` when it never answered, `{"answered": true, "error":
/// {"code", "message"}}` when it answered with a KRPC error.
fn remote<T>(r: Result<T, Error>) -> Result<Result<T, Value>, ApiError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(Error::Timeout) => Ok(Err(json!({"answered": false}))),
        Err(Error::Remote { code, message }) => Ok(Err(json!({
            "answered": true,
            "error": {"code": code, "message": message},
        }))),
        Err(e) => Err(e.into()),
    }
}

fn with_addr(mut v: Value, addr: SocketAddr) -> Value {
    v["addr"] = json!(addr.to_string());
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleQuery {
    addr: String,
}

async fn sample(State(api): Shared, q: Result<Query<SampleQuery>, QueryRejection>) -> ApiResult {
    let addr = addr_of(&query(q)?.addr)?;
    let s = match remote(api.dht.sample_infohashes(addr).await)? {
        Ok(s) => s,
        Err(v) => return ok(with_addr(v, addr)),
    };
    ok(json!({
        "addr": addr.to_string(),
        "answered": true,
        "interval": s.interval,
        "num": s.num,
        "samples": s.samples.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
        "nodes": nodes_json(&s.nodes),
    }))
}

async fn scrape(State(api): Shared, p: Result<Path<String>, PathRejection>) -> ApiResult {
    let ih = id_of("info_hash", &path(p)?)?;
    let r = api.dht.scrape_lookup(ih).await?;
    match r.scrape {
        Some(s) => ok(json!({"info_hash": ih.to_hex(), "seeds": s.seeds, "peers": s.peers})),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no node that stores peers for {ih} sent BEP 33 filters"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemQuery {
    salt_hex: Option<String>,
}

/// An item as JSON: the value as text, as bytes (hex) and bencoded (hex).
pub(crate) fn item_json(target: Id, item: &Item) -> Value {
    let s = item.signed.as_ref();
    let bytes = value_bytes(&item.value);
    json!({
        "target": target.to_hex(),
        "value": String::from_utf8_lossy(&bytes),
        "value_hex": hex(&bytes),
        "v_hex": hex(&item.value),
        "seq": s.map(|s| s.seq),
        "key": s.map(|s| hex(&s.key)),
        "key_z32": s.map(|s| crate::pkarr::encode_key(&s.key)),
        "sig": s.map(|s| hex(&s.sig)),
        "salt_hex": s.map(|s| hex(&s.salt)),
    })
}

async fn get_item(
    State(api): Shared,
    p: Result<Path<String>, PathRejection>,
    q: Result<Query<ItemQuery>, QueryRejection>,
) -> ApiResult {
    let target = id_of("target", &path(p)?)?;
    let salt = match query(q)?.salt_hex {
        Some(s) => hex_field("salt_hex", &s)?,
        None => Vec::new(),
    };
    let r = api.dht.get_lookup(target, &salt).await?;
    let found = report_json(&r.item_report);
    match r.item {
        Some(item) => {
            let mut v = item_json(target, &item);
            v["found"] = found;
            ok(v)
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no node answered with an item under {target}"),
        )
        .with(json!({"target": target.to_hex(), "found": found}))),
    }
}

/// The bencoded value given as `value` (text, stored as a byte string), `value_hex` (bytes,
/// stored as a byte string) or `v_hex` (already bencoded, stored as is): exactly one.
fn bencoded(
    value: &Option<String>,
    value_hex: &Option<String>,
    v_hex: &Option<String>,
) -> Result<Vec<u8>, ApiError> {
    {
        let v = match (value, value_hex, v_hex) {
            (Some(t), None, None) => dhtkit::items::bencode_bytes(t.as_bytes()),
            (None, Some(h), None) => dhtkit::items::bencode_bytes(&hex_field("value_hex", h)?),
            (None, None, Some(h)) => {
                let v = hex_field("v_hex", h)?;
                if dhtkit::OwnedValue::decode(&v).is_err() {
                    return Err(ApiError::bad(
                        "bad_value",
                        "v_hex is not one bencoded value",
                    ));
                }
                v
            }
            _ => {
                return Err(ApiError::bad(
                    "bad_value",
                    "give exactly one of value (text), value_hex (bytes) and v_hex (bencoded)",
                ))
            }
        };
        if v.len() > dhtkit::items::MAX_VALUE_LEN {
            return Err(ApiError::bad(
                "invalid_item",
                format!("the value is {} bytes bencoded; at most 1000", v.len()),
            )
            .with(json!({"krpc_code": 205})));
        }
        Ok(v)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImmutableBody {
    value: Option<String>,
    value_hex: Option<String>,
    v_hex: Option<String>,
}

async fn put_immutable(State(api): Shared, body: Body) -> ApiResult {
    let b: ImmutableBody = read_json(body).await?;
    let v = bencoded(&b.value, &b.value_hex, &b.v_hex)?;
    let p = api.dht.put_immutable(v).await?;
    ok(put_json(&p))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MutableBody {
    value: Option<String>,
    value_hex: Option<String>,
    v_hex: Option<String>,
    #[serde(default)]
    salt_hex: Option<String>,
    seq: Option<i64>,
    /// The caller's public key (64 hex digits); with `sig`.
    key: Option<String>,
    /// The caller's signature (128 hex digits) over salt, seq and v.
    sig: Option<String>,
    cas: Option<i64>,
}

async fn put_mutable(State(api): Shared, body: Body) -> ApiResult {
    let b: MutableBody = read_json(body).await?;
    let v = bencoded(&b.value, &b.value_hex, &b.v_hex)?;
    let salt = match &b.salt_hex {
        Some(s) => hex_field("salt_hex", s)?,
        None => Vec::new(),
    };
    if salt.len() > dhtkit::items::MAX_SALT_LEN {
        return Err(ApiError::bad(
            "invalid_item",
            format!("salt of {} bytes; at most 64", salt.len()),
        )
        .with(json!({"krpc_code": 207})));
    }
    let p = match (&b.key, &b.sig) {
        (Some(key), Some(sig)) => {
            let key: [u8; 32] = hex_field("key", key)?
                .try_into()
                .map_err(|_| ApiError::bad("bad_key", "key is not 32 bytes (64 hex digits)"))?;
            let sig: [u8; 64] = hex_field("sig", sig)?
                .try_into()
                .map_err(|_| ApiError::bad("bad_sig", "sig is not 64 bytes (128 hex digits)"))?;
            let Some(seq) = b.seq else {
                return Err(ApiError::bad("bad_seq", "a signed item needs its seq"));
            };
            let item = Item {
                value: v,
                signed: Some(dhtkit::items::Signed {
                    key,
                    sig,
                    salt,
                    seq,
                }),
            };
            if let Err(r) = item.check() {
                return Err(
                    ApiError::bad("invalid_item", r.message).with(json!({"krpc_code": r.code}))
                );
            }
            api.dht.put(item, b.cas).await?
        }
        (None, None) => {
            let Some(seed) = &api.key else {
                return Err(ApiError::bad(
                    "no_key",
                    "give key and sig (this node was started without --key)",
                ));
            };
            if b.cas.is_some() && b.seq.is_none() {
                return Err(ApiError::bad("bad_seq", "cas needs seq"));
            }
            match (b.seq, b.cas) {
                (Some(seq), cas) => api.dht.put(Item::mutable(seed, &salt, seq, v), cas).await?,
                (None, _) => api.dht.put_mutable(seed, &salt, v, None).await?,
            }
        }
        _ => return Err(ApiError::bad("bad_sig", "give key and sig together")),
    };
    ok(put_json(&p))
}
