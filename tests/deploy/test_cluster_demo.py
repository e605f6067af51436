"""``make cluster-demo --check`` (deploy/cluster/demo.py): three instances behind nginx on a fresh
PostgreSQL database, checked end to end, so the scale-out recipe cannot silently rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.deploy.test_nginx import nginx_binary

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "cluster" / "demo.py"


def test_the_cluster_demo_checks_out(postgres_admin: str) -> None:
    nginx = nginx_binary()
    result = subprocess.run(
        [sys.executable, str(DEMO), "--check", "--postgres", postgres_admin, "--nginx", nginx],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
