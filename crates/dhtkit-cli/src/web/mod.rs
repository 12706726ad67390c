//! `dhtkit web`: the crawler's database as web pages (search, torrent, statistics) and a JSON
//! API, served by axum. Pages are rendered on the server (maud); no JavaScript at all.
//!
//! The database is opened read-only, through a few readers used in turn on the blocking pool
//! (SQLite and the blocking PostgreSQL client both block). Everything a stranger controls
//! (names, paths, the search text) reaches the page through maud, which escapes it, and the
//! database through bound parameters and words-only search terms. A Content-Security-Policy
//! that allows no script backs that up.

mod pages;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;
use dhtkit::Id;
use dhtkit_crawl::store::{self, StoreError, StoreRead};
use serde::Deserialize;
use serde_json::json;

use crate::crawl::{db_spec, hit_json, record_json};
use crate::time::rfc3339;
use crate::{parse_addr, BadInput, StopSignals};

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

/// `dhtkit web`.
#[derive(Args, Debug)]
pub(crate) struct WebArgs {
    /// The database: a SQLite file (default: crawl.sqlite in the per-user data directory) or
    /// a postgres:// URL. Opened read-only.
    #[arg(long)]
    pub(crate) db: Option<String>,
    /// TCP address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) bind: String,
    /// Database connections (requests beyond this many wait their turn).
    #[arg(long, default_value_t = 4)]
    pub(crate) readers: usize,
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
    text: String,
    limit: usize,
    offset: usize,
) -> Result<(Vec<store::SearchHit>, bool), WebError> {
    if text.is_empty() {
        return Ok((Vec::new(), false));
    }
    let mut hits = read(st, move |s| s.search(&text, limit + 1, offset)).await?;
    let more = hits.len() > limit;
    hits.truncate(limit);
    Ok((hits, more))
}

async fn page_index(State(st): State<AppState>, Query(p): Query<SearchParams>) -> Response {
    let text = query_text(&p);
    let run = async {
        let page = number("page", p.page.as_deref(), 1, MAX_OFFSET / PAGE_SIZE)?.max(1);
        let offset = (page - 1) * PAGE_SIZE;
        let (hits, more) = search_page(&st, text.clone(), PAGE_SIZE, offset).await?;
        let totals = read(&st, |s| s.totals()).await?;
        Ok::<_, WebError>(pages::search(&text, page, &hits, more, totals))
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

async fn api_search(State(st): State<AppState>, Query(p): Query<SearchParams>) -> Response {
    let text = query_text(&p);
    let run = async {
        let limit = number("limit", p.limit.as_deref(), 20, MAX_LIMIT)?.max(1);
        let offset = number("offset", p.offset.as_deref(), 0, MAX_OFFSET)?;
        let (hits, more) = search_page(&st, text.clone(), limit, offset).await?;
        Ok::<_, WebError>(json!({
            "query": text,
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
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(st)
}

/// A database name fit to show: a URL loses its password.
fn label(db: &str) -> String {
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

pub(crate) async fn web(a: WebArgs) -> Result<ExitCode, BadInput> {
    let bind: SocketAddr = parse_addr(&a.bind)?;
    if a.readers == 0 || a.readers > 64 {
        return Err(BadInput("--readers must be from 1 to 64".into()));
    }
    let db = db_spec(a.db.as_deref());
    let n = a.readers;
    let spec = db.clone();
    let opened = tokio::task::spawn_blocking(move || {
        (0..n)
            .map(|_| store::open_reader(&spec))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| BadInput(format!("cannot open the database: {e}")))?
    .map_err(|e| BadInput(e.to_string()))?;
    let st = AppState {
        readers: Arc::new(Readers {
            all: opened.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            spec: db.clone(),
        }),
        db_label: label(&db).into(),
    };
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| BadInput(format!("cannot listen on {bind}: {e}")))?;
    let local = listener.local_addr().unwrap_or(bind);
    eprintln!("serving {} on http://{local}/", st.db_label);
    let Some(mut signals) = StopSignals::install() else {
        return Ok(ExitCode::from(2));
    };
    let served = axum::serve(listener, router(st))
        .with_graceful_shutdown(async move { signals.recv().await })
        .await;
    match served {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: web server: {e}");
            Ok(ExitCode::from(1))
        }
    }
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
    fn empty_buckets_are_filled() {
        let v = filled(&[(10, 3), (30, 1)], 0, 10, 4);
        assert_eq!(v, [(0, 0), (10, 3), (20, 0), (30, 1)]);
    }
}
