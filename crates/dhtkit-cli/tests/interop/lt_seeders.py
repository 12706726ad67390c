#!/usr/bin/env python3
"""libtorrent sessions on loopback that seed small torrents and announce them on the DHT, for
dhtkit's crawler test. Driven by JSON lines on stdin, answering with JSON lines on stdout.

Each session listens (DHT and BitTorrent) on 127.<net>.<i>.1:<port>, its own /24, with
libtorrent's per-IP DHT rate limit left at its default.

Commands:
  {"cmd": "status"}  -> {"tables": [nodes per session], "blocked_count": n, "blocked": [...],
                          "incoming": {kind: count}}  (IPs libtorrent banned for flooding, and the
                          DHT packets that came from outside the swarm, by kind)
  {"cmd": "add_nodes", "addrs": [...]}       every session adds these as DHT nodes -> {"ok": true}
  {"cmd": "seed", "per_session": n, "dir": path}
      creates n small torrents per session under dir (every third one a v1+v2 hybrid, the rest
      v1 only), seeds them, and returns
      -> {"torrents": [{"name", "v1", "v2", "hybrid", "session"}], "seeding": k}
  {"cmd": "announce"}                        forces a DHT announce of every torrent -> {"ok": true}
  {"cmd": "wait", "seconds": s}              processes alerts for s seconds -> {"ok": true}
  {"cmd": "quit"}
Every wait is bounded; the script exits when stdin closes.
"""

import argparse
import os
import sys
import time
import warnings

import libtorrent as lt

from jsonl_harness import serve

warnings.simplefilter("ignore", DeprecationWarning)

WORDS = ["aurora", "basalt", "cobalt", "dahlia", "ember", "fjord", "garnet", "harbor",
         "indigo", "juniper", "kestrel", "lagoon", "meadow", "nimbus", "orchid", "prairie"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_session(ip, port):
    return lt.session({
        "listen_interfaces": f"{ip}:{port}",
        "outgoing_interfaces": ip,
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_prefer_verified_node_ids": False,
        "dht_ignore_dark_internet": False,
        "dht_bootstrap_nodes": "",
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert_category.error | lt.alert_category.status | lt.alert_category.dht_log,
    })


class Seeders:
    def __init__(self, count, net, port):
        self.sessions = []
        self.addrs = []
        self.handles = []
        self.blocked = []
        # DHT packets that came from outside the swarm (the crawler), by kind.
        self.incoming = {}
        self.prefix = f"127.{net}."
        for i in range(1, count + 1):
            ip = f"127.{net}.{i}.1"
            self.addrs.append(f"{ip}:{port}")
            self.sessions.append(make_session(ip, port))

    def pump(self):
        for s in self.sessions:
            for a in s.pop_alerts():
                if isinstance(a, lt.dht_pkt_alert):
                    text = a.message()
                    if not text.startswith("==>") and self.prefix not in text:
                        try:
                            msg = lt.bdecode(a.pkt_buf)
                            kind = msg.get(b"y", b"?").decode() + ":" + msg.get(b"q", b"").decode()
                        except Exception:
                            kind = "bad"
                        self.incoming[kind] = self.incoming.get(kind, 0) + 1
                if isinstance(a, lt.dht_log_alert):
                    m = a.log_message()
                    low = m.lower()
                    if "block" in low or "ban" in low or "limit" in low:
                        self.blocked.append(m[:200])

    def wait(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            self.pump()
            time.sleep(0.1)

    def status(self):
        tables = []
        for s in self.sessions:
            st = s.status()
            tables.append(getattr(st, "dht_nodes", 0))
        return {"tables": tables, "blocked": self.blocked[-20:], "blocked_count": len(self.blocked), "incoming": self.incoming}

    def add_nodes(self, addrs):
        for s in self.sessions:
            for a in addrs:
                host, port = a.rsplit(":", 1)
                s.add_dht_node((host, int(port)))
        return {"ok": True}

    def seed(self, per_session, base):
        out = []
        n = 0
        for i, s in enumerate(self.sessions):
            for j in range(per_session):
                hybrid = n % 3 == 2
                name = f"dhtkit {WORDS[n % len(WORDS)]} {n:03d} {'hybrid' if hybrid else 'classic'}"
                root = os.path.join(base, f"s{i}t{j}")
                top = os.path.join(root, name)
                os.makedirs(top, exist_ok=True)
                for f in range(1 + n % 3):
                    with open(os.path.join(top, f"part{f}.bin"), "wb") as fh:
                        fh.write(os.urandom(20_000 + 1000 * f + n))
                fs = lt.file_storage()
                lt.add_files(fs, top)
                flags = 0 if hybrid else lt.create_torrent.v1_only
                t = lt.create_torrent(fs, 16384, flags=flags)
                lt.set_piece_hashes(t, root)
                ti = lt.torrent_info(t.generate())
                ih = ti.info_hashes()
                h = s.add_torrent({"ti": ti, "save_path": root})
                self.handles.append(h)
                out.append({
                    "name": name,
                    "v1": str(ih.v1),
                    "v2": str(ih.v2)[:40] if ih.has_v2() else None,
                    "hybrid": hybrid,
                    "session": i,
                })
                n += 1
        # Wait (bounded) until every torrent has checked its files and seeds.
        end = time.time() + 60
        seeding = 0
        while time.time() < end:
            self.pump()
            seeding = sum(1 for h in self.handles if h.status().is_seeding)
            if seeding == len(self.handles):
                break
            time.sleep(0.2)
        return {"torrents": out, "seeding": seeding}

    def announce(self):
        for h in self.handles:
            h.force_dht_announce()
        return {"ok": True}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=12)
    ap.add_argument("--net", type=int, default=90)
    ap.add_argument("--port", type=int, default=17881)
    args = ap.parse_args()
    sw = Seeders(args.count, args.net, args.port)
    def handle(c):
        cmd = c.get("cmd")
        if cmd == "status":
            return sw.status()
        if cmd == "add_nodes":
            return sw.add_nodes(c["addrs"])
        if cmd == "seed":
            return sw.seed(c["per_session"], c["dir"])
        if cmd == "announce":
            return sw.announce()
        if cmd == "wait":
            sw.wait(min(float(c["seconds"]), 120))
            return {"ok": True}
        return {"error": f"unknown command {cmd}"}

    serve({"ready": True, "addrs": sw.addrs, "version": lt.__version__}, sw.pump, handle)


if __name__ == "__main__":
    main()
