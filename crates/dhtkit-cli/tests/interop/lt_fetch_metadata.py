#!/usr/bin/env python3
"""A libtorrent session (DHT, LSD, UPnP and uTP off) on --ip that is given a magnet link and a
single peer, and waits (at most --timeout seconds) for the torrent's metadata. Prints one JSON
line: {"ok": true, "name": ..., "info_hash": ..., "files": n, "size": bytes, "seconds": s} once
the metadata arrives, or {"ok": false, "error": ...}."""

import argparse
import json
import sys
import time
import warnings

import libtorrent as lt

warnings.simplefilter("ignore", DeprecationWarning)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ip", required=True)
    p.add_argument("--magnet", required=True)
    p.add_argument("--peer", required=True, help="HOST:PORT")
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--save", default="/tmp")
    a = p.parse_args()
    s = lt.session({
        "listen_interfaces": f"{a.ip}:0",
        "outgoing_interfaces": a.ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert_category.error | lt.alert_category.status,
    })
    params = lt.parse_magnet_uri(a.magnet)
    params.save_path = a.save
    params.flags |= lt.torrent_flags.upload_mode
    h = s.add_torrent(params)
    host, port = a.peer.rsplit(":", 1)
    started = time.time()
    h.connect_peer((host, int(port)), 0)
    last_connect = started
    while time.time() - started < a.timeout:
        s.wait_for_alert(500)
        for alert in s.pop_alerts():
            if isinstance(alert, lt.metadata_received_alert):
                ti = h.torrent_file()
                print(json.dumps({
                    "ok": True,
                    "name": ti.name(),
                    "info_hash": str(ti.info_hashes().v1),
                    "files": ti.num_files(),
                    "size": ti.total_size(),
                    "seconds": round(time.time() - started, 2),
                }), flush=True)
                return 0
        # A peer that hung up is tried again, every 2 s.
        if time.time() - last_connect > 2:
            h.connect_peer((host, int(port)), 0)
            last_connect = time.time()
    print(json.dumps({"ok": False, "error": "no metadata within the timeout"}), flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
