"""Issue 12, "migrations with functions that only touch their own tables are never held": a
migration run with ``psql -f`` (one Query per statement) and ``psql -1 -f`` (the same in one
transaction) through the real gateway and the example policy — a table, a table whose key
cascades into it, a function and a trigger function that update the new table, the trigger,
an index, rows, a call — is never held, and does what it says on the target. What the memory
must not be fooled by (a CREATE that failed, one rolled back) is held.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from tests.conftest import Gateway, Target, need, stop_gateway
from tests.integration.guarded import approved, denied, operator, start_guarded, wait_for_request

pytestmark = pytest.mark.integration

# Names with their schema, as a migration that means its own tables writes them: a body's name
# without one is resolved when it runs, with the search_path of whoever runs it then, and may
# mean another table (held once for review).
MIGRATION = """
CREATE TABLE public.gw12m_counters (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
CREATE TABLE public.gw12m_events (id serial PRIMARY KEY,
                           counter int REFERENCES public.gw12m_counters ON DELETE CASCADE);
CREATE FUNCTION gw12m_bump(i int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE public.gw12m_counters SET n = n + 1 WHERE id = i;
END $$;
CREATE FUNCTION gw12m_on_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE public.gw12m_counters SET n = n + 10 WHERE id = NEW.counter;
  RETURN NEW;
END $$;
CREATE TRIGGER gw12m_count AFTER INSERT ON gw12m_events
  FOR EACH ROW EXECUTE FUNCTION gw12m_on_event();
CREATE INDEX gw12m_counters_n ON gw12m_counters (n);
INSERT INTO public.gw12m_counters (id) VALUES (1), (2), (3);
INSERT INTO public.gw12m_events (counter) VALUES (1), (1), (2);
SELECT gw12m_bump(3);
"""
CLEAN = ("DROP TABLE IF EXISTS gw12m_events, gw12m_counters, gw12m_victim CASCADE; "
         "DROP FUNCTION IF EXISTS gw12m_bump(int), gw12m_on_event(), gw12m_wipe() CASCADE;")
# Created behind the gateway's back: a trigger function that empties a table.
WIPE = ("CREATE TABLE gw12m_victim (id int); "
        "INSERT INTO gw12m_victim SELECT generate_series(1, 50); "
        "CREATE FUNCTION gw12m_wipe() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN DELETE FROM gw12m_victim; RETURN NEW; END$$;")
HARMLESS_WIPE = ("CREATE FUNCTION gw12m_wipe() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$BEGIN RETURN NEW; END$$")
TRIGGER = ("CREATE TRIGGER gw12m_t BEFORE INSERT ON gw12m_counters FOR EACH ROW "
           "EXECUTE FUNCTION gw12m_wipe()")


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql("SET ROLE gw_scram; " + CLEAN + "RESET ROLE;", dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("migrations12"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEAN, dbname="shop")


@pytest.fixture
def clean(guarded: Gateway) -> Iterator[None]:
    guarded.target.cluster.sql("SET ROLE gw_scram; " + CLEAN + "RESET ROLE;", dbname="shop")
    yield
    guarded.target.cluster.sql(CLEAN, dbname="shop")


def on_target(target: Target, sql: str) -> object:
    with psycopg.connect(target.superuser(), autocommit=True) as admin:
        row = admin.execute(sql).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None


def pending(gateway: Gateway) -> list[dict[str, object]]:
    with operator(gateway) as client:
        return list(client.call("approvals")["pending"])


def run_psql(gateway: Gateway, script: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """psql with the migration; a statement held on the way is denied and reported."""
    proc = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *flags, "-f",
                             str(script), gateway.dsn()], env=gateway.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    held: list[dict[str, object]] = []
    while proc.poll() is None and time.monotonic() < deadline:
        held = pending(gateway)
        if held:
            with operator(gateway) as client:
                client.call("deny", request=held[0]["id"], reason="held by the test")
            break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=60)
    assert not held, f"held: {held[0]['rule']}: {held[0].get('reason')}"
    return subprocess.CompletedProcess(proc.args, proc.returncode or 0, out, err)


@pytest.mark.parametrize("flags", [(), ("-1",)], ids=["statement by statement", "one transaction"])
def test_a_migration_is_never_held(guarded: Gateway, clean: None, tmp_path: Path,
                                   flags: tuple[str, ...]) -> None:
    need("psql")
    script = tmp_path / "migration.sql"
    script.write_text(MIGRATION)
    done = run_psql(guarded, script, *flags)
    assert done.returncode == 0, done.stderr
    # It did what it says: the trigger counted three events, the call bumped counter 3.
    assert on_target(guarded.target, "SELECT string_agg(id || ':' || n, ',' ORDER BY id) "
                                     "FROM gw12m_counters") == "1:20,2:10,3:1"
    assert on_target(guarded.target, "SELECT count(*) FROM pg_trigger "
                                     "WHERE tgname = 'gw12m_count'") == 1


@pytest.mark.parametrize("fooled_by", ["failed", "rolled back"])
def test_a_create_that_did_not_stand_is_not_remembered(guarded: Gateway, clean: None,
                                                        fooled_by: str) -> None:
    guarded.target.cluster.sql("SET ROLE gw_scram; CREATE TABLE gw12m_counters (id int); "
                               + WIPE + " RESET ROLE;", dbname="shop")
    with psycopg.connect(guarded.dsn(), autocommit=True,
                         cursor_factory=psycopg.ClientCursor) as conn:
        if fooled_by == "failed":
            # Held (a CREATE of a name the target has), approved, refused by the target.
            _, failed = approved(guarded, lambda: conn.execute(HARMLESS_WIPE))  # type: ignore
            assert isinstance(failed, errors.DuplicateFunction), failed
        else:
            conn.execute("BEGIN")
            # Replacing a trigger function is reviewed (it may take a protection away):
            # approved here, then rolled back.
            replace = HARMLESS_WIPE.replace("CREATE", "CREATE OR REPLACE")
            worker = threading.Thread(target=lambda: conn.execute(replace))  # type: ignore
            worker.start()
            with operator(guarded) as client:
                client.call("approve", request=wait_for_request(guarded)["id"], reason="test")
            worker.join(30)
            conn.execute("ROLLBACK")
        # The trigger would bind the function that empties gw12m_victim.
        request = denied(guarded, lambda: conn.execute(TRIGGER))  # type: ignore[arg-type]
        # (a BEFORE row trigger on a table the session did not create meets
        # review-destructive-alter-table too, listed first)
        assert request["rule"] in ("review-opaque-code", "review-destructive-alter-table")
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert on_target(guarded.target, "SELECT count(*) FROM gw12m_victim") == 50
    assert on_target(guarded.target, "SELECT count(*) FROM pg_trigger "
                                     "WHERE tgname = 'gw12m_t'") == 0
