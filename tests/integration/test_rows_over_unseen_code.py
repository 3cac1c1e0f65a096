"""Issue 12, "judge all code that will run": code a statement reaches without calling it by
name. A cast into a user's type runs the domain's CHECKs or the cast's function; a built-in
name may be a user's overload; ANALYZE, VALIDATE CONSTRAINT and table rewrites evaluate a
table's stored expressions over the rows it holds. Each is counted by what that code writes
(or held where it cannot be counted) by the example policy's ``review-big-writes``; denied,
every row is still there. Statements of PostgreSQL's own code pass as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.guarded import denied, operator, start_guarded, wait_for_request

pytestmark = pytest.mark.integration

SETUP = """
SET ROLE gw_scram;
DROP TABLE IF EXISTS gw12u_log, gw12u_small CASCADE;
DROP DOMAIN IF EXISTS gw12u_dom CASCADE;
DROP TYPE IF EXISTS gw12u_t CASCADE;
CREATE TABLE gw12u_log (id int);
INSERT INTO gw12u_log SELECT generate_series(1, 500);
CREATE TABLE gw12u_small (id int, note text);
INSERT INTO gw12u_small VALUES (1, 'x');
CREATE OR REPLACE FUNCTION gw12u_purge() RETURNS int LANGUAGE plpgsql AS
  $$BEGIN DELETE FROM gw12u_log; RETURN 1; END$$;
CREATE DOMAIN gw12u_dom AS int CHECK (gw12u_purge() = 1);
CREATE TYPE gw12u_t AS (a text);
CREATE OR REPLACE FUNCTION gw12u_cast(x text) RETURNS gw12u_t LANGUAGE plpgsql AS
  $$BEGIN PERFORM gw12u_purge(); RETURN ROW(x)::gw12u_t; END$$;
CREATE OR REPLACE FUNCTION gw12u_imm(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
  $$BEGIN RETURN gw12u_purge() + x; END$$;
DROP TABLE IF EXISTS gw12u_indexed, gw12u_checked, gw12u_stats, gw12u_parted CASCADE;
CREATE UNLOGGED TABLE gw12u_indexed (id int);
CREATE INDEX gw12u_indexed_expr ON gw12u_indexed ((gw12u_imm(id)));
INSERT INTO gw12u_indexed SELECT generate_series(1, 3);
CREATE TABLE gw12u_checked (id int);
INSERT INTO gw12u_checked SELECT generate_series(1, 3);
ALTER TABLE gw12u_checked ADD CONSTRAINT gw12u_ok CHECK (gw12u_purge() = 1) NOT VALID;
CREATE TABLE gw12u_stats (id int);
INSERT INTO gw12u_stats SELECT generate_series(1, 3);
CREATE STATISTICS gw12u_st ON (gw12u_imm(id)), id FROM gw12u_stats;
CREATE TABLE gw12u_parted (id int) PARTITION BY LIST (gw12u_imm(id));
CREATE TABLE gw12u_part PARTITION OF gw12u_parted FOR VALUES IN (2);
DROP MATERIALIZED VIEW IF EXISTS gw12u_mv;
CREATE MATERIALIZED VIEW gw12u_mv AS SELECT generate_series(1, 3) AS id;
CREATE INDEX gw12u_mv_expr ON gw12u_mv ((gw12u_imm(id)));
CREATE OR REPLACE FUNCTION public.lower(x int) RETURNS int LANGUAGE plpgsql AS
  $$BEGIN RETURN gw12u_purge() + x; END$$;
CREATE OR REPLACE FUNCTION gw12u_eq(a gw12u_t, b gw12u_t) RETURNS bool LANGUAGE plpgsql AS
  $$BEGIN PERFORM gw12u_purge(); RETURN true; END$$;
CREATE OPERATOR public.= (LEFTARG = gw12u_t, RIGHTARG = gw12u_t, FUNCTION = gw12u_eq);
DROP TABLE IF EXISTS gw12u_typed;
CREATE TABLE gw12u_typed (v gw12u_t);
INSERT INTO gw12u_typed VALUES (ROW('a')), (ROW('b'));
DROP TABLE IF EXISTS gw12u_orders, gw12u_domdef;
DROP TYPE IF EXISTS gw12u_status;
CREATE TYPE gw12u_status AS ENUM ('new', 'done');
CREATE TABLE gw12u_orders (id int, s gw12u_status DEFAULT 'new'::gw12u_status
  CHECK (s <> 'done'::gw12u_status));
CREATE TABLE gw12u_domdef (id int, d int DEFAULT (1::gw12u_dom)::int);
TRUNCATE gw12u_log;
INSERT INTO gw12u_log SELECT generate_series(1, 500);
RESET ROLE;
CREATE CAST (text AS gw12u_t) WITH FUNCTION gw12u_cast(text);
CREATE OR REPLACE FUNCTION gw12u_to_text(x gw12u_t) RETURNS text LANGUAGE plpgsql AS
  $$BEGIN PERFORM gw12u_purge(); RETURN x.a; END$$;
CREATE CAST (gw12u_t AS text) WITH FUNCTION gw12u_to_text(gw12u_t);
"""
CLEANUP = ("DROP TABLE IF EXISTS gw12u_orders, gw12u_domdef; DROP TYPE IF EXISTS gw12u_status; "
           "DROP CAST IF EXISTS (text AS gw12u_t); DROP CAST IF EXISTS (gw12u_t AS text); "
           "DROP MATERIALIZED VIEW IF EXISTS gw12u_mv; "
           "DROP OPERATOR IF EXISTS public.= (gw12u_t, gw12u_t); DROP TABLE IF EXISTS gw12u_typed; "
           "DROP FUNCTION IF EXISTS public.lower(int), public.upper(int), "
           "gw12u_eq(gw12u_t, gw12u_t); "
           "DROP TABLE IF EXISTS gw12u_indexed, gw12u_checked, gw12u_stats, gw12u_parted "
           "CASCADE; DROP TABLE IF EXISTS gw12u_log, gw12u_small CASCADE; "
           "DROP DOMAIN IF EXISTS gw12u_dom CASCADE; DROP TYPE IF EXISTS gw12u_t CASCADE; "
           "DROP FUNCTION IF EXISTS gw12u_imm(int), gw12u_purge() CASCADE;")


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("unseen12"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEANUP, dbname="shop")


def rows(target: Target) -> object:
    with psycopg.connect(target.superuser(), dbname="shop", autocommit=True) as admin:
        row = admin.execute("SELECT count(*) FROM gw12u_log").fetchone()
        return row[0] if row else None


def held(gateway: Gateway, sql: str, params: tuple[object, ...] | None = None,
         *, in_transaction: bool = False) -> dict[str, object]:
    """``sql`` is held, denied, and every row is still there."""
    def work() -> None:
        with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
            if in_transaction:
                conn.execute("BEGIN")
            conn.execute(sql, params)  # type: ignore[arg-type]

    request = denied(gateway, work)
    # (a rewrite by ADD COLUMN is reviewed as one before it is counted: ALTER TABLE REWRITE)
    assert request["rule"] in ("review-big-writes", "review-destructive-alter-table"), request
    assert rows(gateway.target) == 500
    return request


CASTS = [
    "SELECT 1::gw12u_dom",
    "SELECT CAST(1 AS gw12u_dom)",
    "SELECT ARRAY[1, 2]::gw12u_dom[]",
    "SELECT gw12u_dom '1'",
    "SELECT note::gw12u_t FROM gw12u_small",  # CREATE CAST … WITH FUNCTION
    "SELECT CAST('x'::text AS public.gw12u_t)",
    "SELECT count(*) FROM gw12u_small WHERE id = (SELECT 1::gw12u_dom)",
]


@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "in a transaction"])
@pytest.mark.parametrize("sql", CASTS)
def test_a_cast_into_a_user_s_type_is_counted(guarded: Gateway, sql: str,
                                              in_transaction: bool) -> None:
    request = held(guarded, sql, in_transaction=in_transaction)
    assert "the code it calls writes 500 rows" in str(request["statement"])


def test_a_cast_with_parameters_is_counted_in_the_extended_protocol(guarded: Gateway) -> None:
    held(guarded, "SELECT %s::int::gw12u_dom", (1,))


@pytest.mark.parametrize("sql", [
    "ALTER TABLE gw12u_small ADD COLUMN d gw12u_dom",  # each row's NULL meets the CHECK
    "PREPARE gw12u_p (gw12u_dom) AS SELECT $1",
])
def test_a_column_or_parameter_of_a_user_s_type_converts_through_its_code(
        guarded: Gateway, sql: str) -> None:
    held(guarded, sql)


MAINTENANCE = [
    "ANALYZE gw12u_indexed",  # an expression index's expression over sampled rows
    "ANALYZE gw12u_stats",  # extended statistics on an expression
    "VACUUM (ANALYZE) gw12u_indexed",  # cannot be counted: held
    "VACUUM ANALYZE gw12u_stats",
    "ALTER TABLE gw12u_checked VALIDATE CONSTRAINT gw12u_ok",
    "ALTER TABLE gw12u_indexed SET LOGGED",  # a rewrite rebuilds the index
    "ALTER TABLE gw12u_indexed ADD COLUMN z float8 DEFAULT random()",
    "INSERT INTO gw12u_parted VALUES (1)",  # routed by a partition key calling code
    "REFRESH MATERIALIZED VIEW gw12u_mv",  # its index is built again
    "ANALYZE",  # every table: not known which
]


@pytest.mark.parametrize("sql", MAINTENANCE)
def test_what_evaluates_a_table_s_stored_expressions_is_counted_or_held(
        guarded: Gateway, sql: str) -> None:
    held(guarded, sql)


def test_maintenance_of_tables_without_such_code_passes(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        conn.execute("ANALYZE gw12u_small")
        conn.execute("VACUUM (ANALYZE) gw12u_small")
        conn.execute("ALTER TABLE gw12u_small ADD COLUMN z float8 DEFAULT 1.5")  # no rewrite
        conn.execute("VACUUM gw12u_indexed")  # evaluates no expression
    with operator(guarded) as client:
        assert not client.call("approvals")["pending"]
    assert rows(guarded.target) == 500


OVERLOADS = [
    "SELECT lower(5)",  # public.lower(int): pg_catalog has no lower(int)
    "SELECT lower(id) FROM gw12u_small",
    "SELECT count(*) FROM gw12u_typed WHERE v = v",  # public.= for a user's type
    "SELECT count(*) FROM gw12u_typed a JOIN gw12u_typed b USING (v)",
    "SELECT count(*) FROM gw12u_typed WHERE v IN (SELECT v FROM gw12u_typed)",
    "SELECT v::text FROM gw12u_typed",  # a user's cast into PostgreSQL's text
]


@pytest.mark.parametrize("sql", OVERLOADS)
def test_a_user_s_overload_of_a_built_in_name_is_counted(guarded: Gateway, sql: str) -> None:
    request = held(guarded, sql)
    assert "the code it calls writes 500 rows" in str(request["statement"])


def test_an_overload_with_parameters_is_counted_in_the_extended_protocol(
        guarded: Gateway) -> None:
    held(guarded, "SELECT lower(%s::int)", (5,))


def test_an_overload_the_session_creates_is_counted_at_once(guarded: Gateway) -> None:
    """The catalog read ``upper`` (no overload) a moment before: once the session's own
    CREATE FUNCTION (reviewed: its body writes) runs, the next call counts, without waiting
    for the catalog to read the name again."""
    failure: list[BaseException] = []

    def work() -> None:
        try:
            with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
                assert conn.execute("SELECT upper('x')").fetchone() == ("X",)
                conn.execute("CREATE FUNCTION public.upper(x int) RETURNS int "
                             "LANGUAGE plpgsql AS $$BEGIN DELETE FROM gw12u_log; "
                             "RETURN x; END$$")
                conn.execute("SELECT upper(5)")
        except psycopg.Error as exc:
            failure.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        created = wait_for_request(guarded)
        assert "CREATE FUNCTION public.upper" in str(created["statement"])
        with operator(guarded) as client:
            client.call("approve", request=created["id"], reason="issue 12")
        deadline = time.monotonic() + 15
        with operator(guarded) as client:
            while time.monotonic() < deadline:
                pending = [r for r in client.call("approvals")["pending"]
                           if r["id"] != created["id"]]
                if pending:
                    break
                time.sleep(0.05)
            assert pending, "the call was not held"
            call = pending[0]
            client.call("deny", request=call["id"], reason="issue 12")
        worker.join(30)
    finally:
        worker.join(30)
        guarded.target.cluster.sql("DROP FUNCTION IF EXISTS public.upper(int)", dbname="shop")
    assert call["rule"] == "review-big-writes"
    assert "SELECT upper(5)" in str(call["statement"])
    assert failure and isinstance(failure[0], psycopg.errors.InsufficientPrivilege)
    assert rows(guarded.target) == 500


def test_built_in_names_without_overloads_pass(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT lower('X'), upper('x'), 1 = 1, %s::int + 1 "
                            "FROM gw12u_small WHERE id BETWEEN 0 AND 9 AND id IN (1, 2)",
                            (1,)).fetchone() == ("x", "X", True, 2)
        assert conn.execute("SELECT count(*) FROM gw12u_small s JOIN gw12u_small t "
                            "USING (id)").fetchone() == (1,)
    with operator(guarded) as client:
        assert not client.call("approvals")["pending"]
    assert rows(guarded.target) == 500


def test_a_default_casting_into_a_user_s_domain_is_code_a_write_runs(guarded: Gateway) -> None:
    held(guarded, "INSERT INTO gw12u_domdef (id) VALUES (1)")


def test_an_enum_default_is_not_code(guarded: Gateway) -> None:
    """pg_dump writes an enum column's DEFAULT as a cast (``'new'::public.status``): the
    catalog says the enum runs no user's code, so a COPY into the table (which cannot be
    counted) is not held."""
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        with conn.cursor().copy("COPY gw12u_orders (id) FROM STDIN") as copy:
            copy.write_row((1,))
        assert conn.execute("SELECT count(*) FROM gw12u_orders WHERE s = 'new'").fetchone() == (
            1,)
    with operator(guarded) as client:
        assert not client.call("approvals")["pending"]


def test_casts_into_postgresql_s_own_types_pass(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT 1::int, 'x'::text, '2020-01-01'::date, "
                            "'{1}'::int[], numeric '1.5', %s::bigint", (7,)).fetchone() == (
            1, "x", __import__("datetime").date(2020, 1, 1), [1],
            __import__("decimal").Decimal("1.5"), 7)
    with operator(guarded) as client:
        assert not client.call("approvals")["pending"]
    assert rows(guarded.target) == 500


def test_built_in_names_are_read_once_not_at_every_statement(guarded: Gateway) -> None:
    """The common case stays cheap: once the catalog read the names a statement uses, the
    same names cost no further round trip to the target while the entries stand, and are
    not counted (a cursor over them, which cannot be counted, is not held)."""
    assert guarded.engine.pg is not None
    # (lower and = have users' overloads here: see the tests above)
    sql = ("SELECT btrim(note), length(note) FROM gw12u_small WHERE id < {} "
           "AND id BETWEEN 0 AND 9")
    done: list[object] = []

    def work() -> None:
        with psycopg.connect(guarded.dsn(), autocommit=True) as conn:
            conn.execute(sql.format(5))  # the first reads the names
            catalog = guarded.engine.pg.catalogs[("shop", "shop")]  # type: ignore[union-attr]
            before = (catalog.lookups, catalog.probes)
            for n in range(30):
                with conn.transaction():
                    conn.execute(f"DECLARE gw12u_c CURSOR FOR {sql.format(n + 5)}")
                    conn.execute("CLOSE gw12u_c")
            done.append((catalog.lookups, catalog.probes) == before)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(20)
    with operator(guarded) as client:
        pending = client.call("approvals")["pending"]
        for request in pending:
            client.call("deny", request=request["id"], reason="issue 12")
    worker.join(30)
    assert not pending, [(r["statement"], r.get("reason")) for r in pending]
    assert done == [True]
