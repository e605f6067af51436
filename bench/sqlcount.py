"""SQL statements per complete flow of the Corridor AS (issue 19), by origin.

Starts ``corridor serve`` as ``make bench`` does (bench/run.py, SQLite), with a hook that sets
sqlite3's trace callback on every connection the server opens: SQLite calls it for every
statement it runs on that connection (BEGIN, COMMIT, SAVEPOINT included), whichever layer sent
it (SQLAlchemy Core or the DB-API connection directly). Each statement is counted under its
normalised text and under its origin: the innermost ``corridor/store`` function that ran it and
the innermost ``corridor/server`` function above that. Counting starts after the warm-up flows.

    .venv/bin/python -m bench.sqlcount [--flows 100] [--userinfo] [--by text|origin|both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

#: Where the server's hook writes its counts (set for the server process by :func:`main`).
_OUT = "CORRIDOR_BENCH_SQLCOUNT"
_LITERAL = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?(?:e[-+]?\d+)?\b", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def normalise(sql: str) -> str:
    """The statement's text with literals as ``?`` and whitespace folded (one key per shape)."""
    return _SPACE.sub(" ", _LITERAL.sub("?", sql)).strip()[:160]


def _origin() -> str:
    """``store function <- server function`` of the statement being traced (its Python stack):
    the outermost store frame (the repository method) and the innermost server frame."""
    store = server = "?"
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if "corridor/store/" in path:
            store = f"{Path(path).stem}.{frame.f_code.co_name}"
        elif "corridor/server/" in path:
            server = f"{Path(path).stem}.{frame.f_code.co_name}"
            break
        frame = frame.f_back  # type: ignore[assignment]
    return f"{store} <- {server}"


def install() -> None:
    """In the server process: trace every SQLite connection; SIGUSR1 resets, SIGUSR2 writes."""
    out = Path(os.environ[_OUT])
    texts: Counter[str] = Counter()
    origins: Counter[str] = Counter()
    lock = threading.Lock()

    def trace(sql: str) -> None:
        key, origin = normalise(sql), _origin()
        with lock:
            texts[key] += 1
            origins[origin] += 1

    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    def traced(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(trace)

    event.listen(Pool, "connect", traced)

    def reset(*_: Any) -> None:
        with lock:
            texts.clear()
            origins.clear()

    def write(*_: Any) -> None:
        with lock:
            out.write_text(json.dumps({"texts": dict(texts), "origins": dict(origins)}))

    signal.signal(signal.SIGUSR1, reset)
    signal.signal(signal.SIGUSR2, write)


def serve() -> None:
    """``corridor serve`` with :func:`install` first (the command line is the same)."""
    install()
    from corridor.cli import main as corridor_main

    sys.argv[0] = "corridor"
    corridor_main()


def _await_file(path: Path, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            return dict(json.loads(path.read_text()))
        time.sleep(0.05)
    raise RuntimeError("the server wrote no counts")


def count(flows: int, warmup: int, concurrency: int, userinfo: bool) -> tuple[dict[str, Any], int]:
    """Run the bench flows against a traced server; its counts and the flows that succeeded."""
    from bench.driver import run
    from bench.run import Bench, bench

    with tempfile.TemporaryDirectory(prefix="corridor-sqlcount-") as tmp, bench(Path(tmp)) as b:
        out = Path(tmp) / "counts.json"
        spawn = Bench.spawn

        def traced_spawn(self: Bench, command: list[str], **kwargs: Any) -> Any:
            if "serve" in command:  # [taskset ...] .../corridor serve ...: the same, traced
                at = command.index("serve") - 1
                command = [
                    *command[:at],
                    sys.executable,
                    "-c",
                    "import bench.sqlcount as c; c.serve()",
                    *command[at + 1 :],
                ]
                kwargs["env"] = {**(kwargs.get("env") or {}), _OUT: str(out)}
            return spawn(self, command, **kwargs)

        b.spawn = traced_spawn.__get__(b)  # type: ignore[method-assign]
        ours = b.corridor(Path(tmp) / "corridor")
        rs = b.resource_server([ours.issuer])
        try:
            target = b.target(ours)
            if userinfo:
                target.resource = None
                target.resource_url = None
            asyncio.run(run(target, concurrency=concurrency, flows=warmup, warmup=0))
            os.kill(ours.pids[0], signal.SIGUSR1)
            time.sleep(0.2)
            results = asyncio.run(run(target, concurrency=concurrency, flows=flows, warmup=0))
            os.kill(ours.pids[0], signal.SIGUSR2)
            counts = _await_file(out)
        finally:
            rs.terminate()
            rs.wait()
    return counts, results.flows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flows", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--userinfo", action="store_true", help="end each flow with UserInfo, not the RS")
    parser.add_argument("--by", choices=("text", "origin", "both"), default="both")
    args = parser.parse_args()
    counts, done = count(args.flows, args.warmup, args.concurrency, args.userinfo)
    per = max(done, 1)
    texts, origins = Counter(counts["texts"]), Counter(counts["origins"])
    total = sum(texts.values())
    begins = sum(n for text, n in texts.items() if text.upper().startswith("BEGIN"))
    immediate = sum(n for text, n in texts.items() if text.upper().startswith("BEGIN IMMEDIATE"))
    shares = f"{begins / per:.1f} BEGIN/flow ({immediate / per:.1f} IMMEDIATE)"
    print(f"{done} flows: {total / per:.1f} statements/flow, {shares}")
    if args.by in ("text", "both"):
        print("\nby statement:")
        for text, n in texts.most_common():
            print(f"  {n / per:5.2f}  {text}")
    if args.by in ("origin", "both"):
        print("\nby origin (store <- server):")
        for origin, n in origins.most_common():
            print(f"  {n / per:5.2f}  {origin}")


if __name__ == "__main__":
    main()
