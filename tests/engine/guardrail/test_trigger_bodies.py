"""A trigger is judged by a body only when that body is sure to be the one it binds (issue 12,
finding 4: a ``CREATE FUNCTION tf()`` that failed "already exists" left its harmless body
remembered, and ``CREATE TRIGGER … EXECUTE FUNCTION tf()`` was allowed although the real tf()
wiped a table).

The server stops a query string at its first error, so a trigger created after a CREATE
FUNCTION in the same text binds that function, provided the name means the same function in
both: the same schema-qualified name (an unqualified one depends on the search_path, where
pg_catalog comes first and pg_temp, a possible place of creation, is never looked in), no
input arguments (a trigger function is looked up with none), and nothing between them that
runs code or renames, moves or drops functions.
"""

from __future__ import annotations

import pytest

from engine.guardrail.classify import classify

HARMLESS = ("CREATE OR REPLACE FUNCTION public.tf() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN NEW.note := 'ok'; RETURN NEW; END$$")
WIPE = ("CREATE OR REPLACE FUNCTION public.tf() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN DELETE FROM v5; RETURN NEW; END$$")
TRIGGER = "CREATE TRIGGER t BEFORE INSERT ON v4 FOR EACH ROW EXECUTE FUNCTION public.tf()"


def last(sql: str) -> set[str]:
    return classify(sql)[-1].kinds


def test_the_body_created_in_the_same_text_is_the_one_judged() -> None:
    assert "OPAQUE BODY" not in last(f"{HARMLESS}; {TRIGGER}")
    assert {"DELETE", "DELETE WITHOUT WHERE"} <= last(f"{WIPE}; {TRIGGER}")
    # A later CREATE OR REPLACE in the same text is the one that counts.
    assert "DELETE" in last(f"{HARMLESS}; {WIPE}; {TRIGGER}")
    assert "DELETE" not in last(f"{WIPE}; {HARMLESS}; {TRIGGER}")
    # Statements that run nothing may come between (a new table, a comment, another trigger).
    between = ("CREATE TABLE v6 (id int); COMMENT ON TABLE v6 IS 'x'; "
               "CREATE TRIGGER t0 AFTER INSERT ON v6 EXECUTE FUNCTION public.tf()")
    assert "OPAQUE BODY" not in last(f"{HARMLESS}; {between}; {TRIGGER}")


def test_unqualified_on_both_sides_is_the_function_created() -> None:
    """Created and bound without a schema, under one search_path the session did not
    change: the name means the function just created (pg_catalog, first, has none of it)."""
    kinds = last(HARMLESS.replace("public.tf", "tf") + "; " + TRIGGER.replace("public.tf", "tf"))
    assert "OPAQUE BODY" not in kinds


@pytest.mark.parametrize("sql", [
    # The attack: the CREATE failed in an earlier text; its body means nothing now.
    TRIGGER,
    "CREATE TRIGGER t BEFORE INSERT ON v4 FOR EACH ROW EXECUTE FUNCTION tf()",
    # Unqualified on one side only: which function the name means depends on the search_path.
    HARMLESS.replace("public.tf", "tf") + "; " + TRIGGER,
    HARMLESS + "; " + TRIGGER.replace("public.tf", "tf"),
    # Unqualified on both, after a change of the search_path: with pg_temp first, the
    # function is created where no function is looked up.
    "SET search_path = pg_temp, public; " + HARMLESS.replace("public.tf", "tf") + "; "
    + TRIGGER.replace("public.tf", "tf"),
    "SELECT set_config('search_path', 'pg_temp,public', false); "
    + HARMLESS.replace("public.tf", "tf") + "; " + TRIGGER.replace("public.tf", "tf"),
    "DISCARD ALL; " + HARMLESS.replace("public.tf", "tf") + "; "
    + TRIGGER.replace("public.tf", "tf"),
    # A trigger function of pg_catalog's name is pg_catalog's, whatever was created.
    HARMLESS.replace("public.tf", "unique_key_recheck") + "; "
    + TRIGGER.replace("public.tf", "unique_key_recheck"),
    # Another schema, another name, another signature.
    HARMLESS + "; " + TRIGGER.replace("public.tf", "other.tf"),
    HARMLESS.replace("tf()", "tf(int)") + "; " + TRIGGER,
    HARMLESS.replace("tf()", "tf(a int DEFAULT 1)") + "; " + TRIGGER,
    # Something between that runs code or changes what the name means.
    f"{HARMLESS}; ALTER FUNCTION public.tf() RENAME TO old; "
    f"ALTER FUNCTION public.evil() RENAME TO tf; {TRIGGER}",
    f"{HARMLESS}; ALTER FUNCTION public.tf() SET SCHEMA x; {TRIGGER}",
    f"{HARMLESS}; ALTER SCHEMA public RENAME TO p2; {TRIGGER}",
    f"{HARMLESS}; SELECT public.rename_things(); {TRIGGER}",
    f"{HARMLESS}; INSERT INTO t VALUES (1); {TRIGGER}",
    f"{HARMLESS}; CALL p(); {TRIGGER}",
    f"{HARMLESS}; COMMIT; {TRIGGER}",
    f"{HARMLESS}; CREATE TABLE v7 PARTITION OF v8 FOR VALUES IN (1); {TRIGGER}",
    # A body that creates the function when it runs is not the text that creates the trigger.
    "CREATE FUNCTION public.g() RETURNS void LANGUAGE sql AS $b$"
    + HARMLESS.replace("$$", "$i$") + "$b$; " + TRIGGER,
    # An event trigger is judged the same way.
    "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION public.tf()",
    # A built-in trigger function is known only by its schema.
    "CREATE TRIGGER t BEFORE UPDATE ON v4 FOR EACH ROW "
    "EXECUTE FUNCTION suppress_redundant_updates_trigger()",
])
def test_a_body_that_may_not_be_the_one_bound_is_opaque(sql: str) -> None:
    assert "OPAQUE BODY" in last(sql)


def test_a_body_inside_stored_code_is_not_read_as_created_now() -> None:
    # In a SQL function's body, the statements run later: one created there and bound right
    # after is still matched (an error stops the body), one from the outer text is not.
    inner = (HARMLESS.replace("$$", "$i$") + "; " + TRIGGER)
    sql = f"CREATE FUNCTION public.g() RETURNS void LANGUAGE sql AS $b${inner}$b$"
    [facts] = classify(sql)
    triggers = [p for p in facts.parts if "CREATE TRIGGER" in p.kinds]
    assert triggers and "OPAQUE BODY" not in triggers[0].kinds
    outer = classify(f"{HARMLESS}; CREATE FUNCTION public.g() RETURNS void LANGUAGE sql "
                     f"AS $b${TRIGGER}$b$")[-1]
    assert "OPAQUE BODY" in outer.kinds
