//! # dhtkit-web
//!
//! A dhtkit index on the web: search pages (sortable and filterable by size, seeders and first
//! seen), a torrent page, statistics, a JSON API, a Torznab endpoint for Prowlarr, Sonarr and
//! Radarr, and an RSS feed of the newest torrents. It reads any store through the
//! `dhtkit-crawl` traits ([`StoreRead`]), and is served by axum; `dhtkit web` runs it. Pages
//! are rendered on the server (maud); no JavaScript at all.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let web = dhtkit_web::Web::open(dhtkit_web::WebConfig::new("crawl.sqlite")).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! dhtkit_web::serve(listener, web, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! The database is opened read-only, through a few readers used in turn on the blocking pool
//! (SQLite and the blocking PostgreSQL client both block). Everything a stranger controls
//! (names, paths, the search text) reaches the page through maud, which escapes it, and the
//! database through bound parameters and words-only search terms. A Content-Security-Policy
//! that allows no script backs that up.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
mod feed;
mod pages;
mod torznab;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dhtkit_crawl::store::{self, SearchQuery, Sort, StoreError, StoreRead};
use dhtkit_crawl::view::{hit_json, record_json, rfc3339};
use dhtkit_proto::Id;
use serde::Deserialize;
use serde_json::json;

/// Results per page on the search page.
const PAGE_SIZE: usize = 20;
/// Most results the API returns at once.
const MAX_LIMIT: usize = 100;
/// Deepest offset served: deeper pages cost the database more and help nobody.
const MAX_OFFSET: usize = 10_000;
/// Longest search text taken (characters); the rest is ignored.
const MAX_QUERY_CHARS: usize = 256;
/// Days and hours in the statistics charts.
const CHART_DAYS: i64 = 30;
const CHART_HOURS: i64 = 48;

/// How a [`Web`] is set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebConfig {
    /// The database: a SQLite file or a `postgres://` URL. Opened read-only.
    pub db: String,
    /// Database connections (requests beyond this many wait their turn).
    pub readers: usize,
    /// The key Torznab clients must send (`apikey=`); `None`: none needed.
    pub api_key: Option<String>,
    /// The address the pages are reached at from outside (`https://index.example`), for the
    /// absolute links in feeds; `None`: taken from each request's `Host` header.
    pub base_url: Option<String>,
    /// Users who may see the site (HTTP Basic); `None`: anyone. `/healthz` stays open, and
    /// Torznab needs only the API key when one is set.
    pub auth: Option<Arc<auth::Credentials>>,
}

impl WebConfig {
    /// Four readers on `db`, no API key, links from the `Host` header.
    pub fn new(db: impl Into<String>) -> WebConfig {
        WebConfig {
            db: db.into(),
            readers: 4,
            api_key: None,
            base_url: None,
            auth: None,
        }
    }
}

/// A few read-only stores, each used by one request at a time.
struct Readers {
    all: Vec<Mutex<Box<dyn StoreRead + Send>>>,
    next: AtomicUsize,
    /// What they were opened from, to open one again after it failed (a PostgreSQL restart).
    spec: String,
}

impl Readers {
    /// Runs `f` on a free reader (or, when all are busy, waits for one). When it fails, the
    /// reader is opened afresh and `f` tried once more: a database server that restarted
    /// costs one slow request, not a dead web page.
    fn with<T>(
        &self,
        f: impl Fn(&dyn StoreRead) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let n = self.all.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut guard = (0..n)
            .find_map(|i| self.all[(start + i) % n].try_lock().ok())
            .unwrap_or_else(|| {
                self.all[start % n]
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
            });
        match f(&**guard) {
            Ok(v) => Ok(v),
            Err(first) => match store::open_reader(&self.spec) {
                Ok(fresh) => {
                    *guard = fresh;
                    f(&**guard)
                }
                Err(_) => Err(first),
            },
        }
    }
}

#[derive(Clone)]
struct AppState {
    readers: Arc<Readers>,
    /// What the pages call the database (a path, or a URL without its password).
    db_label: Arc<str>,
    api_key: Option<Arc<str>>,
    base_url: Option<Arc<str>>,
    auth: Option<Arc<auth::Credentials>>,
}

/// The web side of an index, ready to serve: its database readers are open.
#[derive(Clone)]
pub struct Web {
    st: AppState,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("db", &self.st.db_label)
            .finish()
    }
}

impl Web {
    /// Opens `cfg.readers` read-only stores on `cfg.db` (on the blocking pool).
    pub async fn open(cfg: WebConfig) -> Result<Web, StoreError> {
        if cfg.readers == 0 {
            return Err(StoreError::Db("at least one reader is needed".into()));
        }
        let (n, spec) = (cfg.readers, cfg.db.clone());
        let opened = tokio::task::spawn_blocking(move || {
            (0..n)
                .map(|_| store::open_reader(&spec))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| StoreError::Db(format!("cannot open the database: {e}")))??;
        Ok(Web {
            st: AppState {
                readers: Arc::new(Readers {
                    all: opened.into_iter().map(Mutex::new).collect(),
                    next: AtomicUsize::new(0),
                    spec: cfg.db.clone(),
                }),
                db_label: label(&cfg.db).into(),
                api_key: cfg.api_key.map(Into::into),
                base_url: cfg
                    .base_url
                    .map(|u| u.trim_end_matches('/').to_string().into()),
                auth: cfg.auth,
            },
        })
    }

    /// What the pages call the database: its path, or its URL without the password.
    pub fn label(&self) -> &str {
        &self.st.db_label
    }

    /// The routes, for serving or for nesting in another axum app.
    pub fn router(&self) -> Router {
        router(self.st.clone())
    }
}

/// Serves `web` on `listener` until `shutdown` resolves, then lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    web: Web,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, web.router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// What a handler can fail with.
#[derive(Debug)]
enum WebError {
    BadRequest(String),
    NotFound(String),
    Db(String),
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Db(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(&self) -> &str {
        match self {
            WebError::BadRequest(m) | WebError::NotFound(m) | WebError::Db(m) => m,
        }
    }

    /// As an HTML page.
    fn page(self) -> Response {
        (self.status(), pages::error(self.status(), self.message())).into_response()
    }

    /// As JSON: `{"error": "..."}`.
    fn json(self) -> Response {
        (self.status(), Json(json!({ "error": self.message() }))).into_response()
    }
}

/// Runs a read on the blocking pool.
async fn read<T: Send + 'static>(
    st: &AppState,
    f: impl Fn(&dyn StoreRead) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, WebError> {
    let readers = st.readers.clone();
    match tokio::task::spawn_blocking(move || readers.with(f)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::warn!("web: {e}");
            Err(WebError::Db(e.to_string()))
        }
        Err(e) => Err(WebError::Db(format!("query failed: {e}"))),
    }
}

/// Query-string parameters of the search page and API. Numbers are parsed here, so that a bad
/// one gets a clear message.
#[derive(Debug, Default, Deserialize)]
struct SearchParams {
    q: Option<String>,
    page: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
    /// `relevance`, `first_seen`, `size` or `seeders`.
    sort: Option<String>,
    /// `desc` (default) or `asc`.
    order: Option<String>,
    /// Bytes, or with a unit: `700M`, `1.5G`.
    min_size: Option<String>,
    max_size: Option<String>,
    min_seeders: Option<String>,
    /// First seen within: `1d`, `7d`, `30d`, `365d`, or an RFC 3339 time.
    since: Option<String>,
}

/// The filters and order of a search, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Filters {
    sort: Sort,
    ascending: bool,
    min_size: Option<u64>,
    max_size: Option<u64>,
    min_seeders: Option<u64>,
    /// As given (`7d`), for links; and as a time.
    since: Option<(String, i64)>,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `700M`, `1.5G`, `4096`: bytes, as `dhtkit crawl --max-db-size` reads them.
fn parse_size(what: &str, v: &str) -> Result<u64, WebError> {
    dhtkit_crawl::cap::parse_size(v).ok_or_else(|| {
        WebError::BadRequest(format!("{what} must be a size such as 4096, 700M or 1.5G"))
    })
}

impl Filters {
    fn from_params(p: &SearchParams) -> Result<Filters, WebError> {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let sort = match given(&p.sort) {
            None => Sort::Relevance,
            Some(s) => Sort::from_name(&s).ok_or_else(|| {
                WebError::BadRequest("sort must be relevance, first_seen, size or seeders".into())
            })?,
        };
        let ascending = match given(&p.order).as_deref() {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(_) => return Err(WebError::BadRequest("order must be asc or desc".into())),
        };
        let min_size = given(&p.min_size)
            .map(|v| parse_size("min_size", &v))
            .transpose()?;
        let max_size = given(&p.max_size)
            .map(|v| parse_size("max_size", &v))
            .transpose()?;
        let min_seeders = given(&p.min_seeders)
            .map(|v| number("min_seeders", Some(&v), 0, 1 << 40).map(|n| n as u64))
            .transpose()?;
        let since = match given(&p.since) {
            None => None,
            Some(v) => {
                let days = v
                    .strip_suffix('d')
                    .and_then(|d| d.parse::<i64>().ok())
                    .filter(|d| (1..=36_500).contains(d));
                let at = match days {
                    Some(d) => unix_now() - d * 86_400,
                    None => dhtkit_crawl::view::parse_rfc3339(&v).ok_or_else(|| {
                        WebError::BadRequest(
                            "since must be a number of days (7d) or an RFC 3339 time".into(),
                        )
                    })?,
                };
                Some((v, at))
            }
        };
        Ok(Filters {
            sort,
            ascending,
            min_size,
            max_size,
            min_seeders,
            since,
        })
    }

    fn query(&self, text: &str, limit: usize, offset: usize) -> SearchQuery {
        SearchQuery {
            text: text.to_string(),
            sort: self.sort,
            ascending: self.ascending,
            min_size: self.min_size,
            max_size: self.max_size,
            min_seeders: self.min_seeders,
            since: self.since.as_ref().map(|s| s.1),
            limit,
            offset,
        }
    }

    /// True when any filter (not the order) is set.
    fn any(&self) -> bool {
        self.min_size.is_some()
            || self.max_size.is_some()
            || self.min_seeders.is_some()
            || self.since.is_some()
    }
}

fn number(what: &str, v: Option<&str>, default: usize, max: usize) -> Result<usize, WebError> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(WebError::BadRequest(format!(
                "{what} must be a whole number from 0 to {max}"
            ))),
        },
    }
}

/// The search text, trimmed and capped.
fn query_text(p: &SearchParams) -> String {
    p.q.as_deref()
        .unwrap_or("")
        .trim()
        .chars()
        .take(MAX_QUERY_CHARS)
        .collect()
}

fn parse_infohash(s: &str) -> Result<Id, WebError> {
    s.parse()
        .map_err(|_| WebError::BadRequest("an infohash is 40 hex digits".into()))
}

/// One page of results plus whether there is another.
async fn search_page(
    st: &AppState,
    q: SearchQuery,
) -> Result<(Vec<store::SearchHit>, bool), WebError> {
    let limit = q.limit;
    let q = SearchQuery {
        limit: limit + 1,
        ..q
    };
    let mut hits = read(st, move |s| s.search(&q)).await?;
    let more = hits.len() > limit;
    hits.truncate(limit);
    Ok((hits, more))
}

async fn page_index(State(st): State<AppState>, Query(p): Query<SearchParams>) -> Response {
    let text = query_text(&p);
    let run = async {
        let page = number("page", p.page.as_deref(), 1, MAX_OFFSET / PAGE_SIZE)?.max(1);
        let filters = Filters::from_params(&p)?;
        let offset = (page - 1) * PAGE_SIZE;
        // The front page (no words, no filters) shows the totals, not a list.
        let (hits, more) = if text.is_empty() && !filters.any() && filters.sort == Sort::Relevance {
            (Vec::new(), false)
        } else {
            search_page(&st, filters.query(&text, PAGE_SIZE, offset)).await?
        };
        let totals = read(&st, |s| s.totals()).await?;
        Ok::<_, WebError>(pages::search(&pages::Listing {
            text: &text,
            filters: &filters,
            page,
            hits: &hits,
            more,
            totals,
        }))
    };
    match run.await {
        Ok(m) => m.into_response(),
        Err(e) => e.page(),
    }
}

/// The record of the infohash in `hex`, for the torrent page and the API.
async fn find_torrent(st: &AppState, hex: &str) -> Result<store::TorrentRecord, WebError> {
    let ih = parse_infohash(hex)?;
    read(st, move |s| s.torrent(&ih))
        .await?
        .ok_or_else(|| WebError::NotFound(format!("{ih} is not in the database")))
}

async fn page_torrent(State(st): State<AppState>, Path(hex): Path<String>) -> Response {
    match find_torrent(&st, &hex).await {
        Ok(r) => pages::torrent(&r).into_response(),
        Err(e) => e.page(),
    }
}

/// Counts per day and per hour, each with its empty buckets filled in.
struct Charts {
    totals: store::StoreStats,
    per_day: Vec<(i64, u64)>,
    per_hour: Vec<(i64, u64)>,
}

fn filled(points: &[(i64, u64)], since: i64, step: i64, n: i64) -> Vec<(i64, u64)> {
    (0..n)
        .map(|i| {
            let t = since + i * step;
            let c = points.iter().find(|p| p.0 == t).map_or(0, |p| p.1);
            (t, c)
        })
        .collect()
}

async fn charts(st: &AppState) -> Result<Charts, WebError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let day0 = (now / 86_400 - (CHART_DAYS - 1)) * 86_400;
    let hour0 = (now / 3_600 - (CHART_HOURS - 1)) * 3_600;
    read(st, move |s| {
        let totals = s.totals()?;
        let days = s.discovered_per(86_400, day0)?;
        let hours = s.discovered_per(3_600, hour0)?;
        Ok(Charts {
            totals,
            per_day: filled(&days, day0, 86_400, CHART_DAYS),
            per_hour: filled(&hours, hour0, 3_600, CHART_HOURS),
        })
    })
    .await
}

async fn page_stats(State(st): State<AppState>) -> Response {
    match charts(&st).await {
        Ok(c) => pages::stats(&c, &st.db_label).into_response(),
        Err(e) => e.page(),
    }
}

async fn api_search(
    State(st): State<AppState>,
    p: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // A query string that does not parse (a parameter given twice) is a JSON error too.
    let p = match p {
        Ok(Query(p)) => p,
        Err(e) => return WebError::BadRequest(e.body_text()).json(),
    };
    let text = query_text(&p);
    let run = async {
        let limit = number("limit", p.limit.as_deref(), 20, MAX_LIMIT)?.max(1);
        let offset = number("offset", p.offset.as_deref(), 0, MAX_OFFSET)?;
        let filters = Filters::from_params(&p)?;
        let (hits, more) = search_page(&st, filters.query(&text, limit, offset)).await?;
        Ok::<_, WebError>(json!({
            "query": text,
            "sort": filters.sort.name(),
            "order": if filters.ascending { "asc" } else { "desc" },
            "limit": limit,
            "offset": offset,
            "more": more,
            "results": hits.iter().map(hit_json).collect::<Vec<_>>(),
        }))
    };
    match run.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.json(),
    }
}

async fn api_torrent(State(st): State<AppState>, Path(hex): Path<String>) -> Response {
    match find_torrent(&st, &hex).await {
        Ok(r) => Json(record_json(&r)).into_response(),
        Err(e) => e.json(),
    }
}

async fn api_stats(State(st): State<AppState>) -> Response {
    let series = |v: &[(i64, u64)]| {
        v.iter()
            .map(|(t, n)| json!({ "start": rfc3339(*t), "count": n }))
            .collect::<Vec<_>>()
    };
    match charts(&st).await {
        Ok(c) => Json(json!({
            "infohashes": c.totals.infohashes,
            "with_metadata": c.totals.with_metadata,
            "per_day": series(&c.per_day),
            "per_hour": series(&c.per_hour),
        }))
        .into_response(),
        Err(e) => e.json(),
    }
}

/// The JSON API described in OpenAPI 3.0.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

async fn healthz(State(st): State<AppState>) -> Response {
    match read(&st, |s| s.totals()).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", e.message()),
        )
            .into_response(),
    }
}

async fn not_found() -> Response {
    WebError::NotFound("no such page".into()).page()
}

/// Headers on every response: no script may run, nothing is sniffed or framed.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// With `--auth`: every request but `/healthz` (and Torznab's, when an API key guards it)
/// carries the user and password of a listed user, or gets 401.
async fn require_auth(
    State(st): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(creds) = st.auth.clone() else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if path == "/healthz" || (path.starts_with("/torznab/") && st.api_key.is_some()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(auth::basic);
    if let Some((user, password)) = given {
        if creds.check(&user, &password).await {
            return next.run(req).await;
        }
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"dhtkit\", charset=\"UTF-8\"",
        )],
        "a user and password are needed\n",
    )
        .into_response()
}

fn router(st: AppState) -> Router {
    Router::new()
        .route("/", get(page_index))
        .route("/search", get(page_index))
        .route("/torrent/{infohash}", get(page_torrent))
        .route("/stats", get(page_stats))
        .route("/api/search", get(api_search))
        .route("/api/torrent/{infohash}", get(api_torrent))
        .route("/api/stats", get(api_stats))
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .route("/feed", get(feed::feed))
        .route("/torznab/api", get(torznab::api))
        .route("/torznab/api/", get(torznab::api))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            require_auth,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(st)
}

/// A database name fit to show: a URL loses its password.
pub fn label(db: &str) -> String {
    if !store::is_postgres_url(db) {
        return db.to_string();
    }
    match (db.find("://"), db.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &db[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &db[..s + 3], &db[at..])
        }
        _ => db.to_string(),
    }
}

/// The absolute address of this site, for links in feeds: the configured base URL, or
/// `http://` and the request's `Host` (when it is a plain host name and port).
fn base_url(st: &AppState, headers: &HeaderMap) -> String {
    if let Some(b) = &st.base_url {
        return b.to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_do_not_reach_the_page() {
        assert_eq!(
            label("postgres://crawl:secret@db.example/dht"),
            "postgres://crawl@db.example/dht"
        );
        assert_eq!(label("postgresql://u@h/d"), "postgresql://u@h/d");
        assert_eq!(label("/var/lib/x.sqlite"), "/var/lib/x.sqlite");
    }

    #[test]
    fn numbers_are_bounded() {
        assert_eq!(number("limit", None, 20, 100).unwrap(), 20);
        assert_eq!(number("limit", Some("7"), 20, 100).unwrap(), 7);
        assert!(number("limit", Some("101"), 20, 100).is_err());
        assert!(number("limit", Some("-1"), 20, 100).is_err());
        assert!(number("limit", Some("1e3"), 20, 100).is_err());
    }

    #[test]
    fn sizes_and_filters_are_read_strictly() {
        assert_eq!(parse_size("s", "4096").unwrap(), 4096);
        assert_eq!(parse_size("s", "700M").unwrap(), 700 << 20);
        assert_eq!(parse_size("s", "1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("s", "2 kb").unwrap(), 2048);
        for bad in ["", "M", "-1", "1e3", "5Q", "99999999999T"] {
            assert!(parse_size("s", bad).is_err(), "{bad}");
        }
        let p = SearchParams {
            sort: Some("seeders".into()),
            order: Some("asc".into()),
            since: Some("7d".into()),
            min_seeders: Some("3".into()),
            ..SearchParams::default()
        };
        let f = Filters::from_params(&p).unwrap();
        assert_eq!(
            (f.sort, f.ascending, f.min_seeders),
            (Sort::Seeders, true, Some(3))
        );
        assert!(f.since.unwrap().1 <= unix_now() - 7 * 86_400);
        for bad in [
            SearchParams {
                sort: Some("name; drop".into()),
                ..SearchParams::default()
            },
            SearchParams {
                order: Some("up".into()),
                ..SearchParams::default()
            },
            SearchParams {
                since: Some("0d".into()),
                ..SearchParams::default()
            },
            SearchParams {
                since: Some("yesterday".into()),
                ..SearchParams::default()
            },
            SearchParams {
                min_seeders: Some("-2".into()),
                ..SearchParams::default()
            },
        ] {
            assert!(Filters::from_params(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn empty_buckets_are_filled() {
        let v = filled(&[(10, 3), (30, 1)], 0, 10, 4);
        assert_eq!(v, [(0, 0), (10, 3), (20, 0), (30, 1)]);
    }
}
