"""Statement texts as recorded: password literals always masked, detected literals masked."""

from __future__ import annotations

import pytest

from engine.masking.masker import ValueMasker
from engine.masking.statements import mask_statement

CARD = "4111111111111111"


@pytest.mark.parametrize("sql", [
    "ALTER ROLE bob PASSWORD 'hunter2'",
    "alter user bob with encrypted password 'hunter2' valid until 'infinity'",
    "CREATE ROLE bob LOGIN PASSWORD 'hunter2'",
    "create user bob password E'hunter2'",
    "CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password 'hunter2')",
    "alter role bob password $$hunter2$$",
    "select 1; alter role bob password 'hunter2'; select 2",
])
@pytest.mark.parametrize("values", [None, ValueMasker()])
def test_passwords_of_role_statements_are_always_masked(sql: str,
                                                        values: ValueMasker | None) -> None:
    masked, fired = mask_statement(sql, values)
    assert "hunter2" not in masked and "password" in fired
    assert masked.lower().startswith(sql.lower()[:10])


@pytest.mark.parametrize("sql", [
    f"insert into cards values ('{CARD}')",
    f"insert into cards values ({CARD})",
    f"insert into cards values (E'{CARD}')",
    f"insert into cards values ($${CARD}$$)",
    f"insert into cards values ('{CARD[:4]}' || '{CARD[4:]}')",
    f"insert into cards values (concat('{CARD[:8]}', '{CARD[8:]}'))",
    f"select * from t where note = 'card {CARD} expires'",
    f"-- {CARD}\nselect 1",
    "update people set email = 'ada.lovelace1@example.com'",
    # Escapes and continuations the server decodes (outside attack on issue 14): the record
    # must not keep what the detectors would find once decoded.
    f"insert into cards values (E'{CARD[:4]}\\061{CARD[5:]}')",
    f"insert into cards values (e'\\x34\\x31\\x31{CARD[3:]}')",
    f"insert into cards values (E'\\u0034{CARD[1:]}')",
    f"insert into cards values (U&'\\0034{CARD[1:]}')",
    f"insert into cards values (U&'\\+000034{CARD[1:]}')",
    f"insert into cards values ('{CARD[:4]}'\n'{CARD[4:]}')",
    "update people set email = E'ada.lovelace1\\x40example.com'",
])
def test_literals_the_detectors_find_are_masked(sql: str) -> None:
    masked, fired = mask_statement(sql, ValueMasker())
    assert CARD not in masked and "ada.lovelace1@example.com" not in masked and fired, masked


@pytest.mark.parametrize("sql", ["select 1", "select 'plain', 42, 3.5 from t where x = $1",
                                 "select 'it''s' as q", "selec 'broken"])
def test_texts_without_secrets_are_unchanged(sql: str) -> None:
    assert mask_statement(sql, ValueMasker()) == (sql, [])


def test_non_ascii_text_keeps_its_place() -> None:
    masked, _ = mask_statement(f"select 'été', '{CARD}', 'ñ'", ValueMasker())
    assert masked.startswith("select 'été', '") and masked.endswith("'ñ'") and CARD not in masked
