"""Issue 16's evidence pack: `corridor audit pack GRANT_ID --out FILE` writes a grant's records,
the links to signed checkpoints, the checkpoints and the keys; `corridor audit verify-pack FILE`
proves each record offline (no database, no configuration) or names what is wrong: an edited
record, a dropped one, two swapped, a forged checkpoint, a record of the grant hidden behind a
link, keys that are not the AS's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from corridor.audit import chain, verify_pack
from corridor.core.jose import SigningKey
from corridor.transport.tls import DevTLS
from tests.support import Client, Driver, RunningAS, decode_jwt, postgres_database, running_as

CORRIDOR = [str(Path(sys.executable).parent / "corridor")]


@pytest.fixture
def driver(tmp_path: Path, tls: DevTLS) -> Iterator[Driver]:
    """An AS of this test's own on a SQLite file (a pack reads its trail as stored)."""
    with running_as(tmp_path / "as", tls, database_url=f"sqlite:///{tmp_path / 'audit.db'}") as running:
        d = Driver(running)
        yield d
        d.http.close()


def corridor(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CORRIDOR, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env)


def make_pack(running: RunningAS, grant_id: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return corridor("audit", "pack", grant_id, "--out", str(out), "--database", running.store.url, *extra)


def offline(pack: Path | dict[str, Any], tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`verify-pack` as an investigator runs it: elsewhere, no database, no configuration."""
    if isinstance(pack, dict):
        path = tmp_path / "changed.json"
        path.write_text(json.dumps(pack))
        pack = path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRIDOR_")}
    env.update(CORRIDOR_DATA_DIR=str(tmp_path / "no-such-dir"), HOME=str(elsewhere))
    if env.get("PYTHONPATH"):  # it runs in another directory
        env["PYTHONPATH"] = os.pathsep.join(
            str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep)
        )
    return corridor("audit", "verify-pack", str(pack), *extra, cwd=elsewhere, env=env)


def grant_of(running: RunningAS, access_token: str) -> str:
    jti = decode_jwt(access_token)[1]["jti"]
    return str(next(r["grant_id"] for r in running.store.audit.records() if r["token_jti"] == jti))


def use_token(driver: Driver, client: Client, token: str) -> None:
    proof = driver.proof(client, "GET", driver.htu("/userinfo"), access_token=token)
    used = driver.http.get(driver.url("/userinfo"), headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert used.status_code == 200, used.text


def packed(driver: Driver, tmp_path: Path) -> tuple[dict[str, Any], Path, str]:
    """A pack of a real flow whose token was used at /userinfo."""
    client = driver.add_client()
    _flow, tokens = driver.full_flow(client)
    use_token(driver, client, tokens["access_token"])
    grant_id = grant_of(driver.as_, tokens["access_token"])
    out = tmp_path / "pack.json"
    made = make_pack(driver.as_, grant_id, out)
    assert made.returncode == 0, made.stdout + made.stderr
    return json.loads(out.read_text(encoding="utf-8")), out, grant_id


def lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return result.stdout.splitlines()


# -- the pack of a real flow is proven ----------------------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_pack_of_a_real_flow_is_proven_offline(
    database: str, request: pytest.FixtureRequest, tmp_path: Path, tls: DevTLS
) -> None:
    with ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'audit.db'}"
        if database == "postgresql":
            url = stack.enter_context(postgres_database(request.getfixturevalue("postgres_admin")))
        running = stack.enter_context(running_as(tmp_path / "as", tls, database_url=url))
        d = Driver(running)
        stack.callback(d.http.close)
        pack, out, grant_id = packed(d, tmp_path)
        key = SigningKey(json.loads(running.store.keys.signing_keys()[0]["private_jwk"]))
    assert pack["format"] == "corridor-evidence-pack/1" and pack["grant_id"] == grant_id
    events = [r["event"] for r in pack["records"]]
    assert events[:6] == ["par", "login", "consent", "consent", "code", "token.authorization_code"]
    assert events[-1] == "userinfo"
    assert pack["consent"] and pack["consent"][0]["page_sha256"]
    assert pack["consent"][0]["headline"].startswith("Allow ")  # issue 18: the page's sentences
    assert pack["consent"][0]["lifetime"].startswith("for ") and pack["consent"][0]["sender_words"]
    assert len(pack["checkpoints"]) == 1 and len(pack["keys"]) == 1
    (cp,) = pack["checkpoints"]
    result = offline(out, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for record in pack["records"]:
        line = (
            f"record {record['writer']} #{record['seq']} ({record['event']}): proven by checkpoint {cp['id']}"
        )
        assert line in lines(result), result.stdout
    assert f"thumbprint {key.thumbprint()}" in result.stdout  # to compare with the AS's jwks_uri
    assert lines(result)[-1] == "all records proven"
    as_json = json.loads(offline(out, tmp_path, "--json").stdout)
    assert as_json["ok"] and all(r["proven_by"] == cp["id"] for r in as_json["records"])


def test_verify_pack_with_the_published_jwks_and_with_another_key(driver: Driver, tmp_path: Path) -> None:
    _pack, out, _grant = packed(driver, tmp_path)
    published = tmp_path / "jwks.json"
    published.write_text(driver.http.get(driver.url("/jwks")).text)
    ok = offline(out, tmp_path, "--jwks", str(published))
    assert ok.returncode == 0, ok.stdout
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"keys": [SigningKey.generate().public_jwk]}))
    refused = offline(out, tmp_path, "--jwks", str(other))
    assert refused.returncode == 1
    assert re.search(
        r"^checkpoint \d+: the signature does not verify with any key of the given JWKS$",
        refused.stdout,
        re.M,
    ), refused.stdout
    assert "not proven (checkpoint" in refused.stdout


# -- each kind of tampering is refused, naming it -----------------------------------------------


def test_an_edited_record_is_refused(driver: Driver, tmp_path: Path) -> None:
    pack, _out, _grant = packed(driver, tmp_path)
    victim = next(r for r in pack["records"] if r["event"] == "token.authorization_code")
    victim["scope"] = victim["scope"] + " payments"
    result = offline(pack, tmp_path)
    assert result.returncode == 1
    assert (
        f"record {victim['writer']} #{victim['seq']} (token.authorization_code): "
        "content does not match its hash (edited)" in lines(result)
    ), result.stdout
    # The records before it cannot be walked to the checkpoint either: the chain passes through it.
    before = pack["records"][0]
    assert f"record {before['writer']} #{before['seq']} (par): not proven by checkpoint" in result.stdout


def test_an_edited_record_with_its_hash_recomputed_is_refused(driver: Driver, tmp_path: Path) -> None:
    pack, _out, _grant = packed(driver, tmp_path)
    victim = next(r for r in pack["records"] if r["event"] == "code")
    victim["outcome"] = "refused"
    victim["hash"] = chain.record_hash(victim)
    result = offline(pack, tmp_path)
    assert result.returncode == 1
    assert f"record {victim['writer']} #{victim['seq']} is not the one record #{victim['seq'] + 1} names" in (
        result.stdout
    ), result.stdout


def test_a_dropped_record_is_refused(driver: Driver, tmp_path: Path) -> None:
    pack, _out, _grant = packed(driver, tmp_path)
    index = next(i for i, r in enumerate(pack["records"]) if r["event"] == "code")
    victim = pack["records"].pop(index)
    result = offline(pack, tmp_path)
    assert result.returncode == 1
    assert f"record {victim['writer']} #{victim['seq']} missing (dropped)" in lines(result), result.stdout


def test_two_swapped_records_are_refused(driver: Driver, tmp_path: Path) -> None:
    pack, _out, _grant = packed(driver, tmp_path)
    records = pack["records"]
    i = next(i for i, r in enumerate(records) if r["event"] == "code")
    a, b = records[i], records[i + 1]
    assert a["writer"] == b["writer"] and a["seq"] < b["seq"]
    records[i], records[i + 1] = b, a
    result = offline(pack, tmp_path)
    assert result.returncode == 1
    assert f"records {a['writer']} #{b['seq']} and #{a['seq']} out of order (swapped)" in lines(result), (
        result.stdout
    )


def test_a_record_of_the_grant_hidden_behind_a_link_is_refused(driver: Driver, tmp_path: Path) -> None:
    pack, _out, grant_id = packed(driver, tmp_path)
    index = next(i for i, r in enumerate(pack["records"]) if r["event"] == "code")
    victim = pack["records"].pop(index)
    assert victim["grant_id"] == grant_id
    links = pack["links"].setdefault(victim["writer"], [])
    links.append(chain.link(victim))
    links.sort(key=lambda item: item["seq"])
    result = offline(pack, tmp_path)
    assert result.returncode == 1
    assert (
        f"record {victim['writer']} #{victim['seq']} of this grant is hidden behind a link (dropped)"
        in lines(result)
    ), result.stdout
    assert "missing" not in result.stdout  # the chain itself is whole: only the hiding is wrong


@pytest.mark.parametrize("how", ["flipped", "resigned"])
def test_a_forged_checkpoint_proves_nothing(driver: Driver, tmp_path: Path, how: str) -> None:
    pack, _out, _grant = packed(driver, tmp_path)
    (cp,) = pack["checkpoints"]
    head, payload, signature = cp["jws"].split(".")
    if how == "flipped":
        flipped = "B" if signature[5] == "A" else "A"
        cp["jws"] = f"{head}.{payload}.{signature[:5]}{flipped}{signature[6:]}"
    else:  # claims of the attacker's choosing, signed with another key that names the AS key's kid
        kid = decode_jwt(cp["jws"])[0]["kid"]
        forger = SigningKey({**SigningKey.generate().private_jwk(), "kid": kid})
        cp["jws"] = forger.sign(decode_jwt(cp["jws"])[1], "audit-checkpoint+jwt")
    result = offline(pack, tmp_path)
    assert result.returncode == 1
    assert f"checkpoint {cp['id']}: the signature does not verify with any key in the pack" in lines(
        result
    ), result.stdout
    assert "proven by checkpoint" not in result.stdout
    assert f"not proven (checkpoint {cp['id']} does not verify)" in result.stdout


def test_a_rewritten_pack_signed_by_another_key_fails_against_the_published_jwks(
    driver: Driver, tmp_path: Path
) -> None:
    """A forger who rewrites records and re-signs the checkpoint with a key of their own, put in
    the pack: the pack is consistent with itself, so only the AS's published keys (or the
    thumbprints shown) tell; with --jwks it is refused."""
    pack, _out, _grant = packed(driver, tmp_path)
    prev, heads = None, {}
    for record in pack["records"]:
        record["outcome"] = "refused" if record["event"] == "code" else record["outcome"]
    writer = pack["records"][0]["writer"]
    # Recompute the whole chain of this writer from the first packed record on.
    positions = {r["seq"]: r for r in pack["records"] if r["writer"] == writer}
    positions.update({item["seq"]: item for item in pack["links"].get(writer, [])})
    for seq in sorted(positions):
        item = positions[seq]
        if prev is not None:
            item["prev_hash"] = prev
        item["hash"] = chain.link_hash(item) if "body_sha256" in item else chain.record_hash(item)
        prev = item["hash"]
    (cp,) = pack["checkpoints"]
    heads = {**cp["heads"], writer: {"seq": max(positions), "hash": prev}}
    forger = SigningKey.generate()
    cp["heads"] = heads
    claims = {**decode_jwt(cp["jws"])[1], "heads_sha256": chain.heads_digest(heads)}
    cp["jws"] = forger.sign(claims, "audit-checkpoint+jwt")
    pack["keys"] = [forger.public_jwk]
    alone = offline(pack, tmp_path)
    assert alone.returncode == 0, alone.stdout  # self-consistent: the thumbprint is the tell
    assert f"thumbprint {forger.thumbprint()}" in alone.stdout
    published = tmp_path / "jwks.json"
    published.write_text(driver.http.get(driver.url("/jwks")).text)
    refused = offline(pack, tmp_path, "--jwks", str(published))
    assert refused.returncode == 1
    assert f"checkpoint {cp['id']}: the signature does not verify with any key of the given JWKS" in lines(
        refused
    ), refused.stdout


# -- what a pack holds and what it does not ---------------------------------------------------------


def test_a_pack_holds_no_other_grant_in_full_and_no_secret(driver: Driver, tmp_path: Path) -> None:
    mine, other = driver.add_client(), driver.add_client()
    flow, tokens = driver.full_flow(mine)
    other_flow, other_tokens = driver.full_flow(other, extra={"scope": "openid payments"})
    use_token(driver, mine, tokens["access_token"])  # after the other grant: its records lie between
    use_token(driver, other, other_tokens["access_token"])
    grant_id = grant_of(driver.as_, tokens["access_token"])
    other_grant = grant_of(driver.as_, other_tokens["access_token"])
    out = tmp_path / "pack.json"
    made = make_pack(driver.as_, grant_id, out)
    assert made.returncode == 0, made.stdout + made.stderr
    text = out.read_text(encoding="utf-8")
    pack = json.loads(text)
    assert offline(out, tmp_path).returncode == 0
    theirs = [r for r in driver.as_.store.audit.records() if r["client_id"] == other.client_id]
    assert theirs
    assert other.client_id not in text
    for user_id in {r["user_id"] for r in theirs if r["user_id"]}:
        assert user_id not in text
    assert "payments" not in text  # the other grant's scope
    # The other grant's records between this grant's are there as links: hashes, not content.
    linked = [item for items in pack["links"].values() for item in items]
    assert any(item["grant_id"] == other_grant for item in linked)
    assert all(
        set(item) == {"writer", "seq", "prev_hash", "grant_id", "body_sha256", "hash"} for item in linked
    )
    # Nothing secret: no token, code, client assertion or DPoP proof (the only JWS are checkpoints).
    for secret in (tokens["access_token"], tokens["refresh_token"], flow.code, other_flow.code):
        assert secret not in text
    assert set(re.findall(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", text)) == {cp["jws"] for cp in pack["checkpoints"]}
    assert all("d" not in key for key in pack["keys"])
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_records_after_the_newest_checkpoint_are_not_proven(driver: Driver, tmp_path: Path) -> None:
    client = driver.add_client()
    _flow, tokens = driver.full_flow(client)
    grant_id = grant_of(driver.as_, tokens["access_token"])
    first = tmp_path / "first.json"
    assert make_pack(driver.as_, grant_id, first).returncode == 0  # signs a checkpoint
    use_token(driver, client, tokens["access_token"])  # a record after it
    out = tmp_path / "later.json"
    made = make_pack(driver.as_, grant_id, out, "--no-checkpoint")
    assert made.returncode == 0, made.stdout + made.stderr
    pack = json.loads(out.read_text())
    last = pack["records"][-1]
    assert last["event"] == "userinfo"
    result = offline(out, tmp_path)
    assert result.returncode == 1
    assert (
        f"record {last['writer']} #{last['seq']} (userinfo): not proven (after the newest checkpoint)"
        in lines(result)
    ), result.stdout
    assert sum("proven by checkpoint" in line for line in lines(result)) == len(pack["records"]) - 1
    signed = make_pack(driver.as_, grant_id, out)  # the default signs a checkpoint first
    assert signed.returncode == 0 and "signed checkpoint" in signed.stdout, signed.stdout
    assert offline(out, tmp_path).returncode == 0


def test_pack_of_an_unknown_grant_fails(driver: Driver, tmp_path: Path) -> None:
    result = make_pack(driver.as_, "no-such-grant", tmp_path / "p.json")
    assert result.returncode == 1 and "no record carries the grant id no-such-grant" in result.stderr


def test_verify_pack_refuses_what_is_not_a_pack(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something else"}))
    result = offline(bad, tmp_path)
    assert result.returncode == 1 and "not a corridor-evidence-pack/1 document" in result.stderr


def test_the_verifier_is_self_contained_and_agrees_with_the_chain() -> None:
    """issue 16: a third party's verifier needs the rules only; ours imports no store, server or
    SQL, and its column lists and hashes are the chain's."""
    assert verify_pack.BODY == chain.BODY and verify_pack.LINK_FIELDS == chain.LINK_FIELDS
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, corridor.audit.verify_pack; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for forbidden in (
        "sqlalchemy",
        "corridor.store",
        "corridor.server",
        "corridor.audit.chain",
        "corridor.core",
    ):
        assert f"'{forbidden}" not in loaded, forbidden


def test_each_record_is_proven_by_the_nearest_checkpoint_across_writers(
    driver: Driver, tmp_path: Path
) -> None:
    """Records of two writers (the AS, a resource server) and two checkpoints: each record is
    proven by the checkpoint nearest after it, so the other grants' records between the first
    checkpoint and the grant's later records are not in the pack, not even as links."""
    from corridor.audit.log import AuditLog, Evidence
    from corridor.audit.sinks import SqlSink

    client = driver.add_client()
    _flow, tokens = driver.full_flow(client)
    grant_id = grant_of(driver.as_, tokens["access_token"])
    assert make_pack(driver.as_, grant_id, tmp_path / "first.json").returncode == 0  # checkpoint 1
    for _ in range(2):
        driver.full_flow(driver.add_client())  # others' records after checkpoint 1
    rs = AuditLog(SqlSink(driver.as_.store), role="rs")
    jti = decode_jwt(tokens["access_token"])[1]["jti"]
    rs.append(Evidence(issuer=driver.issuer, request_id="rs-1", token_jti=jti), "rs.access", "allowed", 1.0)
    use_token(driver, client, tokens["access_token"])
    out = tmp_path / "pack.json"
    made = make_pack(driver.as_, grant_id, out)  # checkpoint 2
    assert made.returncode == 0, made.stdout + made.stderr
    pack = json.loads(out.read_text())
    first, second = (cp["id"] for cp in pack["checkpoints"])
    writers = {r["writer"] for r in pack["records"]}
    assert rs.writer in writers and len(writers) == 2
    result = offline(out, tmp_path)
    assert result.returncode == 0, result.stdout
    proven = {
        line.split(": proven by checkpoint ")[0]: int(line.rsplit(" ", 1)[1])
        for line in lines(result)
        if "proven by checkpoint" in line
    }
    for record in pack["records"]:
        late = record["event"] in ("userinfo", "rs.access")
        assert proven[f"record {record['writer']} #{record['seq']} ({record['event']})"] == (
            second if late else first
        ), result.stdout
    as_writer = next(w for w in writers if w != rs.writer)
    # The AS's records of the two other flows lie before the userinfo record: they are not needed.
    assert [item["seq"] for item in pack["links"].get(as_writer, [])] == []
    # The first checkpoint's head is the token record: nothing of others between is needed.


def test_checkpoints_of_another_issuer_do_not_prove(driver: Driver, tmp_path: Path) -> None:
    """A checkpoint signed for another issuer (here `corridor audit checkpoint` without this AS's
    configuration) is not used by the maker, which signs one for the grant's issuer; and a pack
    whose issuer is not its checkpoints' is refused."""
    client = driver.add_client()
    _flow, tokens = driver.full_flow(client)
    grant_id = grant_of(driver.as_, tokens["access_token"])
    elsewhere = corridor("audit", "checkpoint", "--database", driver.as_.store.url)
    assert elsewhere.returncode == 0, elsewhere.stderr
    out = tmp_path / "pack.json"
    made = make_pack(driver.as_, grant_id, out)
    assert made.returncode == 0 and "signed checkpoint" in made.stdout, made.stdout + made.stderr
    pack = json.loads(out.read_text())
    assert [decode_jwt(cp["jws"])[1]["iss"] for cp in pack["checkpoints"]] == [driver.issuer]
    pack["issuer"] = "https://as.example.com"
    result = offline(pack, tmp_path)
    assert result.returncode == 1
    assert f"signed for issuer '{driver.issuer}', not the pack's" in result.stdout, result.stdout
