//! The pages, as maud templates: every value is escaped by maud, so a name such as
//! `<script>` is shown as text.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use dhtkit_crawl::metadata::FileEntry;
use dhtkit_crawl::store::{SearchHit, Sort, Source, StoreStats, Swarm, TorrentRecord};
use dhtkit_crawl::view::{human_size, magnet, rfc3339};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::{Charts, Filters, PAGE_SIZE};

const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:baseline}
header a{color:#cfe0ff;text-decoration:none}header .brand{font-weight:700;color:#fff;font-size:1.15em}
main{max-width:1100px;margin:0 auto;padding:1em 1.2em}
form.search{display:flex;gap:.5em;margin:.5em 0 1em}
form.search input{flex:1;font-size:1.05em;padding:.45em .6em;border:1px solid #9aa5b5;border-radius:4px}
form.search button{font-size:1.05em;padding:.45em 1.1em;border:0;border-radius:4px;background:#2f6fdf;color:#fff}
form.search{flex-wrap:wrap}form.search .filters{flex-basis:100%;display:flex;gap:1em;flex-wrap:wrap;font-size:.9em}
form.search .filters input,form.search .filters select{font-size:1em;padding:.2em .3em}
th a{color:inherit;text-decoration:none}th a.sorted{text-decoration:underline}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:.4em .6em;border-bottom:1px solid #e3e6eb;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.num{text-align:right;white-space:nowrap}
td.name{word-break:break-word}.muted{color:#6b7585}.pager{margin:1em 0;display:flex;gap:1em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3em 1.2em;background:#fff;padding:1em}
dt{font-weight:600}dd{margin:0;word-break:break-all}
ul.tree{list-style:none;padding-left:1.2em;margin:.2em 0}ul.tree li{margin:.1em 0}
.size{color:#6b7585;margin-left:.6em}.chart{background:#fff;padding:.5em;margin:.5em 0 1.5em}
code{font-size:.95em}
";

/// The frame around every page.
fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · dhtkit" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/" { "dhtkit" }
                    a href="/" { "Search" }
                    a href="/stats" { "Statistics" }
                }
                main { (body) }
            }
        }
    }
}

fn search_form(text: &str, f: &Filters) -> Markup {
    let since = f.since.as_ref().map_or("", |s| s.0.as_str());
    let size = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    html! {
        form.search action="/search" method="get" role="search" {
            input type="search" name="q" value=(text) placeholder="Words in a name or file path"
                autofocus aria-label="Search";
            button type="submit" { "Search" }
            div.filters {
                label { "Seeders at least " input type="number" name="min_seeders" min="0" size="5"
                    value=(f.min_seeders.map(|v| v.to_string()).unwrap_or_default()); }
                label { "Size from " input type="text" name="min_size" size="7" placeholder="700M"
                    value=(size(f.min_size)); }
                label { "to " input type="text" name="max_size" size="7" placeholder="4G"
                    value=(size(f.max_size)); }
                label { "First seen " select name="since" {
                    @for (v, l) in [("", "any time"), ("1d", "in the last day"), ("7d", "in the last week"), ("30d", "in the last 30 days"), ("365d", "in the last year")] {
                        option value=(v) selected[since == v] { (l) }
                    }
                } }
                @if f.sort != Sort::Relevance {
                    input type="hidden" name="sort" value=(f.sort.name());
                    input type="hidden" name="order" value=(if f.ascending { "asc" } else { "desc" });
                }
            }
        }
    }
}

fn date(secs: i64) -> String {
    rfc3339(secs)
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}

/// `text` percent-encoded for a query string.
pub(crate) fn encode(text: &str) -> String {
    let mut q = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            q.push(b as char);
        } else {
            q.push_str(&format!("%{b:02X}"));
        }
    }
    q
}

/// A link to the same search with another page, order or direction.
fn link(text: &str, f: &Filters, sort: Sort, ascending: bool, page: usize) -> String {
    let mut url = format!("/search?q={}", encode(text));
    if sort != Sort::Relevance {
        url.push_str(&format!(
            "&sort={}&order={}",
            sort.name(),
            if ascending { "asc" } else { "desc" }
        ));
    }
    if let Some(v) = f.min_seeders {
        url.push_str(&format!("&min_seeders={v}"));
    }
    if let Some(v) = f.min_size {
        url.push_str(&format!("&min_size={v}"));
    }
    if let Some(v) = f.max_size {
        url.push_str(&format!("&max_size={v}"));
    }
    if let Some((v, _)) = &f.since {
        url.push_str(&format!("&since={}", encode(v)));
    }
    if page > 1 {
        url.push_str(&format!("&page={page}"));
    }
    url
}

/// A column heading that sorts by that column: largest (newest) first, then, clicked again,
/// smallest first.
fn sort_heading(l: &Listing<'_>, sort: Sort, label: &str) -> Markup {
    let current = l.filters.sort == sort;
    let ascending = current && !l.filters.ascending;
    let arrow = match (current, l.filters.ascending) {
        (false, _) => "",
        (true, false) => " ↓",
        (true, true) => " ↑",
    };
    html! {
        th aria-sort=(match (current, l.filters.ascending) { (false, _) => "none", (true, false) => "descending", (true, true) => "ascending" }) {
            a.sorted[current] id={ "sort-" (sort.name()) } href=(link(l.text, l.filters, sort, ascending, 1)) { (label) (arrow) }
        }
    }
}

fn seeders(s: Option<Swarm>) -> String {
    s.map_or("–".into(), |s| s.seeders.to_string())
}

fn leechers(s: Option<Swarm>) -> String {
    s.map_or("–".into(), |s| s.leechers.to_string())
}

/// What the search page shows.
pub(super) struct Listing<'a> {
    pub text: &'a str,
    pub filters: &'a Filters,
    pub page: usize,
    pub hits: &'a [SearchHit],
    pub more: bool,
    pub totals: StoreStats,
}

/// The search page: the form, then results (when there is a query or a filter) or the
/// totals.
pub(super) fn search(l: &Listing<'_>) -> Markup {
    let (text, page, hits) = (l.text, l.page, l.hits);
    let first = (page - 1) * PAGE_SIZE + 1;
    let listing = !text.is_empty() || l.filters.any() || l.filters.sort != Sort::Relevance;
    let what = if text.is_empty() {
        html! { "the newest torrents" }
    } else {
        html! { strong { (text) } }
    };
    let body = html! {
        (search_form(text, l.filters))
        @if !listing {
            p.muted {
                (l.totals.infohashes) " infohashes discovered, " (l.totals.with_metadata)
                " with metadata. Search their names and file paths."
            }
        } @else if hits.is_empty() {
            p id="no-results" { "Nothing found for " (what) "." }
        } @else {
            p.muted { "Results " (first) "–" (first + hits.len() - 1) " for " (what) }
            table id="results" {
                thead { tr {
                    th { a id="sort-relevance" href=(link(text, l.filters, Sort::Relevance, false, 1)) { "Name" } }
                    (sort_heading(l, Sort::Size, "Size"))
                    th { "Files" }
                    (sort_heading(l, Sort::Seeders, "Seeders"))
                    th { "Leechers" }
                    (sort_heading(l, Sort::FirstSeen, "First seen"))
                    th { "Magnet" }
                } }
                tbody {
                    @for h in hits {
                        tr {
                            td.name { a.result href={ "/torrent/" (h.info_hash.to_hex()) } { (h.name) } }
                            td.num.size { (human_size(h.size)) }
                            td.num { (h.files) }
                            td.num.seeders { (seeders(h.swarm)) }
                            td.num.leechers { (leechers(h.swarm)) }
                            td.num { (date(h.first_seen)) }
                            td { a href=(magnet(&h.info_hash, &h.name)) { "magnet" } }
                        }
                    }
                }
            }
            div.pager {
                @if page > 1 { a rel="prev" href=(link(text, l.filters, l.filters.sort, l.filters.ascending, page - 1)) { "← Previous" } }
                @if l.more { a rel="next" href=(link(text, l.filters, l.filters.sort, l.filters.ascending, page + 1)) { "Next →" } }
            }
        }
    };
    let title = if text.is_empty() {
        "Search".to_string()
    } else {
        format!("{text} – search")
    };
    layout(&title, body)
}

/// A folder of the file tree.
#[derive(Default)]
struct Dir<'a> {
    dirs: BTreeMap<&'a str, Dir<'a>>,
    files: Vec<(&'a str, u64)>,
    size: u64,
}

fn tree(files: &[FileEntry]) -> Dir<'_> {
    let mut root = Dir::default();
    for f in files {
        let mut parts: Vec<&str> = f.path.split('/').filter(|p| !p.is_empty()).collect();
        let name = parts.pop().unwrap_or("");
        let mut d = &mut root;
        d.size += f.length;
        for p in parts {
            d = d.dirs.entry(p).or_default();
            d.size += f.length;
        }
        d.files.push((name, f.length));
    }
    root
}

fn render_dir(d: &Dir<'_>) -> Markup {
    html! {
        ul.tree {
            @for (name, sub) in &d.dirs {
                li {
                    details open {
                        summary { strong { (name) "/" } span.size { (human_size(sub.size)) } }
                        (render_dir(sub))
                    }
                }
            }
            @for (name, len) in &d.files {
                li.file { (name) span.size { (human_size(*len)) } }
            }
        }
    }
}

/// One torrent: what is known, and its file tree.
pub(super) fn torrent(r: &TorrentRecord) -> Markup {
    let m = r.metadata.as_ref();
    let name = m.map_or("(metadata not fetched yet)", |m| m.name.as_str());
    let body = html! {
        h1 id="name" { (name) }
        dl {
            dt { "Infohash" } dd { code { (r.info_hash.to_hex()) } }
            dt { "Magnet" } dd { a href=(magnet(&r.info_hash, m.map_or("", |m| &m.name))) { "magnet link" } }
            @if let Some(m) = m {
                dt { "Size" } dd { (human_size(m.size)) " (" (m.size) " bytes)" }
                dt { "Files" } dd { (m.file_count) }
                dt { "Piece size" } dd { (human_size(m.piece_length)) }
                dt { "Private" } dd { @if m.private { "yes" } @else { "no" } }
                dt { "Metadata" } dd { "v" (m.meta_version.min(2)) @if m.meta_version == 3 { " (hybrid)" } ", fetched " (date(m.fetched_at)) }
            }
            dt { "First seen" } dd { (date(r.first_seen)) }
            dt { "Last seen" } dd { (date(r.last_seen)) " (seen " (r.seen_count) @if r.seen_count == 1 { " time)" } @else { " times)" } }
            dt { "Found by" } dd { (Source::names(r.sources).join(", ")) }
            dt { "Swarm" } dd id="swarm" {
                @match r.swarm {
                    Some(w) => { (w.seeders) " seeders, " (w.leechers) " leechers (scraped " (date(w.at)) ")" }
                    None => { "not scraped yet" }
                }
            }
        }
        @if let Some(m) = m {
            h2 { "Files" }
            div id="files" { (render_dir(&tree(&m.files))) }
            @if (m.files.len() as u64) < m.file_count {
                p.muted { "… and " (m.file_count - m.files.len() as u64) " more files (not kept)." }
            }
        }
    };
    layout(name, body)
}

/// A bar chart as SVG: one bar per bucket, the highest labelled.
fn chart(points: &[(i64, u64)], label: fn(i64) -> String, every: usize, what: &str) -> Markup {
    const W: f64 = 960.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 56.0;
    const BOTTOM: f64 = 24.0;
    const TOP: f64 = 12.0;
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    let n = points.len().max(1) as f64;
    let slot = (W - LEFT) / n;
    let plot_h = H - BOTTOM - TOP;
    html! {
        svg.chart role="img" aria-label=(what) viewBox={ "0 0 " (W) " " (H) } width="100%"
            xmlns="http://www.w3.org/2000/svg" {
            line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(H - BOTTOM) stroke="#9aa5b5" {}
            line x1=(LEFT) y1=(H - BOTTOM) x2=(W) y2=(H - BOTTOM) stroke="#9aa5b5" {}
            text x=(LEFT - 6.0) y=(TOP + 10.0) text-anchor="end" font-size="12" fill="#6b7585" { (max) }
            text x=(LEFT - 6.0) y=(H - BOTTOM) text-anchor="end" font-size="12" fill="#6b7585" { "0" }
            @for (i, (t, c)) in points.iter().enumerate() {
                @let h = plot_h * (*c as f64) / (max as f64);
                @let x = LEFT + slot * i as f64;
                rect x=(format!("{:.1}", x + slot * 0.1)) y=(format!("{:.1}", H - BOTTOM - h))
                    width=(format!("{:.1}", slot * 0.8)) height=(format!("{:.1}", h)) fill="#2f6fdf" {
                    title { (label(*t)) ": " (c) }
                }
                @if i % every == 0 {
                    text x=(format!("{:.1}", x + slot / 2.0)) y=(H - 6.0) text-anchor="middle"
                        font-size="11" fill="#6b7585" { (label(*t)) }
                }
            }
        }
    }
}

fn day_label(t: i64) -> String {
    rfc3339(t)[5..10].to_string()
}

fn hour_label(t: i64) -> String {
    rfc3339(t)[11..16].to_string()
}

/// Totals and the discovery charts.
pub(super) fn stats(c: &Charts, db: &str) -> Markup {
    let body = html! {
        h1 { "Statistics" }
        dl {
            dt { "Database" } dd { code { (db) } }
            dt { "Infohashes" } dd id="infohashes" { (c.totals.infohashes) }
            dt { "With metadata" } dd id="with-metadata" { (c.totals.with_metadata) }
        }
        h2 { "Discovered per day (UTC), last " (c.per_day.len()) " days" }
        (chart(&c.per_day, day_label, 3, "infohashes discovered per day"))
        h2 { "Discovered per hour (UTC), last " (c.per_hour.len()) " hours" }
        (chart(&c.per_hour, hour_label, 4, "infohashes discovered per hour"))
    };
    layout("Statistics", body)
}

/// An error page.
pub(super) fn error(status: StatusCode, message: &str) -> Markup {
    let body = html! {
        h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
        p id="error" { (message) }
        p { a href="/" { "Back to search" } }
    };
    layout(status.canonical_reason().unwrap_or("Error"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_render_as_text() {
        let hits = [SearchHit {
            info_hash: dhtkit_proto::Id([7; 20]),
            name: "<script>alert(1)</script> \"quoted\"".into(),
            size: 1,
            files: 1,
            first_seen: 0,
            swarm: None,
        }];
        let page = search(&Listing {
            text: "<b>x</b>",
            filters: &Filters::default(),
            page: 1,
            hits: &hits,
            more: false,
            totals: StoreStats::default(),
        })
        .into_string();
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("<b>x</b>"));
    }

    #[test]
    fn the_tree_nests_folders_and_adds_sizes() {
        let files = [
            FileEntry {
                path: "a/b/one".into(),
                length: 3,
            },
            FileEntry {
                path: "a/two".into(),
                length: 4,
            },
            FileEntry {
                path: "three".into(),
                length: 5,
            },
        ];
        let t = tree(&files);
        assert_eq!(t.size, 12);
        assert_eq!(t.dirs["a"].size, 7);
        assert_eq!(t.dirs["a"].dirs["b"].files, [("one", 3)]);
        assert_eq!(t.files, [("three", 5)]);
    }

    #[test]
    fn links_keep_the_query_and_filters_intact() {
        let f = Filters {
            min_seeders: Some(2),
            since: Some(("7d".into(), 0)),
            ..Filters::default()
        };
        assert_eq!(
            link("a b&c", &f, Sort::Seeders, true, 2),
            "/search?q=a%20b%26c&sort=seeders&order=asc&min_seeders=2&since=7d&page=2"
        );
        assert_eq!(
            link("x", &Filters::default(), Sort::Relevance, false, 1),
            "/search?q=x"
        );
    }
}
