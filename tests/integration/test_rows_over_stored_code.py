"""Issue 12, "judge writes by their effect … and what procedural code reaches", for code that a
statement runs without naming it: a trigger, a rule or a column default on the table an INSERT
writes, a view whose query calls a function. Installed on the target by its owner (not through
the gateway, where it would have been judged when created), that code is followed through the
connection's catalog (the one masking keeps, or one read in the background where the
connection masks nothing): the statement is counted by what the code writes and held by the
example policy's ``review-big-writes``. Denied, every row stays. A table with no
code, or code that runs only on writes when the statement reads, passes as before.
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
DROP TABLE IF EXISTS gw12s_log, gw12s_trig, gw12s_rule, gw12s_default, gw12s_plain,
  gw12s_secured, "Gw12s_Cased", "gw12s.dotted", gw12s_parted, gw12s_when CASCADE;
CREATE TABLE gw12s_log (id int);
INSERT INTO gw12s_log SELECT generate_series(1, 500);
CREATE OR REPLACE FUNCTION gw12s_purge() RETURNS int LANGUAGE plpgsql AS
  $$BEGIN DELETE FROM gw12s_log WHERE id > 0; RETURN 1; END$$;
CREATE OR REPLACE FUNCTION gw12s_trigger() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN UPDATE gw12s_log SET id = -id; RETURN NEW; END$$;
CREATE TABLE gw12s_trig (id int);
CREATE TRIGGER gw12s_after AFTER INSERT ON gw12s_trig FOR EACH ROW
  EXECUTE FUNCTION gw12s_trigger();
CREATE TABLE gw12s_rule (id int);
CREATE RULE gw12s_also AS ON INSERT TO gw12s_rule DO ALSO DELETE FROM gw12s_log;
CREATE TABLE gw12s_default (id int, stamp int DEFAULT gw12s_purge());
CREATE VIEW gw12s_view AS SELECT gw12s_purge() AS done;
CREATE VIEW gw12s_outer AS SELECT * FROM gw12s_view;
CREATE TABLE gw12s_plain (id int, at timestamptz DEFAULT now());
CREATE TABLE "Gw12s_Cased" (id int);
CREATE TRIGGER gw12s_cased_after AFTER INSERT ON "Gw12s_Cased" FOR EACH ROW
  EXECUTE FUNCTION gw12s_trigger();
CREATE TABLE "gw12s.dotted" (id int);
CREATE TRIGGER gw12s_dotted_after AFTER INSERT ON "gw12s.dotted" FOR EACH ROW
  EXECUTE FUNCTION gw12s_trigger();
CREATE VIEW "Gw12s_View" AS SELECT gw12s_purge() AS done;
CREATE TABLE gw12s_parted (id int) PARTITION BY RANGE (id);
SELECT format('CREATE TABLE gw12s_part%s PARTITION OF gw12s_parted FOR VALUES FROM (%s) TO (%s)',
              i, i * 10, i * 10 + 10) FROM generate_series(0, 39) i \\gexec
CREATE TRIGGER gw12s_parted_after AFTER INSERT ON gw12s_part7 FOR EACH ROW
  EXECUTE FUNCTION gw12s_trigger();
CREATE OR REPLACE FUNCTION gw12s_check(x int) RETURNS bool LANGUAGE plpgsql AS
  $$BEGIN DELETE FROM gw12s_log WHERE id > 0; RETURN true; END$$;
CREATE TABLE gw12s_when (id int, t text, v tsvector);
CREATE TRIGGER gw12s_when_before BEFORE INSERT ON gw12s_when FOR EACH ROW
  WHEN (gw12s_check(new.id)) EXECUTE FUNCTION tsvector_update_trigger(v, 'pg_catalog.english', t);
DROP MATERIALIZED VIEW IF EXISTS gw12s_matview;
CREATE OR REPLACE VIEW gw12s_mvsource AS SELECT gw12s_purge() AS done;
CREATE MATERIALIZED VIEW gw12s_matview AS SELECT * FROM gw12s_mvsource WITH NO DATA;
DROP TABLE IF EXISTS gw12s_deep, gw12s_darr, gw12s_comp CASCADE;
DROP TYPE IF EXISTS gw12s_pair;
DROP DOMAIN IF EXISTS gw12s_d3, gw12s_d2, gw12s_d1;
CREATE DOMAIN gw12s_d1 AS int CHECK (gw12s_check(VALUE));
CREATE DOMAIN gw12s_d2 AS gw12s_d1;
CREATE DOMAIN gw12s_d3 AS gw12s_d2;
CREATE TABLE gw12s_deep (x gw12s_d3);
CREATE TABLE gw12s_darr (x gw12s_d1[]);
CREATE TYPE gw12s_pair AS (a gw12s_d1, b int);
CREATE TABLE gw12s_comp (p gw12s_pair);
CREATE TABLE gw12s_secured (id int);
INSERT INTO gw12s_secured VALUES (1);
ALTER TABLE gw12s_secured ENABLE ROW LEVEL SECURITY;
ALTER TABLE gw12s_secured FORCE ROW LEVEL SECURITY;
CREATE POLICY gw12s_sees ON gw12s_secured USING (gw12s_purge() = 1);
RESET ROLE;
"""
CLEANUP = ("DROP TABLE IF EXISTS gw12s_log, gw12s_trig, gw12s_rule, gw12s_default, gw12s_plain, "
           "gw12s_secured, \"Gw12s_Cased\", \"gw12s.dotted\", gw12s_parted, gw12s_when "
           "CASCADE; DROP TABLE IF EXISTS gw12s_deep, gw12s_darr, gw12s_comp; "
           "DROP TYPE IF EXISTS gw12s_pair; DROP DOMAIN IF EXISTS gw12s_d3, gw12s_d2, gw12s_d1; "
           "DROP MATERIALIZED VIEW IF EXISTS gw12s_matview; "
           "DROP VIEW IF EXISTS gw12s_mvsource; "
           "DROP FUNCTION IF EXISTS gw12s_purge(), gw12s_trigger(), gw12s_check(int) CASCADE;")


@pytest.fixture(scope="module")
def guarded(pg_target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg_target.cluster.sql(SETUP, dbname="shop")
    gw = start_guarded(pg_target, tmp_path_factory.mktemp("stored12"))
    try:
        yield gw
    finally:
        stop_gateway(gw)
        pg_target.cluster.sql(CLEANUP, dbname="shop")


def intact(target: Target) -> int:
    with psycopg.connect(target.superuser(), dbname="shop", autocommit=True) as admin:
        row = admin.execute("SELECT count(*) FROM gw12s_log WHERE id > 0").fetchone()
        return int(row[0]) if row else -1


STATEMENTS = [
    pytest.param("INSERT INTO gw12s_trig VALUES (%s)", id="trigger"),
    pytest.param("INSERT INTO gw12s_rule VALUES (%s)", id="rule"),
    pytest.param("INSERT INTO gw12s_default (id) VALUES (%s)", id="default"),
    pytest.param("SELECT * FROM gw12s_view WHERE 1 = %s", id="view"),
    pytest.param("SELECT * FROM public.gw12s_outer WHERE 1 = %s", id="view-over-a-view"),
    pytest.param("INSERT INTO gw12s_plain (id) SELECT done FROM gw12s_view WHERE 1 = %s",
                 id="insert-from-a-view"),
    pytest.param("SELECT * FROM gw12s_secured WHERE 1 = %s", id="row-security-policy"),
    pytest.param('INSERT INTO "Gw12s_Cased" VALUES (%s)', id="quoted-name-with-capitals"),
    pytest.param('INSERT INTO "gw12s.dotted" VALUES (%s)', id="quoted-name-with-a-dot"),
    pytest.param('SELECT * FROM public."Gw12s_View" WHERE 1 = %s', id="quoted-view"),
    pytest.param("INSERT INTO gw12s_parted VALUES (70 + %s)", id="partition-of-forty"),
    pytest.param("INSERT INTO gw12s_when (id, t) VALUES (%s, 'a')", id="trigger-when"),
    pytest.param("INSERT INTO gw12s_deep VALUES (%s)", id="domain-over-domains"),
    pytest.param("INSERT INTO gw12s_darr VALUES (ARRAY[%s::int])", id="array-of-a-domain"),
    pytest.param("INSERT INTO gw12s_comp VALUES (ROW(%s, 2))", id="composite-of-a-domain"),
]


@pytest.mark.parametrize("connection", ["shop_masked", "shop"])
@pytest.mark.parametrize("protocol", ["simple", "extended"])
@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "in a transaction"])
@pytest.mark.parametrize("sql", STATEMENTS)
def test_code_stored_on_what_a_statement_names_is_counted(
        guarded: Gateway, sql: str, protocol: str, in_transaction: bool, connection: str) -> None:
    simple = protocol == "simple"
    cursor = psycopg.ClientCursor if simple else psycopg.Cursor

    def work() -> None:
        with psycopg.connect(guarded.dsn(connection), autocommit=True,
                             cursor_factory=cursor) as conn:
            if in_transaction:
                conn.execute("BEGIN")
            conn.execute(sql, (1,))  # type: ignore[arg-type]

    request = denied(guarded, work)
    assert request["rule"] == "review-big-writes"
    assert "writes 500 rows" in str(request["statement"])
    assert intact(guarded.target) == 500


def test_a_copy_into_a_table_known_to_carry_code_is_held(guarded: Gateway) -> None:
    """A COPY cannot be counted (its rows flow while it runs): into a table the catalog knows
    to carry code, it meets the rule and is held."""
    def work() -> None:
        with psycopg.connect(guarded.dsn("shop_masked"), autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM gw12s_trig")  # the catalog reads the table
            with conn.cursor().copy("COPY gw12s_trig FROM STDIN") as copy:
                copy.write_row((1,))

    request = denied(guarded, work)
    assert request["rule"] == "review-big-writes"
    assert intact(guarded.target) == 500


def known(gateway: Gateway, connection: str, name: str) -> bool:
    """Whether the engine's catalog of ``connection`` holds ``name`` now."""
    assert gateway.engine.pg is not None
    catalog = gateway.engine.pg.catalogs.get((connection, "shop"))
    return catalog is not None and catalog.relations(name) is not None


def test_without_masking_the_catalog_read_in_the_background_keeps_counting(
        guarded: Gateway) -> None:
    """On a connection that masks nothing, the first statement naming a table the catalog
    does not hold is counted (not known yet) and has it read; the next ones are counted from
    what was read."""
    def work() -> None:
        with psycopg.connect(guarded.dsn("shop"), autocommit=True) as conn:
            conn.execute("INSERT INTO gw12s_trig VALUES (1)")

    for _ in range(2):
        denied(guarded, work)
        deadline = time.monotonic() + 10
        while not known(guarded, "shop", "gw12s_trig") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert known(guarded, "shop", "gw12s_trig")
    assert intact(guarded.target) == 500
    with psycopg.connect(guarded.dsn("shop"), autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM gw12s_plain")
    deadline = time.monotonic() + 10
    while not known(guarded, "shop", "gw12s_plain") and time.monotonic() < deadline:
        time.sleep(0.05)
    with psycopg.connect(guarded.dsn("shop"), autocommit=True) as conn:
        with conn.cursor().copy("COPY gw12s_plain (id) FROM STDIN") as copy:
            copy.write_row((7,))  # no code on it: passes
    with operator(guarded) as client:
        assert not client.call("approvals")["pending"]


def test_tables_without_code_and_reads_of_tables_with_write_code_pass(guarded: Gateway) -> None:
    with psycopg.connect(guarded.dsn("shop_masked"), autocommit=True) as conn:
        before = conn.execute("SELECT count(*) FROM gw12s_plain").fetchone()
        assert before is not None
        conn.execute("INSERT INTO gw12s_plain (id) VALUES (1)")  # now() is PostgreSQL's own
        conn.execute("INSERT INTO gw12s_plain (id) SELECT g FROM generate_series(1, 300) g")
        assert conn.execute("SELECT count(*) FROM gw12s_trig").fetchone() == (0,)
        with conn.cursor().copy("COPY gw12s_plain (id) FROM STDIN") as copy:
            for i in range(200):
                copy.write_row((i,))
        assert conn.execute("SELECT count(*) FROM gw12s_plain").fetchone() == (before[0] + 501,)
    with operator(guarded) as client:
        assert not client.call("approvals")["pending"]
    assert intact(guarded.target) == 500


def test_a_denial_is_final_when_the_statement_is_judged_otherwise_by_then(
        guarded: Gateway) -> None:
    """Held for what a trigger wrote, then the trigger is dropped on the target and the
    catalog reads the table again before the operator decides: the statement would now
    pass, but a denial still refuses it (it used to run)."""
    target = guarded.target
    target.cluster.sql("SET ROLE gw_scram; CREATE TABLE gw12s_fleeting (id int); "
                       "CREATE TRIGGER gw12s_fleeting_after AFTER INSERT ON gw12s_fleeting "
                       "FOR EACH ROW EXECUTE FUNCTION gw12s_trigger(); RESET ROLE;",
                       dbname="shop")
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(guarded.dsn("shop"), autocommit=True) as conn:
                conn.execute("INSERT INTO gw12s_fleeting VALUES (42)")
        except psycopg.Error as exc:
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        request = wait_for_request(guarded)
        target.cluster.sql("DROP TRIGGER gw12s_fleeting_after ON gw12s_fleeting", dbname="shop")
        assert guarded.engine.pg is not None
        catalog = guarded.engine.pg.catalogs[("shop", "shop")]
        assert guarded.call(catalog.resolve_names(frozenset({"gw12s_fleeting"}), frozenset()))
        relation = catalog.relations("gw12s_fleeting")
        assert relation is not None and not relation[0].triggers
        with operator(guarded) as client:
            client.call("deny", request=request["id"], reason="issue 12")
        worker.join(30)
        assert failure and isinstance(failure[0], psycopg.errors.InsufficientPrivilege)
        with psycopg.connect(target.superuser(), dbname="shop", autocommit=True) as admin:
            assert admin.execute("SELECT count(*) FROM gw12s_fleeting").fetchone() == (0,)
        assert intact(target) == 500
    finally:
        worker.join(30)
        target.cluster.sql("DROP TABLE IF EXISTS gw12s_fleeting", dbname="shop")


def test_an_operator_of_the_users_cannot_rewrite_what_the_catalog_reads(
        guarded: Gateway) -> None:
    """Found by the outside attack: ``public.|| (name, text)`` matched the catalog's own
    ``nspname || '.' || proname`` better than PostgreSQL's, and made every trigger function
    read as one of pg_catalog's (so, not code). The catalog's connection searches pg_catalog
    alone."""
    target = guarded.target
    target.cluster.sql(
        "SET ROLE gw_scram; "
        "CREATE FUNCTION public.gw12s_cat(name, text) RETURNS text LANGUAGE sql "
        "AS 'SELECT ''pg_catalog.''::text'; "
        "CREATE OPERATOR public.|| (LEFTARG = name, RIGHTARG = text, "
        "FUNCTION = public.gw12s_cat); "
        "CREATE TABLE gw12s_hijacked (id int); "
        "CREATE TRIGGER gw12s_hijacked_after AFTER INSERT ON gw12s_hijacked "
        "FOR EACH ROW EXECUTE FUNCTION gw12s_trigger(); RESET ROLE;", dbname="shop")
    try:
        for connection in ("shop", "shop_masked"):
            def work(connection: str = connection) -> None:
                with psycopg.connect(guarded.dsn(connection), autocommit=True) as conn:
                    conn.execute("INSERT INTO gw12s_hijacked VALUES (1)")

            request = denied(guarded, work)
            assert "writes 500 rows" in str(request["statement"])
        assert intact(target) == 500
    finally:
        target.cluster.sql("DROP TABLE IF EXISTS gw12s_hijacked; "
                           "DROP OPERATOR IF EXISTS public.|| (name, text); "
                           "DROP FUNCTION IF EXISTS public.gw12s_cat(name, text)", dbname="shop")


@pytest.mark.parametrize("connection", ["shop_masked", "shop"])
def test_a_statement_prepared_before_a_trigger_is_judged_at_each_bind(
        guarded: Gateway, connection: str) -> None:
    """Sixth outside attack: a driver's prepared statement was judged once, at its Parse, and
    kept that verdict for the connection's life while a DBA added a trigger."""
    target = guarded.target
    table = f"gw12s_prep_{connection}"
    target.cluster.sql(f"SET ROLE gw_scram; CREATE TABLE {table} (id int); RESET ROLE;",
                       dbname="shop")
    try:
        with psycopg.connect(guarded.dsn(connection), autocommit=True,
                             prepare_threshold=0) as conn:
            conn.execute(f"INSERT INTO {table} VALUES (%s)", [1])  # prepared, no code yet
            target.cluster.sql(f"CREATE TRIGGER {table}_after AFTER INSERT ON {table} "
                               "FOR EACH ROW EXECUTE FUNCTION gw12s_trigger()", dbname="shop")
            assert guarded.engine.pg is not None
            catalog = guarded.engine.pg.catalogs[(connection, "shop")]
            assert guarded.call(catalog.resolve_names(frozenset({table}), frozenset()))

            def work() -> None:
                conn.execute(f"INSERT INTO {table} VALUES (%s)", [2])  # the same prepared one

            request = denied(guarded, work)
            assert "writes 500 rows" in str(request["statement"])
        assert intact(target) == 500
    finally:
        target.cluster.sql(f"DROP TABLE IF EXISTS {table}", dbname="shop")


@pytest.mark.parametrize("connection", ["shop_masked", "shop"])
def test_refreshing_a_materialized_view_over_code_is_counted(guarded: Gateway,
                                                             connection: str) -> None:
    def work() -> None:
        with psycopg.connect(guarded.dsn(connection), autocommit=True) as conn:
            conn.execute("REFRESH MATERIALIZED VIEW gw12s_matview")

    request = denied(guarded, work)
    assert "writes 500 rows" in str(request["statement"])
    assert intact(guarded.target) == 500


def test_a_policy_added_to_a_table_already_read_is_seen(guarded: Gateway) -> None:
    """Sixth outside attack: the catalog's check of what it holds did not look at policies
    (nor indexes, nor constraints), so a policy a DBA added later went unseen for a minute."""
    target = guarded.target
    target.cluster.sql("SET ROLE gw_scram; CREATE TABLE gw12s_later (id int); "
                       "INSERT INTO gw12s_later VALUES (1); "
                       "ALTER TABLE gw12s_later ENABLE ROW LEVEL SECURITY; "
                       "ALTER TABLE gw12s_later FORCE ROW LEVEL SECURITY; "
                       "CREATE POLICY gw12s_later_all ON gw12s_later USING (true); "
                       "RESET ROLE;", dbname="shop")
    try:
        with psycopg.connect(guarded.dsn("shop_masked"), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM gw12s_later").fetchone() == (1,)
            target.cluster.sql("CREATE POLICY gw12s_later_p ON gw12s_later AS RESTRICTIVE "
                               "USING (gw12s_check(id))", dbname="shop")
            conn.execute("SELECT 1 FROM gw12s_later WHERE false")  # its check sees the change

            def work() -> None:
                conn.execute("SELECT * FROM gw12s_later")

            request = denied(guarded, work)
            assert "writes 500 rows" in str(request["statement"])
        assert intact(target) == 500
    finally:
        target.cluster.sql("DROP TABLE IF EXISTS gw12s_later", dbname="shop")
