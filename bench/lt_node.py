"""A libtorrent 2.1 DHT node as a load-test target: DHT only, on one address, with its
per-IP rate limit and its upload limit raised so that the load generator measures the node,
not its flood protection. Prints its pid, then runs until killed (or 10 minutes).

usage: lt_node.py ADDR PORT
"""
import os
import sys
import time

import libtorrent as lt

addr, port = sys.argv[1], int(sys.argv[2])
s = lt.session({
    "listen_interfaces": f"{addr}:{port}",
    "enable_dht": True,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "dht_bootstrap_nodes": "",
    "dht_restrict_routing_ips": False,
    "dht_restrict_search_ips": False,
    "dht_ignore_dark_internet": False,
    # Limits raised: 1,000,000 packets/s per IP before a block, 1 GB/s of DHT upload.
    "dht_block_ratelimit": 1000000,
    "dht_upload_rate_limit": 1000000000,
    "alert_mask": 0,
})
print(os.getpid(), flush=True)
deadline = time.time() + 600
while time.time() < deadline:
    time.sleep(1)
