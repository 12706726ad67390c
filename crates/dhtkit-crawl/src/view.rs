//! How torrents and search hits look to people and programs: the JSON shapes that `dhtkit
//! search --json`, `dhtkit show --json`, `dhtkit export` and the web API share, magnet links,
//! sizes for people, and RFC 3339 timestamps (without a calendar crate).

use serde_json::{json, Value};

use crate::store::{ExportRow, SearchHit, TorrentRecord};
use crate::Source;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

/// `2026-11-24T10:00:00Z` for Unix seconds.
pub fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `Wed, 02 Dec 2026 10:00:00 +0000` for Unix seconds: the RFC 2822 dates of RSS.
pub fn rfc2822(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Unix seconds of an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`), or of a
/// bare date (midnight UTC).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut dp = date.splitn(3, '-');
    let (y, mo, d) = (num(dp.next()?)?, num(dp.next()?)?, num(dp.next()?)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400;
    if let Some(rest) = rest {
        let tz_at = rest.find(['Z', 'z', '+', '-'])?;
        let (time, tz) = rest.split_at(tz_at);
        let time = time.split('.').next()?;
        let mut tp = time.splitn(3, ':');
        let (h, mi, se) = (num(tp.next()?)?, num(tp.next()?)?, num(tp.next()?)?);
        if h > 23 || mi > 59 || se > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + se;
        if tz != "Z" && tz != "z" {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            let (oh, om) = tz[1..].split_once(':')?;
            secs -= sign * (num(oh)? * 3600 + num(om)? * 60);
        }
    }
    Some(secs)
}

/// A magnet link with the name as `dn`, percent-encoded.
pub fn magnet(ih: &dhtkit::Id, name: &str) -> String {
    let mut dn = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            dn.push(b as char);
        } else {
            dn.push_str(&format!("%{b:02X}"));
        }
    }
    format!("magnet:?xt=urn:btih:{}&dn={dn}", ih.to_hex())
}

/// A size for people: `1.5 GiB`, `230 B`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A search hit as JSON (`dhtkit search --json`, the web API's results).
pub fn hit_json(h: &SearchHit) -> Value {
    json!({
        "infohash": h.info_hash.to_hex(), "name": h.name, "size": h.size,
        "files": h.files, "first_seen": rfc3339(h.first_seen),
        "seeders": h.swarm.map(|s| s.seeders),
        "leechers": h.swarm.map(|s| s.leechers),
        "scraped_at": h.swarm.map(|s| rfc3339(s.at)),
        "magnet": magnet(&h.info_hash, &h.name),
    })
}

/// Everything known about one infohash as JSON (`dhtkit show --json`, the web API).
pub fn record_json(r: &TorrentRecord) -> Value {
    let m = r.metadata.as_ref();
    json!({
        "infohash": r.info_hash.to_hex(),
        "name": m.map(|m| &m.name),
        "size": m.map(|m| m.size),
        "files": m.map(|m| m.file_count),
        "piece_length": m.map(|m| m.piece_length),
        "private": m.map(|m| m.private),
        "meta_version": m.map(|m| m.meta_version),
        "fetched_at": m.map(|m| rfc3339(m.fetched_at)),
        "first_seen": rfc3339(r.first_seen),
        "last_seen": rfc3339(r.last_seen),
        "times_seen": r.seen_count,
        "found_by": Source::names(r.sources),
        "seeders": r.swarm.map(|s| s.seeders),
        "leechers": r.swarm.map(|s| s.leechers),
        "scraped_at": r.swarm.map(|s| rfc3339(s.at)),
        "last_seeded": r.last_seeded.map(rfc3339),
        "magnet": magnet(&r.info_hash, m.map_or("", |m| &m.name)),
        "file_list": m.map(|m| m.files.iter().map(|f| json!({"path": f.path, "length": f.length})).collect::<Vec<_>>()),
    })
}

/// One line of `dhtkit export` (what `dhtkit import --from jsonl` reads back).
pub fn export_json(r: &ExportRow) -> Value {
    json!({
        "infohash": r.info_hash.to_hex(),
        "name": r.name,
        "size": r.size,
        "files": r.files,
        "discovered_at": rfc3339(r.discovered_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(parse_rfc3339("2026-11-18T11:06:40Z"), Some(1_795_000_000));
        assert_eq!(
            parse_rfc3339("2026-11-18T13:06:40.5+02:00"),
            Some(1_795_000_000)
        );
        assert_eq!(parse_rfc3339("1970-01-02"), Some(86_400));
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_795_000_000), "Wed, 18 Nov 2026 11:06:40 +0000");
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00Z")
                .map(rfc3339)
                .as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-11-18T11:06Z",
            "2026-11-18T06:26:40",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
