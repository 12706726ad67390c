"""The JSON-lines loop the interop harnesses share: one command per line on stdin, one answer
per line on stdout, with the harness's idle work between commands. Exits when stdin closes or
on {"cmd": "quit"}."""

import json
import queue
import sys
import threading


def answer(obj):
    print(json.dumps(obj), flush=True)


def serve(ready, idle, handle):
    """Announces `ready`, then answers each command with `handle(cmd)` (a dict), calling
    `idle()` whenever no command is waiting."""
    lines = queue.Queue()

    def reader():
        for line in sys.stdin:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    answer(ready)
    while True:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            idle()
            continue
        if line is None:
            return
        cmd = json.loads(line)
        if cmd.get("cmd") == "quit":
            answer({"ok": True})
            return
        answer(handle(cmd))
