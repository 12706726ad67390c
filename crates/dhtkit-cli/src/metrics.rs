//! `--metrics ADDR` on `node` and `crawl`: Prometheus (OpenMetrics text) at `/metrics`.
//!
//! Each scrape asks the nodes for their counters and reads the crawler's, then encodes that
//! snapshot with `prometheus-client`. Node metrics carry a `node` label (its address), so that
//! a crawler's several nodes are told apart; sum them in the query.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use dhtkit::{Dht, DhtStats, LookupTimes, MethodKind};
use dhtkit_crawl::CrawlStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::{parse_addr, BadInput};

/// The empty label set.
const NONE: [(&str, &str); 0] = [];

/// What a scrape reports on.
#[derive(Clone)]
pub(crate) struct Source {
    /// The nodes (one for `node`, several for `crawl`).
    pub nodes: Vec<Dht>,
    /// The crawler's counters, for `crawl`.
    pub crawl: Option<Arc<CrawlStats>>,
    /// The metadata server's counters, for `crawl` while it serves (BEP 9).
    pub served: Option<Arc<dhtkit_crawl::serve::ServeStats>>,
}

/// One scrape's numbers.
#[derive(Debug)]
struct Snapshot {
    nodes: Vec<DhtStats>,
    crawl: Option<Arc<CrawlStats>>,
    served: Option<Arc<dhtkit_crawl::serve::ServeStats>>,
    rss: u64,
}

/// Counter or gauge, one value per label set.
fn family<L: prometheus_client::encoding::EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    values: impl IntoIterator<Item = (L, u64)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in values {
        let mut e = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => e.encode_counter::<NoLabelSet, _, u64>(&v, None)?,
            _ => e.encode_gauge(&v)?,
        }
    }
    Ok(())
}

/// A gauge family with fractional values.
fn gauge_f64(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    m.encode_family(&NONE)?.encode_gauge(&v)?;
    Ok(())
}

/// A histogram from cumulative counts at fixed bounds (in seconds), `+Inf` added.
fn histogram<L: prometheus_client::encoding::EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, f64, u64, Vec<(f64, u64)>)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, sum, count, cumulative) in values {
        // The encoder wants each bucket's own count (it adds them up) and `f64::MAX` for +Inf.
        let mut buckets = Vec::with_capacity(cumulative.len() + 1);
        let mut below = 0;
        for (bound, n) in cumulative
            .into_iter()
            .chain(std::iter::once((f64::MAX, count)))
        {
            buckets.push((bound, n.saturating_sub(below)));
            below = below.max(n);
        }
        m.encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        use MetricType::{Counter, Gauge};
        let names: Vec<String> = self
            .nodes
            .iter()
            .map(|s| s.local_addr.to_string())
            .collect();
        let per_node = |f: &dyn Fn(&DhtStats) -> u64| -> Vec<([(&str, String); 1], u64)> {
            self.nodes
                .iter()
                .zip(&names)
                .map(|(s, n)| ([("node", n.clone())], f(s)))
                .collect()
        };
        let by_method = |f: &dyn Fn(&DhtStats) -> &[u64; MethodKind::COUNT]| {
            let mut v = Vec::new();
            for (s, n) in self.nodes.iter().zip(&names) {
                for k in MethodKind::ALL {
                    v.push((
                        [("node", n.clone()), ("method", k.name().to_string())],
                        f(s)[k.index()],
                    ));
                }
            }
            v
        };
        family(
            &mut enc,
            "dhtkit_datagrams_received",
            "UDP datagrams received.",
            Counter,
            per_node(&|s| s.node.datagrams_in),
        )?;
        family(
            &mut enc,
            "dhtkit_bytes_received",
            "UDP payload bytes received.",
            Counter,
            per_node(&|s| s.node.bytes_in),
        )?;
        family(
            &mut enc,
            "dhtkit_datagrams_sent",
            "UDP datagrams queued for sending.",
            Counter,
            per_node(&|s| s.node.datagrams_out),
        )?;
        family(
            &mut enc,
            "dhtkit_queries_received",
            "Valid KRPC queries received, by method.",
            Counter,
            by_method(&|s| &s.node.queries_in_by_method),
        )?;
        family(
            &mut enc,
            "dhtkit_queries_sent",
            "KRPC queries sent (retransmissions included), by method.",
            Counter,
            by_method(&|s| &s.node.queries_out_by_method),
        )?;
        let mut replies = Vec::new();
        for (s, n) in self.nodes.iter().zip(&names) {
            replies.push((
                [("node", n.clone()), ("kind", "response".to_string())],
                s.node.replies_out,
            ));
            replies.push((
                [("node", n.clone()), ("kind", "error".to_string())],
                s.node.errors_out,
            ));
        }
        family(
            &mut enc,
            "dhtkit_replies_sent",
            "Queries answered, with a response or a KRPC error.",
            Counter,
            replies,
        )?;
        family(
            &mut enc,
            "dhtkit_responses_received",
            "Responses that matched one of our queries.",
            Counter,
            per_node(&|s| s.node.responses_in),
        )?;
        family(
            &mut enc,
            "dhtkit_errors_received",
            "KRPC errors that matched one of our queries.",
            Counter,
            per_node(&|s| s.node.errors_in),
        )?;
        family(
            &mut enc,
            "dhtkit_query_timeouts",
            "Our queries that timed out for good.",
            Counter,
            per_node(&|s| s.node.timeouts),
        )?;
        let mut dropped = Vec::new();
        for (s, n) in self.nodes.iter().zip(&names) {
            let st = &s.node;
            for (reason, v) in [
                ("invalid", st.invalid_in),
                ("unsolicited", st.unsolicited_in),
                ("per_ip_rate", st.rate_limited),
                ("banned", st.banned_dropped),
                ("reply_budget", st.reply_limited),
                ("send_rate", st.dest_limited),
                ("pending_full", st.pending_full),
                ("send_queue_full", st.transmits_dropped),
                ("event_queue_full", st.events_dropped),
            ] {
                dropped.push(([("node", n.clone()), ("reason", reason.to_string())], v));
            }
        }
        family(
            &mut enc,
            "dhtkit_dropped",
            "Messages dropped, by the limit or check that dropped them.",
            Counter,
            dropped,
        )?;
        family(
            &mut enc,
            "dhtkit_routing_table_nodes",
            "Nodes in the routing table.",
            Gauge,
            per_node(&|s| s.nodes as u64),
        )?;
        family(
            &mut enc,
            "dhtkit_peer_store_peers",
            "Peers in the peer store.",
            Gauge,
            per_node(&|s| s.peers_stored as u64),
        )?;
        family(
            &mut enc,
            "dhtkit_peer_store_infohashes",
            "Infohashes in the peer store.",
            Gauge,
            per_node(&|s| s.infohashes_stored as u64),
        )?;
        family(
            &mut enc,
            "dhtkit_dht_size_estimate",
            "Estimated nodes in the DHT, from the distances of the last lookups (0 until a few have ended).",
            Gauge,
            per_node(&|s| s.node.dht_size_estimate.unwrap_or(0)),
        )?;
        family(
            &mut enc,
            "dhtkit_lookups_running",
            "Lookups in progress.",
            Gauge,
            per_node(&|s| s.lookups_running as u64),
        )?;
        family(
            &mut enc,
            "dhtkit_pending_queries",
            "Our queries awaiting an answer.",
            Gauge,
            per_node(&|s| s.pending_queries as u64),
        )?;
        family(
            &mut enc,
            "dhtkit_advertised_infohashes",
            "Infohashes this node keeps announcing.",
            Gauge,
            per_node(&|s| s.advertised as u64),
        )?;
        histogram(
            &mut enc,
            "dhtkit_lookup_duration_seconds",
            "Lookups finished, by how long they took.",
            self.nodes.iter().zip(&names).map(|(s, n)| {
                let l = &s.node.lookups;
                let buckets = LookupTimes::BOUNDS_MS
                    .iter()
                    .zip(l.at_most)
                    .map(|(b, c)| (*b as f64 / 1000.0, c))
                    .collect();
                (
                    [("node", n.clone())],
                    l.sum_ms as f64 / 1000.0,
                    l.count,
                    buckets,
                )
            }),
        )?;
        family(
            &mut enc,
            "process_resident_memory_bytes",
            "Resident memory of the process.",
            Gauge,
            [(NONE, self.rss)],
        )?;
        let Some(c) = &self.crawl else { return Ok(()) };
        let g = CrawlStats::get;
        let one = |v: u64| [(NONE, v)];
        if let Some(s) = &self.served {
            family(
                &mut enc,
                "dhtkit_crawl_metadata_served_connections",
                "Peers that connected to the metadata server (BEP 9), and those refused when it was full.",
                Counter,
                [
                    ([("result", "accepted")], g(&s.connections)),
                    ([("result", "refused")], g(&s.refused)),
                    ([("result", "known")], g(&s.known)),
                ],
            )?;
            family(
                &mut enc,
                "dhtkit_crawl_metadata_served_bytes",
                "Metadata bytes served to peers.",
                Counter,
                one(g(&s.bytes)),
            )?;
            family(
                &mut enc,
                "dhtkit_crawl_metadata_served_pieces",
                "Metadata pieces served to peers.",
                Counter,
                one(g(&s.pieces)),
            )?;
        }
        family(
            &mut enc,
            "dhtkit_crawl_infohashes_seen",
            "Infohash sightings (queries received and BEP 51 samples).",
            Counter,
            one(g(&c.sightings)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_infohashes_new",
            "Infohashes not seen before.",
            Counter,
            one(g(&c.new_infohashes)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_discoveries_dropped",
            "Discoveries dropped because a queue was full.",
            Counter,
            one(g(&c.dropped) + g(&c.discovery_dropped)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_samples_sent",
            "sample_infohashes queries sent.",
            Counter,
            one(g(&c.samples_sent)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_samples_answered",
            "sample_infohashes replies received.",
            Counter,
            one(g(&c.samples_answered)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_nodes_sampled_interval",
            "Distinct nodes that answered a sample query in the last interval (6 h).",
            Gauge,
            one(g(&c.nodes_sampled_interval)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_nodes_answered",
            "Distinct nodes that ever answered a sample query.",
            Counter,
            one(g(&c.nodes_answered)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_bep51_nodes",
            "Distinct nodes that answered with BEP 51 samples or an interval.",
            Counter,
            one(g(&c.bep51_nodes)),
        )?;
        gauge_f64(
            &mut enc,
            "dhtkit_crawl_bep51_share",
            "Of the nodes that answered a sample query, the share that speak BEP 51.",
            c.bep51_share(),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_nodes_scheduled",
            "Nodes the walk keeps track of.",
            Gauge,
            one(g(&c.nodes_scheduled)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_queries_sent",
            "DHT queries sent, by whom: discovery (samples, direct get_peers, lookups) or the nodes' own upkeep.",
            Counter,
            [
                ([("by", "discovery")], g(&c.discovery_queries)),
                ([("by", "nodes")], g(&c.node_queries)),
            ],
        )?;
        gauge_f64(
            &mut enc,
            "dhtkit_crawl_queries_per_infohash",
            "Queries sent (all of them) per infohash discovered.",
            c.queries_per_infohash(),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_discovered_per_hour",
            "New infohashes per hour, over the last hour.",
            Gauge,
            one(g(&c.discovered_per_hour)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_named_per_hour",
            "Metadata fetched per hour, over the last hour.",
            Gauge,
            one(g(&c.named_per_hour)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_direct_get_peers",
            "One-query get_peers sent to the node that sampled an infohash.",
            Counter,
            one(g(&c.direct_sent)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_direct_get_peers_with_peers",
            "Of those, answered with peers.",
            Counter,
            one(g(&c.direct_hits)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_peers_found",
            "Infohashes for which peers were found (directly or by a lookup).",
            Counter,
            one(g(&c.peers_found)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_peer_lookups",
            "get_peers lookups started for metadata.",
            Counter,
            one(g(&c.lookups)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_peer_lookups_with_peers",
            "Of those, lookups that found a peer.",
            Counter,
            one(g(&c.lookups_with_peers)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_metadata_fetched",
            "Metadata fetched and verified.",
            Counter,
            one(g(&c.fetched)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_metadata_failed",
            "Metadata fetch attempts that failed (one per peer tried), by reason.",
            Counter,
            c.failures().into_iter().map(|(r, n)| ([("reason", r)], n)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_metadata_given_up",
            "Infohashes given up on after every retry.",
            Counter,
            one(g(&c.given_up)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_queue_depth",
            "Infohashes waiting, by queue.",
            Gauge,
            [
                ([("queue", "direct")], g(&c.direct_queue)),
                ([("queue", "lookup")], g(&c.lookup_queue)),
                ([("queue", "fetch")], g(&c.fetch_queue)),
                ([("queue", "retry")], g(&c.retry_queue)),
                ([("queue", "scrape")], g(&c.scrape_queue)),
            ],
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_scrapes",
            "BEP 33 scrapes of named torrents started, and those that stored counts.",
            Counter,
            [
                ([("result", "started")], g(&c.scrapes)),
                ([("result", "counted")], g(&c.scrapes_counted)),
            ],
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_db_size_bytes",
            "The database's size on disk (SQLite: the file and its WAL).",
            Gauge,
            one(g(&c.db_bytes)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_db_cap_bytes",
            "The --max-db-size cap (0: none).",
            Gauge,
            one(g(&c.db_cap)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_db_evicted",
            "Rows deleted to keep the database under its cap.",
            Counter,
            one(g(&c.db_evicted)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_scrape_queries",
            "Queries sent by scrapes (inside the crawl's packet budget).",
            Counter,
            one(g(&c.scrape_queries)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_fetches_running",
            "Metadata fetches running.",
            Gauge,
            one(g(&c.fetching)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_db_rows_written",
            "Rows written to the database (sightings and torrents).",
            Counter,
            one(g(&c.rows_written)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_db_batch_errors",
            "Batches that failed to commit.",
            Counter,
            one(g(&c.store_errors)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_db_infohashes",
            "Infohashes in the database (counted every 30 s).",
            Gauge,
            one(g(&c.db_infohashes)),
        )?;
        family(
            &mut enc,
            "dhtkit_crawl_db_with_metadata",
            "Infohashes in the database with metadata (counted every 30 s).",
            Gauge,
            one(g(&c.db_with_metadata)),
        )?;
        let buckets = CrawlStats::BATCH_BOUNDS_MICROS
            .iter()
            .zip(&c.batch_at_most)
            .map(|(b, n)| (*b as f64 / 1e6, g(n)))
            .collect();
        histogram(
            &mut enc,
            "dhtkit_crawl_db_batch_seconds",
            "Time to commit one batch.",
            [(
                NONE,
                g(&c.batch_micros) as f64 / 1e6,
                g(&c.batches),
                buckets,
            )],
        )
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

async fn scrape(source: Arc<Source>) -> axum::response::Response {
    let mut nodes = Vec::with_capacity(source.nodes.len());
    for d in &source.nodes {
        if let Ok(s) = d.stats().await {
            nodes.push(s);
        }
    }
    let snap = Snapshot {
        nodes,
        crawl: source.crawl.clone(),
        served: source.served.clone(),
        rss: dhtkit_crawl::stats::rss_bytes(),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snap));
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &registry) {
        let _ = writeln!(body, "# encoding failed: {e}");
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Starts serving `/metrics` on `addr` in the background; returns the bound address.
pub(crate) async fn serve(addr: &str, source: Source) -> Result<SocketAddr, BadInput> {
    let bind = parse_addr(addr)?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| BadInput(format!("--metrics: cannot listen on {bind}: {e}")))?;
    let local = listener.local_addr().unwrap_or(bind);
    let source = Arc::new(source);
    let app = Router::new().route("/metrics", get(move || scrape(source.clone())));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics server: {e}");
        }
    });
    Ok(local)
}
