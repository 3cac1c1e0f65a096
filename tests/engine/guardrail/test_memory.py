"""A session's memory of what it created (issue 12: "migrations with functions that only touch
their own tables are never held"), text by text as ``psql -f`` sends a migration, and what
makes it forget. The relay's part (confirmation by the target, rollbacks) is in
tests/integration/test_guardrail_migrations.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import load_config
from engine.guardrail.guard import Guard, SessionGuard

REPO = Path(__file__).resolve().parents[3]

# Names with their schema: a body's table is the session's own only so (a name without one is
# resolved when the body runs, with whoever runs it's search_path).
TABLE = "CREATE TABLE public.counters (id int PRIMARY KEY, n int NOT NULL DEFAULT 0)"
BUMP = ("CREATE FUNCTION bump(i int) RETURNS void LANGUAGE plpgsql AS "
        "$$BEGIN UPDATE public.counters SET n = n + 1 WHERE id = i; END$$")
STAMP = ("CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS "
         "$$BEGIN UPDATE public.counters SET n = n + 1 WHERE id = NEW.id; RETURN NEW; END$$")
TRIGGER = ("CREATE TRIGGER counters_stamp AFTER INSERT ON counters FOR EACH ROW "
           "EXECUTE FUNCTION stamp()")


@pytest.fixture
def alice() -> SessionGuard:
    config = load_config(REPO / "policies.yaml")
    who = next(i for i in config.identities if i.name == "alice")
    return Guard(config.rules, config.guardrails).for_session("shop", who.name, who.groups)


def run(guard: SessionGuard, text: str, *, ok: bool = True) -> str:
    """Judge ``text`` and run it as the relay does: started, then completed, then the
    ReadyForQuery of autocommit. The action it was judged with."""
    action = guard.judge(text).action
    started = guard.started(text)
    if ok and started is not None:
        guard.finished(started)
    if not ok:
        guard.memory.rolled_back()
    guard.memory.ready(b"I")
    return action


def test_a_migration_sent_text_by_text_is_never_held(alice: SessionGuard) -> None:
    assert run(alice, TABLE) == "allow"
    assert run(alice, BUMP) == "allow"  # writes only its own table: no rows_over
    assert run(alice, STAMP) == "allow"
    assert run(alice, TRIGGER) == "allow"  # binds the body it judged
    assert run(alice, "CREATE INDEX counters_n ON public.counters (n)") == "allow"
    assert run(alice, "INSERT INTO public.counters (id) VALUES (1), (2)") == "allow"
    assert run(alice, "COMMENT ON FUNCTION bump(int) IS 'x'") == "allow"


def test_the_same_in_one_transaction(alice: SessionGuard) -> None:
    for text in ("BEGIN", TABLE, STAMP):
        alice.judge(text)
        started = alice.started(text)
        if started is not None:
            alice.finished(started)
        alice.memory.ready(b"T")
    assert alice.judge(TRIGGER).action == "allow"
    alice.memory.rolled_back()  # ROLLBACK: neither the table nor the function is there
    assert alice.judge(TRIGGER).action == "review"
    assert alice.judge(BUMP).action == "review"


@pytest.mark.parametrize("between", [
    "SET search_path = other, public",
    "SELECT set_config('search_path', 'pg_temp, public', false)",
    "RESET ALL",
    "DISCARD ALL",
    "ALTER FUNCTION stamp() RENAME TO old_stamp",
    "ALTER SCHEMA public RENAME TO p2",
    "CREATE SCHEMA alice",  # "$user" comes first in the default search_path
    "SELECT some_function()",
    "UPDATE orders SET note = 'x' WHERE id = 1",  # another table's triggers may run
    "INSERT INTO counters (id) VALUES (now()::text::int)",  # a call
    "CALL p()",
    "DO $$BEGIN NULL; END$$",
    "PREPARE q AS SELECT 1",
    "EXECUTE q",
    "COMMIT",  # deferred triggers of what ran before
])
def test_what_could_change_a_name_forgets(alice: SessionGuard, between: str) -> None:
    run(alice, TABLE)
    run(alice, STAMP)
    run(alice, between)
    assert alice.judge(TRIGGER).action == "review"
    assert alice.judge(BUMP).action == "review"


def test_what_failed_is_not_remembered(alice: SessionGuard) -> None:
    run(alice, TABLE, ok=False)  # "already exists": someone else's table
    assert run(alice, BUMP) == "review"
    run(alice, STAMP, ok=False)
    assert alice.judge(TRIGGER).action == "review"


@pytest.mark.parametrize("table", [
    "CREATE TABLE IF NOT EXISTS public.counters (id int PRIMARY KEY, n int)",  # maybe not ours
    "CREATE TEMP TABLE counters (id int PRIMARY KEY, n int)",  # shadows a permanent one
    "CREATE TABLE public.counters PARTITION OF all_counters FOR VALUES IN (1)",
    "CREATE TABLE counters (id int PRIMARY KEY, n int)",  # another spelling
    'CREATE TABLE "public.counters" (id int PRIMARY KEY, n int)',  # one name with a dot
    'CREATE TABLE public."Counters" (id int PRIMARY KEY, n int)',
])
def test_only_a_table_surely_created_is_own(alice: SessionGuard, table: str) -> None:
    run(alice, table)
    assert alice.judge(BUMP).action == "review"


def test_a_function_that_also_writes_another_table_is_held(alice: SessionGuard) -> None:
    run(alice, TABLE)
    both = BUMP.replace("END$$", "UPDATE orders SET note = 'x' WHERE id > i; END$$")
    judged = alice.judge(both)
    assert (judged.action, judged.rule) == ("review", "review-big-writes")


def test_other_rules_still_apply_to_own_tables(alice: SessionGuard) -> None:
    run(alice, TABLE)
    assert alice.judge(BUMP.replace("WHERE id = i", "")).rule == "review-unbounded-writes"
    assert alice.judge(BUMP.replace("UPDATE public.counters SET n = n + 1 WHERE id = i",
                                    "EXECUTE 'DROP TABLE ' || i")).action == "block"
    assert alice.judge("DROP TABLE counters").action == "block"


def test_a_session_with_its_own_search_path_matches_qualified_names_only(
        alice: SessionGuard) -> None:
    alice.qualified_only = True
    run(alice, TABLE)
    body = STAMP
    run(alice, body)
    assert alice.judge(TRIGGER).rule == "review-opaque-code"
    run(alice, body.replace("stamp()", "public.stamp()"))
    assert alice.judge(TRIGGER.replace("stamp()", "public.stamp()")).action == "allow"
    # A body's table named without its schema may mean another table under another
    # search_path: not the session's own.
    assert alice.judge(BUMP.replace("public.counters", "counters")).rule == "review-big-writes"


def test_forgetting_is_in_the_order_statements_run(alice: SessionGuard) -> None:
    """Judged, then overtaken: a text judged before a forgetting one adds nothing when it
    completes after it (a pipeline)."""
    run(alice, TABLE)
    started = alice.started(STAMP)
    alice.judge(STAMP)
    alice.started("SELECT some_function()")  # sent behind it
    assert started is not None
    alice.finished(started)
    assert alice.judge(TRIGGER).rule == "review-opaque-code"
    again = alice.started(STAMP)
    assert again is not None
    alice.finished(again)
    # Its body now, but the table is no longer known to be the session's own.
    assert alice.judge(TRIGGER).rule == "review-big-writes"


# --- what issue 12's last round left open: stored code enabled, objects handed over ----------


@pytest.mark.parametrize("sql", [
    "ALTER TABLE orders ENABLE TRIGGER audit",
    "ALTER TABLE orders ENABLE TRIGGER ALL",
    "alter table only orders enable trigger user",
    "ALTER TABLE orders ENABLE RULE keep",
    "ALTER TABLE orders ADD COLUMN z int, ENABLE TRIGGER audit",
    "ALTER EVENT TRIGGER e ENABLE",
    "ALTER EVENT TRIGGER e ENABLE ALWAYS",
])
def test_enabling_stored_code_is_opaque(alice: SessionGuard, sql: str) -> None:
    """A disabled trigger or rule may bind code the gateway never judged: enabling it runs
    that code on others' writes."""
    judged = alice.judge(sql)
    assert (judged.action, judged.rule) == ("review", "review-opaque-code")


@pytest.mark.parametrize("sql", [
    "ALTER TABLE orders OWNER TO mallory",
    "ALTER VIEW v OWNER TO mallory",
    "ALTER FUNCTION f() OWNER TO mallory",
    "ALTER SCHEMA public OWNER TO mallory",
    "ALTER SEQUENCE s OWNER TO CURRENT_ROLE",
    "REASSIGN OWNED BY gatewatch TO mallory",
])
def test_handing_objects_over_is_blocked(alice: SessionGuard, sql: str) -> None:
    """A new owner may drop or change the object outside the gateway."""
    assert alice.judge(sql).rule == "no-role-or-grant-changes"


# --- the outside attack on the memory (issue 12, round 4) -----------------------------------


@pytest.mark.parametrize("table", ['CREATE TABLE "Orders" (id int)',
                                   'CREATE TABLE "ORDERS" (id int)',
                                   'CREATE TABLE public."Orders" (id int)',
                                   'CREATE TABLE "public.orders" (id int)'])
def test_a_quoted_name_is_not_another_table_s(alice: SessionGuard, table: str) -> None:
    """"Orders" is not orders: writing orders is not writing the session's own table."""
    run(alice, table)
    body = "$$BEGIN DELETE FROM orders WHERE id > 0; END$$"
    judged = alice.judge(f"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS {body}")
    assert judged.rule == "review-big-writes"
    run(alice, TABLE.replace("public.counters", 'public."Counters"'))
    assert alice.judge(BUMP.replace("public.counters", 'public."Counters"')).rule == (
        "review-big-writes")


def test_writes_that_run_now_are_counted_even_on_own_tables(alice: SessionGuard) -> None:
    """Another session may make the session's table a parent of others' rows (INHERIT,
    ATTACH PARTITION): what runs now is counted at run time, whatever its table."""
    run(alice, TABLE)
    judged = alice.judge("UPDATE public.counters SET n = n + 1 WHERE id > 0")
    assert judged.verdict.rows_over == 100


@pytest.mark.parametrize("before", [
    "SET search_path = evil, public",
    "CREATE SCHEMA gatewatch",  # "$user" first in the default search_path
])
def test_a_body_s_unqualified_table_after_a_search_path_change_is_not_own(
        alice: SessionGuard, before: str) -> None:
    run(alice, before)
    run(alice, TABLE.replace("public.counters", "orders"))
    body = "$$BEGIN UPDATE orders SET n = 0 WHERE id > 0; END$$"
    judged = alice.judge(f"CREATE FUNCTION public.wipe() RETURNS void LANGUAGE plpgsql AS {body}")
    assert judged.rule == "review-big-writes"


def test_a_body_with_its_own_search_path_is_not_own(alice: SessionGuard) -> None:
    run(alice, TABLE)
    judged = alice.judge("CREATE FUNCTION f() RETURNS void LANGUAGE sql SET search_path = public "
                         "AS $$ UPDATE counters SET n = 0 WHERE id > 0 $$")  # unqualified
    assert judged.rule == "review-big-writes"


def test_a_table_that_inherits_is_not_own(alice: SessionGuard) -> None:
    run(alice, "CREATE TABLE public.counters (id int) INHERITS (orders)")
    assert alice.judge(BUMP).rule == "review-big-writes"


@pytest.mark.parametrize("created", ['"public.purge"()', '"Public".purge()'])
def test_a_quoted_function_name_is_not_a_qualified_one(alice: SessionGuard, created: str) -> None:
    """"public.purge" is one name: a trigger binding public.purge() binds another function."""
    run(alice, TABLE)
    run(alice, f"CREATE FUNCTION {created} RETURNS trigger LANGUAGE plpgsql AS "
               "$$BEGIN RETURN NULL; END$$")
    judged = alice.judge("CREATE TRIGGER t AFTER INSERT ON public.counters FOR EACH STATEMENT "
                         "EXECUTE FUNCTION public.purge()")
    assert judged.rule == "review-opaque-code"


@pytest.mark.parametrize(("sql", "rule"), [
    ("UPDATE pg_catalog.pg_class SET relname = 'gone' WHERE relname = 'products'",
     "no-alter-system"),
    ("UPDATE pg_authid SET rolsuper = true WHERE rolname = 'gatewatch'", "no-alter-system"),
    ("delete from PG_CATALOG.pg_class where oid = 1", "no-alter-system"),
    ("ALTER DATABASE shop SET statement_timeout = '1ms'", "no-alter-system"),
    ("ALTER DATABASE postgres RENAME TO postgres_gone", "no-alter-system"),
    ("ALTER DATABASE shop SET search_path = pg_temp, public", "no-alter-system"),
    ("CREATE SUBSCRIPTION s CONNECTION 'host=elsewhere' PUBLICATION p", "no-alter-system"),
    ("CREATE PUBLICATION p FOR ALL TABLES", "no-alter-system"),
    ("SELECT pg_switch_wal()", "no-backend-control"),
    ("SELECT pg_stat_reset()", "no-backend-control"),
    ("CREATE RULE r AS ON UPDATE TO products DO INSTEAD NOTHING",
     "review-destructive-alter-table"),
    ("ALTER TABLE orders INHERIT pz", "review-destructive-alter-table"),
    ("ALTER TABLE p ATTACH PARTITION orders FOR VALUES IN (1)", "review-destructive-alter-table"),
    ("CLUSTER orders", "review-destructive-alter-table"),
    ("VACUUM FULL orders", "review-destructive-alter-table"),
])
def test_what_the_fourth_round_found_in_the_example_policy(alice: SessionGuard, sql: str,
                                                           rule: str) -> None:
    """Catalogs written directly, other databases and their defaults, replication, writes a
    rule silently drops, another table's rows brought under one (INHERIT, ATTACH), rewrites
    that lock a table: not allowed unseen."""
    assert alice.judge(sql).rule == rule
