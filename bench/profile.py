"""A py-spy profile of the Corridor AS under the ``make bench`` load (issue 19).

Starts ``corridor serve`` and the bench resource server as ``make bench`` does (bench/run.py),
runs the bench driver's flows against it while ``py-spy record`` samples the AS process, and
prints where the AS's time goes: the share of samples whose stack passes through each of a list
of named areas (inclusive), and the functions with the most samples of their own (self).

    .venv/bin/python -m bench.profile [--flows 600] [--concurrency 8] [--raw out.txt]

py-spy is not a dependency of Corridor (``pip install py-spy``); it needs ptrace rights on the
server process (root, or ``kernel.yama.ptrace_scope = 0``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.driver import run
from bench.run import DRIVER_CPU, bench

#: Areas of the AS, by the frames that name them (file path fragments or function names), in the
#: order they are reported. A sample counts toward every area its stack passes through.
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("sqlite3 driver (execute, commit)", ("execute (sqlite3", "commit (sqlite3", "<sqlite3>")),
    ("psycopg", ("psycopg/",)),
    ("joserfc", ("joserfc/",)),
    ("cryptography", ("cryptography/",)),
    ("corridor.core.jose", ("corridor/core/jose.py",)),
    ("audit (corridor/audit)", ("corridor/audit/",)),
    ("rfc8785 (JCS)", ("rfc8785/",)),
    ("Jinja2 (pages)", ("jinja2/",)),
    ("jsonschema", ("jsonschema/",)),
    ("cedarpy", ("cedarpy/",)),
    ("Starlette", ("starlette/",)),
    ("uvicorn", ("uvicorn/",)),
    ("anyio (thread-pool hop)", ("anyio/",)),
    ("asyncio / uvloop", ("asyncio/", "uvloop")),
    ("logging", ("logging/", "pythonjsonlogger/")),
    ("prometheus_client", ("prometheus_client/",)),
    ("argon2", ("argon2/",)),
    ("corridor.store", ("corridor/store/",)),
    ("corridor.server", ("corridor/server/",)),
)


def summarise(raw: Path, top: int) -> str:
    """The report of a py-spy ``--format raw`` file (collapsed stacks: ``frame;frame;... count``)."""
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for area, needles in AREAS:
            if any(needle in frame for frame in frames for needle in needles):
                inclusive[area] += count
        own[frames[-1]] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "inclusive share by area:"]
    lines += [f"  {100 * inclusive[area] / total:5.1f} %  {area}" for area, _ in AREAS if inclusive[area]]
    lines += ["", f"top {top} functions by own samples:"]
    lines += [f"  {100 * count / total:5.1f} %  {frame}" for frame, count in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flows", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument("--userinfo", action="store_true", help="end each flow with UserInfo, not the RS")
    parser.add_argument("--no-spy", action="store_true", help="only the CPU per flow, no profile")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    os.sched_setaffinity(0, {int(DRIVER_CPU)})
    with tempfile.TemporaryDirectory(prefix="corridor-profile-") as tmp, bench(Path(tmp)) as b:
        ours = b.corridor(Path(tmp) / "corridor")
        rs = b.resource_server([ours.issuer])
        raw = args.raw or Path(tmp) / "profile.txt"
        try:
            target = b.target(ours)
            if args.userinfo:
                target.resource = None
                target.resource_url = None
            # Warm up before sampling, so start-up and first-use costs are not in the profile.
            asyncio.run(run(target, concurrency=args.concurrency, flows=args.warmup, warmup=0))
            command = [
                spy,
                "record",
                "--nonblocking",
                "--gil",
                "--format",
                "raw",
                "--rate",
                str(args.rate),
                "-o",
                str(raw),
            ]
            spy_process = None
            if not args.no_spy:
                spy_process = subprocess.Popen(
                    [*command, "--pid", str(ours.pids[0])],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            results = asyncio.run(
                run(target, concurrency=args.concurrency, flows=args.flows, warmup=0, server_pid=ours.pids)
            )
            if spy_process is not None:
                spy_process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                spy_process.wait(60)
        finally:
            rs.terminate()
            rs.wait()
        report = results.report()
        failures = sum(report["failures"].values())
        print(f"{report['server_cpu_ms_per_flow']:.2f} AS CPU ms/flow, {args.flows} flows, {failures} failed")
        if not args.no_spy:
            print(summarise(raw, args.top))


if __name__ == "__main__":
    main()
