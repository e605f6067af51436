"""Running a Node interop script as a child process that speaks JSON lines, with a
timeout on every read so a hung peer fails the test quickly."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

HERE = Path(__file__).parent
READ_TIMEOUT = 20.0
#: A server peer's first line ("ready"): Node's start, module loading and key generation; once
#: a CI run saw it take over 20 s on the loaded 2-core machine, and one (issue 17, the eleventh
#: peer start of a run) over 60 s, while the same start takes about 1 s on a quiet machine.
STARTUP_TIMEOUT = 120.0
# Node and npm are on every machine and `make test` runs `npm ci` here: a missing peer is a
# failure, never a skip.
NODE = shutil.which("node")


class NodeFlow:
    """The script as a child process, with a timeout on every line read."""

    def __init__(self, script: str, env: dict[str, str]) -> None:
        assert NODE is not None, "node is on every machine (DEVELOPERS.md); a missing node is a failure"
        self.process = subprocess.Popen(
            [NODE, script],
            cwd=HERE,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str | None] = []
        out, err = self.process.stdout, self.process.stderr
        assert out is not None and err is not None
        for stream, sink in ((out, self.lines.put), (err, self.stderr.append)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _pump(stream: IO[str], sink: Callable[[str | None], None]) -> None:
        for line in stream:
            sink(line)
        sink(None)  # end of stream

    def read(self, timeout: float = READ_TIMEOUT) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no output from the script within {timeout} s; {self.diagnostics()}")
        if line is None:
            self.process.wait(5)
            pytest.fail(f"the script ended early; {self.diagnostics()}")
        message = json.loads(line)
        assert isinstance(message, dict), line
        if "error" in message:
            pytest.fail(f"the script failed: {json.dumps(message['error'])}; {self.diagnostics()}")
        return message

    def write(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def diagnostics(self) -> str:
        return f"exit status {self.process.poll()}, stderr: {''.join(s for s in self.stderr if s)!r}"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
