"""Issue 14, outside attack round 13 through the PostgreSQL gateway: pieces of a masked value
written back into a column a rule masks came back under that column's rule — a hashed column
hashed one character of a national id like the candidate characters written beside it, and
the id was read off as from a dictionary. A column that holds values written from masked
columns (by an earlier statement, or by the statement in progress, which its RETURNING
shows) is masked whole."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.integration

CANDIDATES = "0123456789-"


def _table(gateway: Gateway) -> tuple[str, str]:
    """A table of people with a hashed national id, made on the target directly (standing for
    an existing one), and its first row's national id as stored."""
    name = f"gw14r13_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(gateway.target.superuser(), dbname="shop", autocommit=True) as admin:
        admin.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, national_id text)")
        admin.execute(f"INSERT INTO {name} VALUES (1, '928-04-1052')")
        admin.execute(f"GRANT ALL ON {name} TO PUBLIC")
    return name, "928-04-1052"


def _looked_up(value: object, candidates: dict[str, object]) -> list[str]:
    """The candidates whose masked form is the piece's, when that singles some out."""
    if len(set(map(str, candidates.values()))) == 1:
        return []  # every candidate reads alike: nothing to look up
    return [k for k, v in candidates.items() if str(v) == str(value)]


@pytest.mark.parametrize("source", ["own", "customers"])
def test_a_piece_written_into_a_hashed_column_is_no_dictionary_entry(
        gateway: Gateway, source: str) -> None:
    name, _ = _table(gateway)
    value = ("(SELECT national_id FROM customers WHERE id = 1)" if source == "customers"
             else "national_id")
    with psycopg.connect(gateway.target.superuser(), dbname="shop") as admin:
        truth = admin.execute("SELECT national_id FROM customers WHERE id = 1").fetchone()
    assert truth is not None
    first = str(truth[0])[0] if source == "customers" else "9"
    with psycopg.connect(gateway.dsn("shop_masked")) as conn:
        returned = conn.execute(
            f"UPDATE {name} SET national_id = substr({value}, 1, 1) WHERE id = 1 "
            "RETURNING national_id").fetchone()
        for k, ch in enumerate(CANDIDATES):
            conn.execute(f"INSERT INTO {name} VALUES (%s, %s)", [100 + k, ch])
        rows = dict(conn.execute(f"SELECT id, national_id FROM {name}").fetchall())
        conn.rollback()
    assert returned is not None
    candidates = {ch: rows[100 + k] for k, ch in enumerate(CANDIDATES)}
    assert first in CANDIDATES
    assert _looked_up(returned[0], candidates) == [], (returned, candidates)
    assert _looked_up(rows[1], candidates) == [], (rows[1], candidates)


def test_a_plain_read_of_an_untouched_hashed_column_is_still_hashed(gateway: Gateway) -> None:
    name, _ = _table(gateway)
    with psycopg.connect(gateway.dsn("shop_masked"), autocommit=True) as conn:
        row = conn.execute(f"SELECT national_id FROM {name} WHERE id = 1").fetchone()
    assert row is not None and str(row[0]).startswith("h:"), row


def test_a_positional_insert_into_a_table_with_a_masked_column_is_recorded_masked(
        gateway: Gateway) -> None:
    """The rule ``national_id`` has no table part, and ``INSERT INTO staff VALUES (…)`` names
    neither the column nor a rule's table: its literal and its parameter were recorded in
    clear (round 13). A table that has a column a rule names counts as named."""
    name, _ = _table(gateway)
    literal, parameter = "ZQ-7731-AB", "ZQ-8842-CD"
    with psycopg.connect(gateway.dsn("shop_masked", application_name="positional"),
                         autocommit=True) as conn:
        conn.execute(f"SELECT count(*) FROM {name}")  # the catalog reads the table
        conn.execute(f"INSERT INTO {name} VALUES (7, '{literal}')")
        conn.execute(f"INSERT INTO {name} VALUES (8, %s)", [parameter])

    def recorded(store: Any) -> list[tuple[str, str | None]] | None:
        found = store.conn.execute("SELECT text, params FROM statements WHERE text LIKE ?",
                                   [f"INSERT INTO {name} VALUES%"]).fetchall()
        return found if len(found) >= 2 else None

    rows = gateway.wait_for(recorded)
    assert not [r for r in rows if literal in r[0] or parameter in str(r[1])], rows
    audit = gateway.wait_for(lambda s: s.conn.execute(
        "SELECT group_concat(body, ' ') FROM audit").fetchone())
    assert literal not in str(audit) and parameter not in str(audit)
