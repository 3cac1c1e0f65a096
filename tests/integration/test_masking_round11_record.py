"""Issue 14, the eleventh outside attack, the record: values for masked columns passed as
arguments of ``EXECUTE p('…')``, as Bind parameters of ``execute p($1)``, or of a function
whose body names a masked column (``select f('…')``) were stored in clear in
``statements.text``/``params`` and ``audit.body``, while ``… where national_id = '…'`` was
stored masked. A literal or parameter that reaches a masked column through a prepared
statement or a function (or where the gateway cannot tell) is recorded masked now."""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration


def _recorded(gateway: Gateway, marker: str, count: int) -> list[tuple[str, str | None, str]]:
    """The statements, parameters and audit bodies recorded for texts holding ``marker``."""
    def found(store: Any) -> list[tuple[str, str | None, str]] | None:
        rows = store.conn.execute(
            "SELECT s.text, s.params, coalesce((SELECT group_concat(a.body, ' ') FROM audit a"
            " WHERE a.body LIKE '%' || ?  || '%'), '') FROM statements s"
            " WHERE s.text LIKE '%' || ? || '%'", (marker, marker)).fetchall()
        return [tuple(r) for r in rows] if len(rows) >= count else None
    return gateway.wait_for(found)


def test_arguments_of_execute_and_of_functions_naming_a_masked_column_are_masked(
        gateway: Gateway) -> None:
    tag = secrets.token_hex(3)
    values = [f"NIDX{tag}{i}" for i in range(5)]
    with psycopg.connect(gateway.target.direct(), autocommit=True) as direct:
        direct.execute(f"create or replace function gw14r11_by_nid_{tag}(text) returns"
                       " setof int language sql as"
                       " 'select id from customers where national_id = $1'")
        direct.execute(f"create or replace function gw14r11_via_{tag}(t text) returns"
                       f" setof int language sql as 'select gw14r11_by_nid_{tag}(t)'")
        direct.execute(f"create or replace function gw14r11_clean_{tag}(t text) returns text"
                       " language sql as 'select upper(t)'")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"prepare gw14r11_p{tag} as select id from customers where"
                     " national_id = $1")
        conn.execute(f"execute gw14r11_p{tag}('{values[0]}')")
        with pytest.raises(psycopg.errors.IndeterminateDatatype):
            # (PostgreSQL types no parameter of a utility statement: it fails, recorded)
            conn.execute(f"execute gw14r11_p{tag}(%s::text)", [values[1]])
        conn.execute(f"select gw14r11_by_nid_{tag}('{values[2]}')")
        conn.execute(f"select gw14r11_by_nid_{tag}(%s)", [values[3]])
        conn.execute(f"select gw14r11_via_{tag}('{values[4]}')")  # one function further
        conn.execute(f"select gw14r11_clean_{tag}('kept-{tag}')")
    rows = _recorded(gateway, tag, 7)
    recorded = " ".join(f"{t} {p} {a}" for t, p, a in rows)
    assert not [v for v in values if v in recorded], rows
    assert f"execute gw14r11_p{tag}('****')" in recorded, rows
    # A function whose body names no masked column keeps its literal.
    assert f"kept-{tag}" in recorded, rows


def test_literals_for_a_view_or_a_table_holding_masked_values_are_masked(
        gateway: Gateway) -> None:
    """A view over the column named otherwise, and a table written from it through the
    gateway (its taint), carry its values too."""
    tag = secrets.token_hex(3)
    values = [f"NIDV{tag}{i}" for i in range(3)]
    with psycopg.connect(gateway.target.direct(), autocommit=True) as direct:
        direct.execute(f"create or replace view gw14r11_v_{tag} as select id,"
                       " national_id as n from customers")
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        conn.execute(f"create table gw14r11_copy_{tag} (n text)")
        conn.execute(f"insert into gw14r11_copy_{tag} select national_id from customers")
        conn.execute(f"select id from gw14r11_v_{tag} where n = '{values[0]}'")
        conn.execute(f"select count(*) from gw14r11_copy_{tag} where n = %s", [values[1]])
        conn.execute(f"insert into gw14r11_copy_{tag} values ('{values[2]}')")
        conn.execute(f"select 'kept-{tag}'")
    rows = _recorded(gateway, tag, 6)
    recorded = " ".join(f"{t} {p} {a}" for t, p, a in rows)
    assert not [v for v in values if v in recorded], rows
    assert f"kept-{tag}" in recorded, rows
    with psycopg.connect(gateway.target.direct(), autocommit=True) as direct:
        direct.execute(f"drop view gw14r11_v_{tag}; drop table gw14r11_copy_{tag}")
