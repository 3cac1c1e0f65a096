"""Issue 12, classes 6 and 7, through the gateway and a real PostgreSQL: settings changed inside
a pipeline, and one approval for many executions. Each attack goes through psql, psycopg
(extended protocol, pipelines) or a raw-wire client; its effect is checked on the target
directly, and the records say what ran."""

from __future__ import annotations

import itertools
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors

from engine.pg import codec
from engine.pg.messages import error_fields
from tests.conftest import Gateway, Target, stop_gateway
from tests.engine.pg import build as b
from tests.integration.guarded import operator, start_guarded, wait_for_request
from tests.integration.wire import Wire

pytestmark = pytest.mark.integration

# A function that turns standard_conforming_strings off for the session, as an attacker with
# PL/pgSQL would write it (created on the target directly: how it got there is class 1's).
BLIND = ("CREATE OR REPLACE FUNCTION public.blind() RETURNS text LANGUAGE plpgsql AS $$ BEGIN "
         "RETURN set_config('standard_conforming_strings', 'off', false); END $$")
# A function that turns client_encoding to LATIN1 (issue 12, found by an outside attacker).
FLIP_ENC = ("CREATE OR REPLACE FUNCTION public.flip_enc() RETURNS void LANGUAGE sql AS "
            "$$SET client_encoding = 'LATIN1'$$")
_names = itertools.count(1)


@pytest.fixture(scope="module")
def gw(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with psycopg.connect(pg_target.superuser(), autocommit=True) as admin:
        admin.execute("SET ROLE gw_scram")
        admin.execute(BLIND)
        admin.execute(FLIP_ENC)
    gateway = start_guarded(pg_target, tmp_path_factory.mktemp("guardrail-relay"))
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


class Victim:
    """A table of the session's user on the target, three rows with n = 0."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.name = f"victim_{next(_names)}"
        self._admin(f"CREATE TABLE {self.name} (id int PRIMARY KEY, n int NOT NULL);"
                    f"INSERT INTO {self.name} VALUES (1, 0), (2, 0), (3, 0);"
                    f"ALTER TABLE {self.name} OWNER TO gw_scram")

    def _admin(self, sql: str) -> Any:
        with psycopg.connect(self.target.superuser(), autocommit=True) as admin:
            return admin.execute(sql.encode()).fetchone() if sql.startswith("SELECT") else (
                admin.execute(sql.encode()))

    def exists(self) -> bool:
        return bool(self._admin(f"SELECT to_regclass('public.{self.name}') IS NOT NULL")[0])

    def total(self) -> int:
        return int(self._admin(f"SELECT sum(n) FROM {self.name}")[0])

    @property
    def drop_behind_a_string(self) -> str:
        """One SELECT of a string as the guard reads it (standard_conforming_strings on); a
        SELECT and a DROP of the table with it off."""
        return f"SELECT 'x\\'' ; DROP TABLE {self.name}; --'"

    @property
    def bump(self) -> str:
        return f"UPDATE {self.name} SET n = n + 1"  # every row: held for a review


def login(gw: Gateway, app: str, **params: str) -> Wire:
    wire = Wire(gw.port())
    wire.send(codec.startup_message({"user": "alice", "database": "shop",
                                     "application_name": app, **params}))
    msg = wire.recv()
    assert msg is not None and msg[0] == ord("R")
    wire.send(codec.password_message(gw.tokens["alice"].encode() + b"\x00"))
    wire.until(b"Z")
    return wire


def errors_of(messages: list[tuple[int, bytes]]) -> list[dict[str, str]]:
    return [error_fields(body) for tag, body in messages if tag == ord("E")]


def tags(messages: list[tuple[int, bytes]]) -> str:
    return "".join(chr(tag) for tag, _ in messages if tag != ord("N"))


def records(gw: Gateway, app: str) -> list[tuple[str, str, str]]:
    """(text, verdict, status) of each statement of the ended session named ``app``."""
    session: dict[str, Any] = gw.wait_for(lambda s: next(
        (r for r in s.sessions() if r["application_name"] == app and r["ended_at"]), {}))
    store = gw.store()
    try:
        rows = store.statements(session["id"])
    finally:
        store.close()
    return [(r["text"], r["verdict"], r["status"]) for r in rows]


def decide(gw: Gateway, approve: bool, seen: set[str] | None = None) -> dict[str, Any]:
    """Approve or deny the next request an operator sees."""
    request = wait_for_request(gw)
    if seen is not None:
        assert request["id"] not in seen
        seen.add(request["id"])
    with operator(gw) as client:
        client.call("approve" if approve else "deny", request=request["id"], reason="test")
    return request


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(work())
        except Exception as exc:  # the caller looks at it
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


# --- class 6: settings changed inside a pipeline --------------------------------------------


def test_function_then_query_without_a_sync_cannot_drop(gw: Gateway) -> None:
    """The issue's example: the DROP ran and was recorded as a SELECT."""
    victim = Victim(gw.target)
    wire = login(gw, "c6-unsynced")
    wire.send(b.parse("SELECT blind()") + b.bind() + b.execute()
              + b.query(victim.drop_behind_a_string))
    answer = wire.until(b"Z")
    assert victim.exists()
    assert tags(answer) == "12DCEZ"
    [error] = errors_of(answer)
    assert error["C"] == "42501" and "gateway-sql-reading" in error["M"]
    assert "Send a Sync" in error["H"]
    wire.send(b.SYNC)
    wire.until(b"Z")
    # The target failed in the refused Query's place: the implicit transaction blind() ran in
    # rolled back, its setting with it, as after the Query failing there.
    assert "S" not in tags(answer) and errors_of(wire.query("SELECT 1")) == []
    wire.close()
    assert victim.exists()
    assert records(gw, "c6-unsynced") == [
        ("SELECT blind()", "count", "ok"),  # a function of the target's: what it writes counts
        (victim.drop_behind_a_string, "block", "blocked"),
        ("SELECT 1", "allow", "ok"),
    ]


def test_flush_only_pipeline_then_parse_cannot_drop(gw: Gateway) -> None:
    victim = Victim(gw.target)
    wire = login(gw, "c6-flush")
    wire.send(b.parse("SELECT blind()") + b.bind() + b.execute() + b.FLUSH)
    assert tags(wire.until(b"C")) == "12DC"
    wire.send(b.parse(victim.drop_behind_a_string) + b.bind() + b.execute() + b.SYNC)
    answer = wire.until(b"Z")
    assert victim.exists()
    # No ParameterStatus: the segment failed, blind()'s setting rolled back with it.
    assert tags(answer) == "EZ" and "gateway-sql-reading" in errors_of(answer)[0]["M"]
    wire.close()
    assert victim.exists()


def test_function_then_synced_query_is_judged_after_the_server_reports(gw: Gateway) -> None:
    victim = Victim(gw.target)
    wire = login(gw, "c6-synced")
    wire.send(b.pbes("SELECT blind()") + b.query(victim.drop_behind_a_string))
    assert tags(wire.until(b"Z")) == "12DCSZ"  # S: the server reports the new setting
    answer = wire.until(b"Z")
    assert "cannot read SQL" in errors_of(answer)[0]["M"]
    wire.close()
    assert victim.exists()


def test_a_function_in_the_same_query_cannot_change_how_the_rest_is_read(gw: Gateway) -> None:
    """PostgreSQL reads the whole string before it runs any of it: the gateway judges it as
    it is read, the DROP is inside a string, and the record is the text that ran."""
    victim = Victim(gw.target)
    text = f"SELECT blind(); {victim.drop_behind_a_string}"
    run = subprocess.run(["psql", "-X", "-At", "-d", gw.dsn(application_name="c6-whole"),
                          "-c", text], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert victim.exists()
    assert records(gw, "c6-whole") == [(text, "count", "ok")]  # blind() is counted


def test_psql_statements_after_the_function_are_refused(gw: Gateway) -> None:
    victim = Victim(gw.target)
    run = subprocess.run(["psql", "-X", "-At", "-d", gw.dsn(application_name="c6-psql"),
                          "-c", "SELECT blind()", "-c", victim.drop_behind_a_string],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "cannot read SQL" in run.stderr
    assert victim.exists()


def test_psycopg_pipeline_behind_the_function_cannot_drop(gw: Gateway) -> None:
    victim = Victim(gw.target)
    with psycopg.connect(gw.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match="gateway-sql-reading"), \
                conn.pipeline():
            first = conn.execute("SELECT blind()")
            conn.execute(victim.drop_behind_a_string.encode())
        assert first.fetchone() == ("off",)
    assert victim.exists()


def test_psycopg_pipeline_of_ordinary_sql_goes_on(gw: Gateway) -> None:
    """ASCII without a backslash reads the same under any setting: no wait, no refusal."""
    victim = Victim(gw.target)
    with psycopg.connect(gw.dsn(), autocommit=True) as conn, conn.pipeline():
        counts = [conn.execute(f"SELECT count(*) + %s FROM {victim.name}".encode(), [i])
                  for i in range(20)]
        conn.execute(f"UPDATE {victim.name} SET n = n + 1 WHERE id = %s".encode(), [1])
    assert [c.fetchone() for c in counts] == [(3 + i,) for i in range(20)]
    assert victim.total() == 1


def test_psycopg_pipeline_with_a_backslash_needs_a_sync_before_it(gw: Gateway) -> None:
    """What it costs: text with a backslash or non-ASCII characters right behind another
    statement in the same pipeline is refused; a Sync in between lets it through."""
    with psycopg.connect(gw.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match="Send a Sync"), \
                conn.pipeline():
            conn.execute("SELECT 1")
            conn.execute("SELECT 'a\\b', 'é'")
        with conn.pipeline() as pipeline:
            conn.execute("SELECT 1")
            pipeline.sync()
            second = conn.execute("SELECT 'a\\b', 'é'")
        assert second.fetchone() == ("a\\b", "é")


def test_text_is_recorded_in_the_session_encoding(gw: Gateway) -> None:
    with psycopg.connect(gw.dsn(application_name="c6-latin1"), autocommit=True,
                         client_encoding="LATIN1") as conn:
        simple = psycopg.ClientCursor(conn)
        assert simple.execute("SELECT 'été' AS s").fetchone() == ("été",)
        assert conn.execute("SELECT 'ça' AS s WHERE %s = 'þ'", ["þ"]).fetchone() == ("ça",)
    assert records(gw, "c6-latin1") == [
        ("SELECT 'été' AS s", "allow", "ok"),
        ("SELECT 'ça' AS s WHERE $1 = 'þ'", "allow", "ok"),
    ]


# --- class 7: one approval, one execution ---------------------------------------------------


def test_an_approved_update_bound_to_two_portals_runs_once(gw: Gateway) -> None:
    victim = Victim(gw.target)
    wire = login(gw, "c7-portals")
    wire.send(b.parse(victim.bump, "u") + b.bind(statement="u", portal="p1")
              + b.execute("p1") + b.bind(statement="u", portal="p2") + b.execute("p2")
              + b.SYNC)
    seen: set[str] = set()
    decide(gw, True, seen)
    decide(gw, False, seen)  # the second portal asked again: denied
    answer = wire.until(b"Z")
    assert tags(answer) == "12CEZ" and "denied" in errors_of(answer)[0]["M"]
    wire.close()
    # Never two UPDATEs; and the denial fails the segment on the target, as an error there
    # would: the approved first one rolls back with the implicit transaction at the Sync.
    assert victim.total() == 0
    assert records(gw, "c7-portals") == [
        (victim.bump, "approved", "ok"), (victim.bump, "denied", "denied")]


def test_a_second_bind_of_an_approved_statement_asks_again(gw: Gateway) -> None:
    victim = Victim(gw.target)
    wire = login(gw, "c7-rebind")
    wire.send(b.parse(victim.bump, "u") + b.bind(statement="u") + b.execute() + b.SYNC)
    decide(gw, True)
    assert tags(wire.until(b"Z")) == "12CZ"
    wire.send(b.bind(statement="u") + b.execute() + b.SYNC)
    decide(gw, False)
    assert "denied" in errors_of(wire.until(b"Z"))[0]["M"]
    wire.close()
    assert victim.total() == 3


def test_an_approved_portal_runs_whole(gw: Gateway) -> None:
    """With a row limit it would stop and go on after other statements changed what its
    approver was shown (round 16): an approved Execute with a row limit is refused."""
    victim = Victim(gw.target)
    wire = login(gw, "c7-rows")
    wire.query("BEGIN")
    wire.send(b.parse(victim.bump + " RETURNING id") + b.bind(portal="p") + b.execute("p", 1)
              + b.SYNC)
    decide(gw, True)
    answers = wire.until(b"Z")
    assert b"runs whole" in b"".join(body for tag, body in answers if tag == ord("E"))
    wire.query("ROLLBACK")
    wire.close()
    assert victim.total() == 0


def test_prepare_then_execute_is_judged_at_every_execute(gw: Gateway) -> None:
    """The issue's example: an approved PREPARE x AS UPDATE … ran at every EXECUTE x."""
    victim = Victim(gw.target)
    wire = login(gw, "c7-prepare")
    seen: set[str] = set()
    wire.send(b.query(f"PREPARE bump AS {victim.bump}"))
    decide(gw, True, seen)
    wire.until(b"Z")
    wire.send(b.query("EXECUTE bump"))
    request = decide(gw, True, seen)
    # The approver sees what it runs; the reason (stored as it is) names no values.
    assert request["statement"] == f"EXECUTE bump\n-- gatewatch: EXECUTE bump runs: {victim.bump}"
    assert request["reason"] == f"EXECUTE bump runs UPDATE WITHOUT WHERE {victim.name}"
    wire.until(b"Z")
    wire.send(b.query("EXECUTE bump"))
    decide(gw, False, seen)
    assert "denied" in errors_of(wire.until(b"Z"))[0]["M"]
    for unknown in ("EXECUTE nothing_by_that_name", "DEALLOCATE bump; EXECUTE bump"):
        assert errors_of(wire.query(unknown))[0]["M"].startswith(
            'statement blocked by rule "fallback"')
    wire.close()
    assert victim.total() == 3
    assert records(gw, "c7-prepare")[1:3] == [
        ("EXECUTE bump", "approved", "ok"), ("EXECUTE bump", "denied", "denied")]


def test_psql_prepare_then_execute(gw: Gateway, tmp_path: Path) -> None:
    victim = Victim(gw.target)
    script = tmp_path / "script.sql"
    script.write_text(f"PREPARE bump AS {victim.bump};\nEXECUTE bump;\n"
                      "EXPLAIN ANALYZE EXECUTE bump;\n")
    client = subprocess.Popen(["psql", "-X", "-d", gw.dsn(application_name="c7-psql"),
                               "-f", str(script)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: set[str] = set()
    decide(gw, True, seen)  # PREPARE
    decide(gw, False, seen)  # EXECUTE
    decide(gw, False, seen)  # EXPLAIN ANALYZE EXECUTE runs it too
    _, err = client.communicate(timeout=60)
    assert err.count("denied") == 2
    assert victim.total() == 0


def test_psycopg_prepared_statements(gw: Gateway) -> None:
    """Prepared by the driver (named, reused): ordinary ones run unheld; one to review asks
    at every execution."""
    victim = Victim(gw.target)
    with psycopg.connect(gw.dsn(), autocommit=True, prepare_threshold=0) as conn:
        for _ in range(10):
            conn.execute(f"SELECT n FROM {victim.name} WHERE id = %s".encode(), [1])
        for approve in (True, False):
            thread, out = in_thread(lambda: conn.execute(victim.bump.encode(), prepare=True))
            decide(gw, approve)
            thread.join(30)
            assert isinstance(out[0], errors.InsufficientPrivilege) != approve
    assert victim.total() == 3


def test_latin1_statement_names_are_not_confused(gw: Gateway) -> None:
    """The issue's example: b'\\xfe' and b'\\xff' both decoded to U+FFFD, so an approved
    statement reran under the other name and was recorded as SELECT 1."""
    victim = Victim(gw.target)
    wire = login(gw, "c7-latin1", client_encoding="LATIN1")
    wire.send(b.parse(victim.bump, b"\xfe") + b.bind(statement=b"\xfe") + b.execute()
              + b.SYNC)
    decide(gw, True)
    assert tags(wire.until(b"Z")) == "12CZ"
    wire.send(b.parse("SELECT 1", b"\xff") + b.bind(statement=b"\xff") + b.execute() + b.SYNC)
    assert tags(wire.until(b"Z")) == "12DCZ"  # no request: it is the SELECT
    wire.send(b.bind(statement=b"\xfe") + b.execute() + b.SYNC)
    decide(gw, False)
    assert "denied" in errors_of(wire.until(b"Z"))[0]["M"]
    wire.close()
    assert victim.total() == 3
    assert records(gw, "c7-latin1") == [
        (victim.bump, "approved", "ok"), ("SELECT 1", "allow", "ok"),
        (victim.bump, "denied", "denied")]


def test_close_then_parse_another_statement_under_the_same_name(gw: Gateway) -> None:
    victim = Victim(gw.target)
    wire = login(gw, "c7-close")
    wire.send(b.parse(victim.bump, "s") + b.SYNC)
    assert tags(wire.until(b"Z")) == "1Z"  # parsed, never run: nothing to approve
    wire.send(b.close("S", "s") + b.parse(f"SELECT count(*) FROM {victim.name}", "s")
              + b.bind(statement="s") + b.execute() + b.SYNC)
    assert tags(wire.until(b"Z")) == "312DCZ"
    wire.close()
    assert victim.total() == 0
    assert records(gw, "c7-close") == [(f"SELECT count(*) FROM {victim.name}", "allow", "ok")]


def test_a_name_forgotten_by_discard_all_is_not_run(gw: Gateway) -> None:
    wire = login(gw, "c7-discard")
    wire.send(b.parse("SELECT 1", "s") + b.SYNC)
    wire.until(b"Z")
    wire.query("DISCARD ALL")
    wire.send(b.bind(statement="s") + b.execute() + b.SYNC)
    assert errors_of(wire.until(b"Z"))[0]["C"] == "26000"
    wire.close()


# --- names read under a client_encoding a statement changed in the same pipeline -------------

E_ACUTE = "é".encode()  # b'\xc3\xa9': "é" in UTF-8, but "Ã©" once the server reads LATIN1


def test_a_non_ascii_name_behind_an_encoding_change_cannot_run_the_other_statement(
        gw: Gateway) -> None:
    """The outside attacker's pipeline: flip_enc() sets LATIN1, then a Bind of b'\xc3\xa9',
    which the server reads as 'Ã©' (the UPDATE) while the gateway looked up 'é' (SELECT 1)."""
    victim = Victim(gw.target)
    wire = login(gw, "c6-names")
    wire.send(b.parse(victim.bump, "Ã©") + b.parse("SELECT 1", E_ACUTE) + b.SYNC)
    assert tags(wire.until(b"Z")) == "11Z"  # parsed, never run: nothing to approve
    wire.send(b.parse("SELECT flip_enc()") + b.bind() + b.execute()
              + b.bind(statement=E_ACUTE) + b.execute() + b.SYNC)
    answer = wire.until(b"Z")
    [error] = errors_of(answer)
    assert error["C"] == "42501" and "gateway-sql-reading" in error["M"]
    assert "which name the server will read" in error["M"] and "Send a Sync" in error["H"]
    wire.close()
    assert victim.total() == 0
    assert records(gw, "c6-names") == [("SELECT flip_enc()", "count", "ok"),
                                       ("-- Bind of 'é'", "block", "blocked")]


def test_a_non_ascii_name_after_a_synced_encoding_change_is_what_the_server_reads(
        gw: Gateway) -> None:
    """With a Sync between them the Bind waits for the reported client_encoding and is judged
    as the statement the server will run: the UPDATE, held; denied, nothing changes."""
    victim = Victim(gw.target)
    wire = login(gw, "c6-names-synced")
    wire.send(b.parse(victim.bump, "Ã©") + b.parse("SELECT 1", E_ACUTE) + b.SYNC)
    wire.until(b"Z")
    wire.send(b.pbes("SELECT flip_enc()") + b.bind(statement=E_ACUTE) + b.execute() + b.SYNC)
    wire.until(b"Z")
    request = decide(gw, False)
    assert request["statement"].startswith(victim.bump)
    assert "denied" in errors_of(wire.until(b"Z"))[0]["M"]
    wire.close()
    assert victim.total() == 0
    assert records(gw, "c6-names-synced") == [("SELECT flip_enc()", "count", "ok"),
                                              (victim.bump, "denied", "denied")]
