//! RSS 2.0: `/feed`, the newest named torrents (optionally only those matching `q`), and the
//! XML both it and Torznab are written in.
//!
//! Names come from strangers: every text is escaped, and characters XML 1.0 cannot carry
//! (control characters, U+FFFE, U+FFFF) are dropped, so a hostile name cannot break a reader's
//! parser.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use dhtkit_crawl::store::{SearchHit, SearchQuery, Sort};
use dhtkit_crawl::view::{human_size, magnet, rfc2822};

use super::{base_url, query_text, read, AppState, SearchParams, MAX_LIMIT};

/// Items in a feed unless `limit` says otherwise.
const FEED_ITEMS: usize = 50;

/// `text` fit for XML content and attributes.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The elements of an RSS item every reader knows: title, link, guid, date, size, the magnet
/// link as the enclosure.
pub(crate) fn item_core(out: &mut String, h: &SearchHit, base: &str) {
    let ih = h.info_hash.to_hex();
    let m = esc(&magnet(&h.info_hash, &h.name));
    let _ = write!(
        out,
        "<item><title>{}</title><guid isPermaLink=\"false\">{ih}</guid>\
         <link>{m}</link><comments>{}/torrent/{ih}</comments>\
         <pubDate>{}</pubDate><size>{}</size>\
         <enclosure url=\"{m}\" length=\"{}\" type=\"application/x-bittorrent;x-scheme-handler/magnet\"/>",
        esc(&h.name),
        esc(base),
        rfc2822(h.first_seen),
        h.size,
        h.size,
    );
}

fn rss(hits: &[SearchHit], base: &str, text: &str) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <rss version=\"2.0\" xmlns:atom=\"http://www.w3.org/2005/Atom\"><channel>",
    );
    let title = if text.is_empty() {
        "dhtkit: newest torrents".to_string()
    } else {
        format!("dhtkit: newest torrents matching {text}")
    };
    let self_link = if text.is_empty() {
        format!("{base}/feed")
    } else {
        format!("{base}/feed?q={}", super::pages::encode(text))
    };
    let _ = write!(
        out,
        "<title>{}</title><link>{}/</link><description>Torrents discovered on the BitTorrent DHT, newest first</description>\
         <atom:link href=\"{}\" rel=\"self\" type=\"application/rss+xml\"/>",
        esc(&title),
        esc(base),
        esc(&self_link),
    );
    if let Some(h) = hits.first() {
        let _ = write!(
            out,
            "<lastBuildDate>{}</lastBuildDate>",
            rfc2822(h.first_seen)
        );
    }
    for h in hits {
        item_core(&mut out, h, base);
        let _ = write!(
            out,
            "<description>{}, {} files</description></item>",
            esc(&human_size(h.size)),
            h.files
        );
    }
    out.push_str("</channel></rss>\n");
    out
}

/// `GET /feed[?q=words][&limit=N]`.
pub(crate) async fn feed(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<SearchParams>,
) -> Response {
    let text = query_text(&p);
    let run = async {
        let limit = super::number("limit", p.limit.as_deref(), FEED_ITEMS, MAX_LIMIT)?.max(1);
        let q = SearchQuery {
            text: text.clone(),
            sort: Sort::FirstSeen,
            limit,
            ..SearchQuery::default()
        };
        read(&st, move |s| s.search(&q)).await
    };
    match run.await {
        Ok(hits) => (
            [(header::CONTENT_TYPE, "application/rss+xml; charset=utf-8")],
            rss(&hits, &base_url(&st, &headers), &text),
        )
            .into_response(),
        Err(e) => e.json(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_cannot_break_the_xml() {
        assert_eq!(
            esc("a<b>&\"c'\u{1}\u{0}d\u{FFFF}\té"),
            "a&lt;b&gt;&amp;&quot;c&apos;d\té"
        );
    }

    #[test]
    fn a_feed_names_each_torrent_once_with_its_magnet() {
        let h = SearchHit {
            info_hash: dhtkit_proto::Id([0xab; 20]),
            name: "A & B <x>".into(),
            size: 2048,
            files: 2,
            first_seen: 0,
            swarm: None,
        };
        let x = rss(&[h], "http://127.0.0.1:8080", "");
        assert!(x.contains("<title>A &amp; B &lt;x&gt;</title>"), "{x}");
        assert!(x.contains(&format!(
            "<guid isPermaLink=\"false\">{}</guid>",
            "ab".repeat(20)
        )));
        assert!(x.contains("<pubDate>Thu, 01 Jan 1970 00:00:00 +0000</pubDate>"));
        assert!(x.contains("magnet:?xt=urn:btih:abab"));
        assert_eq!(x.matches("<item>").count(), 1);
    }
}
