#!/usr/bin/env python3
"""A swarm of libtorrent DHT sessions on loopback, driven by JSON lines on stdin.

Used by dhtkit's interop test. Each session listens on its own address 127.<net>.<i>.1 (its own
/24, as on the internet), with the settings libtorrent needs on loopback. libtorrent's per-IP
flood protection (dht_block_ratelimit) stays at its default, so peers must be polite.

Commands (one JSON object per line) and answers (one JSON object per line):
  {"cmd": "status"}                           -> {"tables": [nodes per session]}
  {"cmd": "add_nodes", "addrs": ["ip:port", ...]}  every session adds these as ordinary DHT
      nodes (libtorrent never keeps its dht_bootstrap_nodes, which it treats as routers)
                                              -> {"ok": true}
  {"cmd": "announce", "idx": i, "ih": hex, "port": p, "seed": bool}   -> {"ok": true}
  {"cmd": "get_peers", "idx": i, "ih": hex, "want": "ip:port", "timeout": s}
                                              -> {"peers": [...], "found": bool}
  {"cmd": "traffic", "count": n}   every session starts n get_peers lookups and n announces for
      random infohashes (returns at once)         -> {"ok": true}
  {"cmd": "wait", "seconds": s}    keeps processing alerts for s seconds -> {"ok": true}
  {"cmd": "packets", "prefix": "127.70.", "settle": s}
      every query a session sent to an address starting with prefix, and what came back:
                                              -> {"queries": n, "replies": n, "errors": [...],
                                                  "unanswered": [...], "invalid": [...]}
  {"cmd": "put_immutable", "idx": i, "value": text}   stores the string (BEP 44)
                                              -> {"target": hex, "stored": n}
  {"cmd": "get_immutable", "idx": i, "target": hex, "timeout": s} -> {"value": text or null}
  {"cmd": "put_mutable", "idx": i, "seed": hex, "public": hex, "value": text, "salt": text}
      signs with the ed25519 seed (libtorrent takes the expanded secret key, derived here)
                                              -> {"seq": n, "stored": n}
  {"cmd": "get_mutable", "idx": i, "public": hex, "salt": text, "timeout": s}
                                              -> {"value": text or null, "seq": n or null}
  {"cmd": "sample", "idx": i, "addr": "ip:port", "timeout": s}   BEP 51 from one node
                                              -> {"samples": [hex], "num": n, "interval": s}
  {"cmd": "quit"}
With --ipv6 every session listens on [::1] instead, on ports PORT+1..PORT+count.
Every wait is bounded; the script exits when stdin closes.
"""

import hashlib

import argparse
import os
import sys
import time

import libtorrent as lt

from jsonl_harness import serve


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_session(ip, port, bootstrap, ipv6=False):
    host = f"[{ip}]" if ipv6 else ip
    settings = {
        "listen_interfaces": f"{host}:{port}",
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
        "dht_bootstrap_nodes": bootstrap,
        "alert_mask": lt.alert_category.dht
        | lt.alert_category.dht_log
        | lt.alert_category.dht_operation
        | lt.alert_category.error,
        "alert_queue_size": 100000,
    }
    if ipv6:
        # Every IPv6 node here is on ::1: one IP for all, so the per-IP block goes.
        settings["dht_block_ratelimit"] = 1000000
    return lt.session(settings)


class Swarm:
    def __init__(self, count, net, port, bootstrap, ipv6=False):
        self.sessions = []
        self.addrs = []
        for i in range(1, count + 1):
            if ipv6:
                # All on ::1, one port each.
                self.addrs.append(f"[::1]:{port + i}")
                self.sessions.append(make_session("::1", port + i, bootstrap, ipv6=True))
                continue
            ip = f"127.{net}.{i}.1"
            self.addrs.append(f"{ip}:{port}")
            self.sessions.append(make_session(ip, port, bootstrap))
        # Packet log: per session, outgoing queries by (endpoint, tid) and replies seen.
        self.sent = [dict() for _ in self.sessions]  # (ep, tid) -> (time, method)
        self.answers = [dict() for _ in self.sessions]  # (ep, tid) -> (y, msg)
        self.peers = [dict() for _ in self.sessions]  # ih hex -> set of "ip:port"
        self.tables = [0 for _ in self.sessions]
        self.items = [dict() for _ in self.sessions]  # target hex -> value (immutable)
        self.mutable = [dict() for _ in self.sessions]  # (public hex, salt) -> (seq, value)
        self.puts = [dict() for _ in self.sessions]  # target hex -> (seq, num_success)
        self.samples = [dict() for _ in self.sessions]  # "ip:port" -> alert fields

    def pump(self):
        for i, s in enumerate(self.sessions):
            for a in s.pop_alerts():
                if isinstance(a, lt.dht_pkt_alert):
                    self.on_packet(i, a)
                elif isinstance(a, lt.dht_get_peers_reply_alert):
                    ih = str(a.info_hash)
                    got = self.peers[i].setdefault(ih, set())
                    for p in a.peers():
                        host = f"[{p[0]}]" if ":" in p[0] else p[0]
                        got.add(f"{host}:{p[1]}")
                elif isinstance(a, lt.dht_stats_alert):
                    self.tables[i] = sum(b["num_nodes"] for b in a.routing_table)
                elif isinstance(a, lt.dht_immutable_item_alert):
                    self.items[i][str(a.target)] = a.item
                elif isinstance(a, lt.dht_mutable_item_alert):
                    key = (bytes(a.key).hex(), bytes(a.salt).decode("latin-1"))
                    have = self.mutable[i].get(key)
                    if a.item is not None and (have is None or a.seq > have[0]):
                        self.mutable[i][key] = (a.seq, a.item)
                elif isinstance(a, lt.dht_put_alert):
                    self.puts[i][str(a.target)] = (a.seq, a.num_success)
                elif isinstance(a, lt.dht_sample_infohashes_alert):
                    ep = f"{a.endpoint[0]}:{a.endpoint[1]}"
                    self.samples[i][ep] = {
                        "samples": [str(h) for h in a.samples],
                        "num": a.num_infohashes,
                        "interval": a.interval.total_seconds()
                        if hasattr(a.interval, "total_seconds") else a.interval,
                    }

    def on_packet(self, i, a):
        text = a.message()
        outgoing = text.startswith("==>")
        try:
            ep = text[text.index("[") + 1 : text.index("]")]
            msg = lt.bdecode(a.pkt_buf)
        except Exception:
            return
        if not isinstance(msg, dict):
            return
        y = msg.get(b"y")
        tid = msg.get(b"t")
        if outgoing and y == b"q":
            self.sent[i][(ep, tid)] = (time.monotonic(), msg.get(b"q", b"").decode("latin-1"))
        elif not outgoing and y in (b"r", b"e"):
            self.answers[i].setdefault((ep, tid), (y, msg))

    def wait(self, seconds, until=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.pump()
            if until is not None and until():
                return True
            time.sleep(0.05)
        self.pump()
        return until() if until is not None else True

    def status(self):
        for s in self.sessions:
            s.post_dht_stats()
        self.wait(0.5)
        return {"tables": self.tables}

    def packets(self, prefix, settle):
        now = time.monotonic()
        queries = replies = 0
        errors, unanswered, invalid = [], [], []
        for i in range(len(self.sessions)):
            for (ep, tid), (t, method) in self.sent[i].items():
                if not ep.startswith(prefix) or now - t < settle:
                    continue
                queries += 1
                ans = self.answers[i].get((ep, tid))
                if ans is None:
                    unanswered.append({"session": i, "to": ep, "method": method})
                    continue
                y, msg = ans
                if y == b"e":
                    errors.append({"session": i, "to": ep, "method": method, "e": repr(msg.get(b"e"))})
                    continue
                r = msg.get(b"r")
                ok = isinstance(r, dict) and isinstance(r.get(b"id"), bytes) and len(r[b"id"]) == 20
                if method in ("find_node", "get_peers") and ok:
                    ok = isinstance(r.get(b"nodes"), bytes) or b"values" in r
                if method == "get_peers" and ok:
                    ok = isinstance(r.get(b"token"), bytes)
                if ok:
                    replies += 1
                else:
                    invalid.append({"session": i, "to": ep, "method": method, "r": repr(r)[:200]})
        return {"queries": queries, "replies": replies, "errors": errors[:20],
                "unanswered": unanswered[:20], "unanswered_count": len(unanswered),
                "invalid": invalid[:20]}


def text(v):
    """An item's value as text (a bencoded string comes back as bytes)."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return None if v is None else repr(v)


def expanded_secret(seed):
    """libtorrent's 64-byte ed25519 secret key from a 32-byte seed (SHA-512, clamped)."""
    h = bytearray(hashlib.sha512(seed).digest())
    h[0] &= 248
    h[31] &= 63
    h[31] |= 64
    return bytes(h)


def items(swarm, cmd):
    c, i = cmd["cmd"], cmd["idx"]
    sess = swarm.sessions[i]
    wait = min(float(cmd.get("timeout", 20)), 60.0)
    if c == "put_immutable":
        target = str(sess.dht_put_immutable_item(cmd["value"].encode()))
        swarm.wait(wait, lambda: target in swarm.puts[i])
        return {"target": target, "stored": swarm.puts[i].get(target, (0, 0))[1]}
    if c == "get_immutable":
        t = cmd["target"]
        sess.dht_get_immutable_item(lt.sha1_hash(bytes.fromhex(t)))
        swarm.wait(wait, lambda: t in swarm.items[i])
        return {"value": text(swarm.items[i].get(t))}
    if c == "put_mutable":
        seed, public = bytes.fromhex(cmd["seed"]), bytes.fromhex(cmd["public"])
        salt = cmd["salt"].encode()
        before = dict(swarm.puts[i])
        sess.dht_put_mutable_item(expanded_secret(seed), public, cmd["value"].encode(), salt)
        swarm.wait(wait, lambda: swarm.puts[i] != before)
        new = [v for k, v in swarm.puts[i].items() if before.get(k) != v]
        seq, stored = new[0] if new else (None, 0)
        return {"seq": seq, "stored": stored}
    if c == "get_mutable":
        key = (cmd["public"], cmd["salt"])
        swarm.mutable[i].pop(key, None)
        sess.dht_get_mutable_item(bytes.fromhex(cmd["public"]), cmd["salt"].encode())
        # Alerts come as nodes answer; the last one is authoritative. Collect for the while.
        swarm.wait(wait, lambda: key in swarm.mutable[i])
        swarm.wait(2.0)
        got = swarm.mutable[i].get(key)
        return {"value": text(got[1]) if got else None, "seq": got[0] if got else None}
    if c == "sample":
        ip, port = cmd["addr"].rsplit(":", 1)
        swarm.samples[i].pop(cmd["addr"], None)
        sess.dht_sample_infohashes((ip, int(port)), lt.sha1_hash(os.urandom(20)))
        swarm.wait(wait, lambda: cmd["addr"] in swarm.samples[i])
        return swarm.samples[i].get(cmd["addr"], {"samples": None})
    return {"error": f"unknown command {c}"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--net", type=int, default=80)
    ap.add_argument("--port", type=int, default=16881)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--ipv6", action="store_true", help="every session on [::1], ports PORT+i")
    args = ap.parse_args()
    swarm = Swarm(args.count, args.net, args.port, args.bootstrap, args.ipv6)
    log(f"lt_swarm: {args.count} libtorrent {lt.__version__} sessions on 127.{args.net}.x.1")

    def handle(cmd):
        c = cmd["cmd"]
        if c == "status":
            return swarm.status()
        if c == "add_nodes":
            for i, sess in enumerate(swarm.sessions):
                for a in cmd["addrs"]:
                    if a != swarm.addrs[i]:
                        ip, port = a.rsplit(":", 1)
                        sess.add_dht_node((ip.strip("[]"), int(port)))
            return {"ok": True}
        if c == "announce":
            h = lt.sha1_hash(bytes.fromhex(cmd["ih"]))
            # Flag bit 0 is BEP 33's seed.
            swarm.sessions[cmd["idx"]].dht_announce(h, cmd["port"], 1 if cmd.get("seed") else 0)
            return {"ok": True}
        if c == "get_peers":
            i, ih, want = cmd["idx"], cmd["ih"], cmd.get("want")
            h = lt.sha1_hash(bytes.fromhex(ih))
            swarm.sessions[i].dht_get_peers(h)
            found = swarm.wait(cmd.get("timeout", 10), lambda: want in swarm.peers[i].get(ih, set()))
            return {"peers": sorted(swarm.peers[i].get(ih, set())), "found": bool(found)}
        if c == "traffic":
            for sess in swarm.sessions:
                for _ in range(cmd["count"]):
                    sess.dht_get_peers(lt.sha1_hash(os.urandom(20)))
                    sess.dht_announce(lt.sha1_hash(os.urandom(20)), 6881, 0)
            return {"ok": True}
        if c == "wait":
            swarm.wait(min(float(cmd["seconds"]), 120.0))
            return {"ok": True}
        if c == "packets":
            swarm.pump()
            return swarm.packets(cmd["prefix"], cmd.get("settle", 3.0))
        if c in ("put_immutable", "get_immutable", "put_mutable", "get_mutable", "sample"):
            return items(swarm, cmd)
        return {"error": f"unknown command {c}"}

    ready = {"ready": True, "addrs": swarm.addrs, "version": lt.__version__}
    serve(ready, swarm.pump, handle)


if __name__ == "__main__":
    main()
