"""``corridor audit import FILE.jsonl`` (issue 16): a resource server's own trail (a JSON Lines
file) added to the AS's store, verified first, so ``corridor audit trace GRANT_ID`` lists the
decisions it made with the grant's tokens; nothing is added from a file that does not verify, that
forks a stored chain, or that would extend the AS's own chains."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from corridor.audit.events import Event, Outcome
from corridor.audit.sinks import JsonLinesSink, read_records, verify_file
from corridor.resource.evidence import ActionFacts
from corridor.resource.guard import ResourceGuard, ResourceSettings
from corridor.resource.tokens import ResourceError, access_token
from tests.server.test_audit_chain import audit, driver
from tests.support import Driver, decode_jwt

__all__ = ["driver"]  # the fixture: an AS of each test's own, SQLite and PostgreSQL

API = "https://api-two.example.org"


def rs_trail(d: Driver, path: Path) -> tuple[str, Path]:
    """A real flow's token used at a second resource server whose decisions go to ``path``: one
    payment allowed with its result, one refused. Returns the grant id."""
    _, tokens = d.full_flow(d.add_client())
    claims = decode_jwt(tokens["access_token"])[1]
    settings = ResourceSettings(resource=API, authorization_servers=(d.as_.issuer,), public_url=API)
    sink = JsonLinesSink(path)
    guard = ResourceGuard(settings, clock=d.as_.clock, sink=sink)
    token = access_token(claims, d.as_.issuer)
    paid = ActionFacts.of(
        "make_payment", {"amount": "12.00", "currency": "EUR", "creditor_name": "Merchant A"}
    )
    paid.set_result({"payment_id": "p-1", "status": "accepted"})
    guard.record(route="/payments", method="POST", access=token, error=None, status=201, facts=paid)
    refused = ResourceError("insufficient_scope", "over the limit", rule="Cedar: x", status=403)
    guard.record(
        route="/payments", method="POST", access=token, error=refused, facts=ActionFacts("make_payment")
    )
    sink.close()
    return str(claims["grant_id"]), path


def run(d: Driver, *args: str) -> subprocess.CompletedProcess[str]:
    return audit(d.as_, *args)


def count(d: Driver) -> int:
    return len(d.as_.store.audit.records())


def test_an_imported_trail_joins_the_grants_trace(driver: Driver, tmp_path: Path) -> None:
    grant, trail = rs_trail(driver, tmp_path / "rs.jsonl")
    assert all(r.intact for r in verify_file(trail))
    before = run(driver, "trace", grant, "--json")
    assert all(r["resource"] != API for r in json.loads(before.stdout))
    done = run(driver, "import", str(trail))
    assert done.returncode == 0, done.stderr
    assert "records 1-3 verified; 3 added, 0 already here" in done.stdout
    story = json.loads(run(driver, "trace", grant, "--json").stdout)
    theirs = [(r["event"], r["outcome"]) for r in story if r["resource"] == API]
    assert theirs == [(Event.RS_ACCESS, Outcome.ALLOWED), (Event.RS_RESULT, Outcome.COMPLETED),
                      (Event.RS_ACCESS, Outcome.REFUSED)]  # fmt: skip
    assert next(r for r in story if r["event"] == "rs.result")["detail"]["result"]["payment_id"] == "p-1"
    verified = run(driver, "verify")
    assert verified.returncode == 0, verified.stdout
    # Again: nothing new, nothing doubled; the import itself is on record, with the file's hash.
    records = count(driver)
    again = run(driver, "import", str(trail))
    assert again.returncode == 0 and "0 added, 3 already here" in again.stdout, again.stdout
    assert count(driver) == records
    (imported,) = [r for r in driver.as_.store.audit.records() if r["event"] == Event.AUDIT_IMPORT]
    assert json.loads(imported["detail"])["file_sha256"] in done.stdout


def test_an_edited_trail_is_not_imported(driver: Driver, tmp_path: Path) -> None:
    _, trail = rs_trail(driver, tmp_path / "rs.jsonl")
    lines = trail.read_text().splitlines()
    lines[0] = lines[0].replace('\\"12.00\\"', '\\"1200.00\\"')
    assert "1200.00" in lines[0]
    trail.write_text("\n".join(lines) + "\n")
    records = count(driver)
    refused = run(driver, "import", str(trail))
    assert refused.returncode == 1
    assert "not imported:" in refused.stderr and "content does not match its hash (edited)" in refused.stderr
    assert count(driver) == records


def test_a_dropped_or_reordered_record_is_not_imported(driver: Driver, tmp_path: Path) -> None:
    _, trail = rs_trail(driver, tmp_path / "rs.jsonl")
    lines = trail.read_text().splitlines()
    records = count(driver)
    for name, kept in (("dropped", [lines[0], lines[2]]), ("swapped", [lines[0], lines[2], lines[1]])):
        changed = tmp_path / f"{name}.jsonl"
        changed.write_text("\n".join(kept) + "\n")
        refused = run(driver, "import", str(changed))
        assert refused.returncode == 1 and "not imported:" in refused.stderr, (name, refused.stderr)
        assert ("missing" if name == "dropped" else "out of order") in refused.stderr, refused.stderr
    assert count(driver) == records


def test_a_fork_of_a_stored_chain_is_not_imported(driver: Driver, tmp_path: Path) -> None:
    """Once a writer's records are here, a file with other records at their places is refused."""
    _, trail = rs_trail(driver, tmp_path / "rs.jsonl")
    assert run(driver, "import", str(trail)).returncode == 0
    [first, *_] = read_records(trail)
    fork = JsonLinesSink(tmp_path / "fork.jsonl")
    record = {k: v for k, v in first.items() if k not in ("id", "writer", "seq", "prev_hash", "hash")}
    fork.append(first["writer"], [{**record, "outcome": Outcome.REFUSED}])
    fork.close()
    records = count(driver)
    refused = run(driver, "import", str(fork.path))
    assert refused.returncode == 1
    assert f"{first['writer']} #1: differs from the record the store holds" in refused.stderr
    assert count(driver) == records


def test_the_authorization_servers_own_chain_is_never_extended(driver: Driver, tmp_path: Path) -> None:
    driver.full_flow(driver.add_client())
    exported = run(driver, "export").stdout.splitlines()
    assert exported
    mine = [json.loads(line) for line in exported]
    writer = mine[-1]["writer"]
    assert writer.startswith("as:")
    # The export re-imports as it is (parsed members are stored again as the AS wrote them) ...
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(exported) + "\n")
    same = run(driver, "import", str(path))
    assert same.returncode == 0 and " 0 added" in same.stdout, same.stdout + same.stderr
    # ... but a record chained after the AS's last one, as if the AS had written it, is refused.
    forged = JsonLinesSink(tmp_path / "forged.jsonl")
    rows: list[dict[str, Any]] = [
        {k: v for k, v in json.loads(line).items() if k != "id"}
        for line in read_lines(path)
        if writer in line
    ]
    for member in ("authorization_details", "resource", "detail"):
        for row in rows:
            if row[member] is not None and not isinstance(row[member], str):
                row[member] = json.dumps(row[member], separators=(",", ":"), sort_keys=True)
    forged.append(
        writer,
        [{k: v for k, v in r.items() if k not in ("writer", "seq", "prev_hash", "hash")} for r in rows],
    )
    forged.append(
        writer,
        [
            {
                **{k: v for k, v in rows[-1].items() if k not in ("writer", "seq", "prev_hash", "hash")},
                "outcome": "forged",
            }
        ],
    )
    forged.close()
    records = count(driver)
    refused = run(driver, "import", str(forged.path))
    assert refused.returncode == 1
    assert "an authorization server's chain is written only by it" in refused.stderr, refused.stderr
    assert count(driver) == records


def read_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def test_what_is_not_a_trail_is_refused_with_its_line(driver: Driver, tmp_path: Path) -> None:
    cases = {
        "garbage.jsonl": ("not json\n", "garbage.jsonl:1: not a JSON record"),
        "nowriter.jsonl": ('{"event": "rs.access"}\n', "nowriter.jsonl:1: not a chained record (no writer)"),
        "extra.jsonl": (
            '{"writer": "rs:x", "seq": 1, "token": "t"}\n',
            "extra.jsonl:1: unknown fields token",
        ),
        "empty.jsonl": ("\n", "empty.jsonl: no records"),
        "control.jsonl": ("\x00\x1b[31m\n", "control.jsonl:1: not a JSON record"),
        "long.jsonl": (
            json.dumps({"writer": "rs:" + "x" * 10_000, "seq": 1}) + "\n",
            "long.jsonl:1: writer is not",
        ),
        "seq.jsonl": ('{"writer": "rs:x", "seq": 99999999999}\n', "seq.jsonl:1: seq is not a int"),
        "nan.jsonl": ('{"writer": "rs:x", "seq": 1, "time": NaN}\n', "nan.jsonl:1: time is not a float"),
        "time.jsonl": ('{"writer": "rs:x", "seq": 1, "time": "now"}\n', "time.jsonl:1: time is not a float"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        refused = run(driver, "import", str(path))
        assert refused.returncode == 1 and message in refused.stderr, (name, refused.stderr)
        assert "Traceback" not in refused.stderr
