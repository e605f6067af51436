"""A resource server's decisions through a sink (issue 15, 2): by default the last 1000 in memory,
hash-chained, every refusal recorded; with a JSON Lines sink, a file that verifies, sampled
like the store's trail (issue 13 B4)."""

from __future__ import annotations

from pathlib import Path

from corridor.audit.events import Event, Outcome
from corridor.audit.sinks import JsonLinesSink, MemorySink, read_records, verify_file
from corridor.resource.guard import ResourceGuard, ResourceSettings
from corridor.resource.tokens import ResourceError

API = "https://api.example.org"
SETTINGS = ResourceSettings(resource=API, authorization_servers=("https://as.example.org",), public_url=API)
GARBAGE = ResourceError("invalid_token", "garbage", rule="RFC 6750 3.1")


class Frozen:
    """Every refusal in one sampling window."""

    def now(self) -> float:
        return 1_700_000_010.0


def refuse(guard: ResourceGuard, times: int) -> None:
    for _ in range(times):
        guard.record(route="/accounts", method="GET", access=None, error=GARBAGE, source="203.0.113.9")


def test_by_default_every_decision_is_kept_in_memory_hash_chained() -> None:
    guard = ResourceGuard(SETTINGS, clock=Frozen())
    refuse(guard, 5)
    assert [(d["event"], d["outcome"], d["error"]) for d in guard.decisions] == [
        (Event.RS_ACCESS, Outcome.REFUSED, "invalid_token")
    ] * 5
    sink = guard.audit.sink
    assert isinstance(sink, MemorySink)
    (report,) = sink.verify()
    assert report.intact and report.writer.startswith("rs:") and report.records == 5


def test_decisions_can_go_to_a_json_lines_file(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "rs.jsonl")
    guard = ResourceGuard(SETTINGS, clock=Frozen(), sink=sink)
    refuse(guard, 5)
    sink.close()
    assert guard.decisions == []
    assert [r["error"] for r in read_records(sink.path)] == ["invalid_token"] * 3  # sampled per source
    (report,) = verify_file(sink.path)
    assert report.intact and report.writer.startswith("rs:")
