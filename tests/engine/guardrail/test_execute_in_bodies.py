"""``EXECUTE name`` inside stored code runs whatever the name means when the code runs: opaque.
(At the top level the relay judges it as what the name holds, every time.)"""

from __future__ import annotations

import pytest

from engine.guardrail.classify import classify

BODIES = [
    "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'EXECUTE x'",
    "CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC EXECUTE x; END",
    "CREATE PROCEDURE p() LANGUAGE sql AS $$EXECUTE x(1)$$",
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN EXECUTE 'EXECUTE x'; END$$",
    "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS "
    "$$BEGIN PERFORM 1; EXECUTE 'execute  x ( 2 )'; RETURN 1; END$$",
    "CREATE OR REPLACE FUNCTION f() RETURNS SETOF t LANGUAGE sql AS "
    "'EXPLAIN ANALYZE EXECUTE x'",
]


@pytest.mark.parametrize("sql", BODIES)
def test_execute_inside_stored_code_is_opaque(sql: str) -> None:
    [facts] = classify(sql)
    assert "OPAQUE BODY" in facts.kinds, facts.describe()


def test_execute_at_the_top_level_is_left_to_the_relay() -> None:
    [facts] = classify("EXECUTE x(1)")
    assert "EXECUTE" in facts.kinds and "OPAQUE BODY" not in facts.kinds
