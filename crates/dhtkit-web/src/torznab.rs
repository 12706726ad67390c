//! Torznab (`/torznab/api`), the search dialect Prowlarr, Sonarr, Radarr and Jackett speak:
//! `t=caps` says what can be searched; `t=search` (and `tvsearch`, `movie`, which take the
//! same words) answers with an RSS feed whose items carry `torznab:attr` elements (seeders,
//! peers, infohash, magnet URL, size, files). One category, 8000 (Other), holds everything.
//! An empty `q`, which Prowlarr sends to test an indexer, lists the newest torrents.
//!
//! When the server has an API key, every request must carry it as `apikey`; errors are the
//! Newznab `<error code=… description=…/>` element, with a matching HTTP status.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dhtkit_crawl::store::{SearchHit, SearchQuery, Sort};
use dhtkit_crawl::view::magnet;
use serde::Deserialize;

use super::feed::{esc, item_core};
use super::{base_url, number, read, AppState, MAX_LIMIT, MAX_OFFSET, MAX_QUERY_CHARS};

/// The one category.
const CATEGORY: u32 = 8000;
/// Results when `limit` is not given.
const DEFAULT_LIMIT: usize = 50;

/// The Torznab parameters dhtkit reads (others, such as `cat`, `imdbid` or `extended`, are
/// accepted and ignored: every item is in the one category and has every attribute).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TorznabParams {
    t: Option<String>,
    q: Option<String>,
    apikey: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
    season: Option<String>,
    ep: Option<String>,
}

fn xml(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A Newznab error: 100 bad key, 200 missing parameter, 201 bad parameter, 202 no such
/// function, 900 the database is unavailable.
fn error(status: StatusCode, code: u32, description: &str) -> Response {
    xml(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error code=\"{code}\" description=\"{}\"/>\n",
            esc(description)
        ),
    )
}

/// Equal keys, compared without an early exit (the time taken does not say how much of a
/// guess was right).
fn same_key(given: &str, key: &str) -> bool {
    let (a, b) = (given.as_bytes(), key.as_bytes());
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

fn caps() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<caps>\
         <server title=\"dhtkit\" version=\"{}\"/>\
         <limits max=\"{MAX_LIMIT}\" default=\"{DEFAULT_LIMIT}\"/>\
         <searching>\
         <search available=\"yes\" supportedParams=\"q\"/>\
         <tv-search available=\"yes\" supportedParams=\"q,season,ep\"/>\
         <movie-search available=\"yes\" supportedParams=\"q\"/>\
         <music-search available=\"no\" supportedParams=\"q\"/>\
         <audio-search available=\"no\" supportedParams=\"q\"/>\
         <book-search available=\"no\" supportedParams=\"q\"/>\
         </searching>\
         <categories><category id=\"{CATEGORY}\" name=\"Other\"/></categories>\
         </caps>\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn results(hits: &[SearchHit], offset: usize, more: bool, base: &str) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <rss version=\"2.0\" xmlns:atom=\"http://www.w3.org/2005/Atom\" \
         xmlns:torznab=\"http://torznab.com/schemas/2015/feed\"><channel>",
    );
    let _ = write!(
        out,
        "<title>dhtkit</title><link>{}/</link><description>Torrents discovered on the BitTorrent DHT</description>\
         <torznab:response offset=\"{offset}\" total=\"{}\"/>",
        esc(base),
        // The exact count would cost a second query; this is enough to page on.
        offset + hits.len() + more as usize,
    );
    for h in hits {
        item_core(&mut out, h, base);
        let (seeders, leechers) = h.swarm.map_or((0, 0), |s| (s.seeders, s.leechers));
        let _ = write!(
            out,
            "<category>{CATEGORY}</category>\
             <torznab:attr name=\"category\" value=\"{CATEGORY}\"/>\
             <torznab:attr name=\"size\" value=\"{}\"/>\
             <torznab:attr name=\"files\" value=\"{}\"/>\
             <torznab:attr name=\"seeders\" value=\"{seeders}\"/>\
             <torznab:attr name=\"peers\" value=\"{}\"/>\
             <torznab:attr name=\"infohash\" value=\"{}\"/>\
             <torznab:attr name=\"magneturl\" value=\"{}\"/>\
             <torznab:attr name=\"downloadvolumefactor\" value=\"0\"/>\
             <torznab:attr name=\"uploadvolumefactor\" value=\"1\"/>\
             </item>",
            h.size,
            h.files,
            seeders + leechers,
            h.info_hash.to_hex(),
            esc(&magnet(&h.info_hash, &h.name)),
        );
    }
    out.push_str("</channel></rss>\n");
    out
}

/// `GET /torznab/api?t=…`.
pub(crate) async fn api(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<TorznabParams>,
) -> Response {
    if let Some(key) = &st.api_key {
        if !p.apikey.as_deref().is_some_and(|k| same_key(k, key)) {
            return error(StatusCode::UNAUTHORIZED, 100, "Incorrect user credentials");
        }
    }
    let t = p.t.as_deref().unwrap_or("");
    match t {
        "caps" => return xml(StatusCode::OK, caps()),
        "search" | "tvsearch" | "movie" => {}
        "" => return error(StatusCode::BAD_REQUEST, 200, "Missing parameter (t)"),
        _ => return error(StatusCode::BAD_REQUEST, 202, "No such function"),
    }
    let mut text: String =
        p.q.as_deref()
            .unwrap_or("")
            .trim()
            .chars()
            .take(MAX_QUERY_CHARS)
            .collect();
    if t == "tvsearch" {
        let n = |v: &Option<String>| v.as_deref().and_then(|v| v.trim().parse::<u32>().ok());
        match (n(&p.season), n(&p.ep)) {
            (Some(s), Some(e)) => text.push_str(&format!(" S{s:02}E{e:02}")),
            (Some(s), None) => text.push_str(&format!(" S{s:02}")),
            _ => {}
        }
    }
    let bad = |e: super::WebError| error(StatusCode::BAD_REQUEST, 201, e.message());
    let limit = match number("limit", p.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT) {
        Ok(n) => n.max(1),
        Err(e) => return bad(e),
    };
    let offset = match number("offset", p.offset.as_deref(), 0, MAX_OFFSET) {
        Ok(n) => n,
        Err(e) => return bad(e),
    };
    let q = SearchQuery {
        text: text.trim().to_string(),
        sort: Sort::Relevance,
        limit: limit + 1,
        offset,
        ..SearchQuery::default()
    };
    match read(&st, move |s| s.search(&q)).await {
        Ok(mut hits) => {
            let more = hits.len() > limit;
            hits.truncate(limit);
            xml(
                StatusCode::OK,
                results(&hits, offset, more, &base_url(&st, &headers)),
            )
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, 900, e.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_whole() {
        assert!(same_key("abc", "abc"));
        assert!(!same_key("abd", "abc"));
        assert!(!same_key("ab", "abc"));
        assert!(!same_key("abcd", "abc"));
        assert!(!same_key("", "abc"));
    }

    #[test]
    fn items_carry_the_torznab_attributes() {
        let h = SearchHit {
            info_hash: dhtkit_proto::Id([1; 20]),
            name: "Some.Show.S01E02.1080p".into(),
            size: 1 << 30,
            files: 3,
            first_seen: 0,
            swarm: Some(dhtkit_crawl::store::Swarm {
                seeders: 7,
                leechers: 2,
                at: 0,
            }),
        };
        let x = results(&[h], 0, false, "http://h");
        for want in [
            "<torznab:attr name=\"seeders\" value=\"7\"/>",
            "<torznab:attr name=\"peers\" value=\"9\"/>",
            "<torznab:attr name=\"infohash\" value=\"0101010101010101010101010101010101010101\"/>",
            "<size>1073741824</size>",
            "<torznab:response offset=\"0\" total=\"1\"/>",
        ] {
            assert!(x.contains(want), "{want} in {x}");
        }
        assert!(caps().contains("<search available=\"yes\""));
    }
}
