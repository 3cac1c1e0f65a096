"""``querytext``: functions that run SQL handed to them as text.

A constant argument is judged as the SQL it is (its facts are the calling statement's, since it
runs when the statement runs); anything else is DYNAMIC SQL.
"""

from __future__ import annotations

import pytest

from engine.guardrail import querytext
from engine.guardrail.classify import Facts, classify


def one(sql: str) -> Facts:
    facts = classify(sql)
    assert len(facts) == 1
    return facts[0]


RUN_THEIR_TEXT = [
    "SELECT query_to_xml('{q}', true, true, '')",
    "SELECT pg_catalog.query_to_xml('{q}', false, false, 'ns')",
    "SELECT query_to_xmlschema('{q}', true, true, '')",
    "SELECT query_to_xml_and_xmlschema('{q}', true, true, '')",
    "SELECT query_to_xml(query => '{q}', nulls => true, tableforest => true, targetns => '')",
    "SELECT query_to_xml(nulls => true, query => '{q}', tableforest => true, targetns => '')",
    "SELECT query_to_xml('{q}'::text, true, true, '')",
    "SELECT query_to_xml(CAST('{q}' AS text), true, true, '')",
    "SELECT query_to_xml(E'{q}', true, true, '')",
    "SELECT * FROM ts_stat('{q}')",
    "SELECT * FROM ts_stat('{q}', 'ab')",
    "SELECT * FROM ts_stat(query => '{q}')",
    "SELECT ts_rewrite('a'::tsquery, '{q}')",
    "SELECT * FROM crosstab('{q}') AS ct(a text, b text)",
    "SELECT * FROM crosstab('{q}', 'SELECT 1') AS ct(a text, b text)",
    "SELECT * FROM crosstab('SELECT 1', '{q}') AS ct(a text, b text)",
    "SELECT * FROM crosstab('{q}', 2) AS ct(a text, b text)",
    "SELECT * FROM crosstab3('{q}')",
    "SELECT dblink('{q}')",
    "SELECT * FROM dblink('dbname=shop', '{q}') AS d(a int)",
    "SELECT * FROM dblink('{q}', false) AS d(a int)",
    "SELECT * FROM dblink('c', '{q}', true) AS d(a int)",
    "SELECT dblink_exec('{q}')",
    "SELECT dblink_exec('dbname=shop', '{q}')",
    "SELECT dblink_open('cur', '{q}')",
    "SELECT dblink_open('conn', 'cur', '{q}')",
    "SELECT dblink_send_query('conn', '{q}')",
    "SELECT 1 WHERE EXISTS (SELECT query_to_xml('{q}', true, true, ''))",
    "WITH x AS (SELECT query_to_xml('{q}', true, true, '')) SELECT * FROM x",
    "UPDATE t SET a = query_to_xml('{q}', true, true, '')::text WHERE id = 1",
]


@pytest.mark.parametrize("template", RUN_THEIR_TEXT)
def test_a_constant_query_is_judged_as_the_sql_it_is(template: str) -> None:
    facts = one(template.format(q="SELECT pg_terminate_backend(42)"))
    assert "pg_terminate_backend" in facts.functions
    assert "DYNAMIC SQL" not in facts.kinds
    part = next(p for p in facts.parts if "pg_terminate_backend" in p.functions)
    assert not part.deferred  # it runs when the statement runs
    assert part.text == "SELECT pg_terminate_backend(42)"


@pytest.mark.parametrize("template", RUN_THEIR_TEXT)
def test_writes_and_drops_in_the_text_count(template: str) -> None:
    facts = one(template.format(q="DROP TABLE orders"))
    assert {"DROP", "DROP TABLE"} <= facts.kinds
    assert "orders" in facts.writes


@pytest.mark.parametrize("template", RUN_THEIR_TEXT)
def test_a_query_that_is_not_a_constant_is_dynamic_sql(template: str) -> None:
    for value in ("q", "$1", "'SELECT ' || 'pg_terminate_backend(42)'", "upper('select 1')",
                  "(SELECT q FROM u)", "format('%s', 'x')"):
        sql = template.replace("E'{q}'", value).replace("'{q}'", value)
        facts = one(sql)
        assert "DYNAMIC SQL" in facts.kinds, sql


def test_settings_changed_by_the_text_are_the_statements() -> None:
    facts = one("SELECT query_to_xml('SELECT set_config(''standard_conforming_strings'', "
                "''off'', false)', true, true, '')")
    assert facts.settings == {"standard_conforming_strings": "off"}


def test_a_query_that_does_not_parse_is_opaque() -> None:
    facts = one("SELECT query_to_xml('SELEC 1', true, true, '')")
    assert "OPAQUE BODY" in facts.kinds


def test_nested_query_strings() -> None:
    facts = one("SELECT query_to_xml('SELECT query_to_xml(''DROP TABLE t'', true, true, '''')',"
                " true, true, '')")
    assert "DROP TABLE" in facts.kinds


@pytest.mark.parametrize(("sql", "reads"), [
    ("SELECT table_to_xml('customers', true, true, '')", {"customers"}),
    ("SELECT table_to_xml('public.customers'::regclass, true, true, '')",
     {"public.customers"}),
    ("SELECT table_to_xmlschema(tbl => 'Customers', nulls => true, tableforest => true, "
     "targetns => '')", {"customers"}),
    ("SELECT table_to_xml_and_xmlschema('\"Odd\".t', true, true, '')", {"odd.t"}),
])
def test_a_table_read_whole_is_a_read(sql: str, reads: set[str]) -> None:
    facts = one(sql)
    assert reads <= facts.reads
    assert "DYNAMIC SQL" not in facts.kinds


@pytest.mark.parametrize("sql", [
    "SELECT table_to_xml(t, true, true, '') FROM names",
    "SELECT table_to_xml(16384, true, true, '')",
    "SELECT table_to_xml('t; DROP TABLE u', true, true, '')",
    "SELECT schema_to_xml('public', true, true, '')",
    "SELECT schema_to_xmlschema('public', true, true, '')",
    "SELECT schema_to_xml_and_xmlschema('public', true, true, '')",
    "SELECT database_to_xml(true, true, '')",
    "SELECT database_to_xmlschema(true, true, '')",
    "SELECT database_to_xml_and_xmlschema(true, true, '')",
    "SELECT * FROM connectby(rel, 'id', 'parent', '1', 0) AS t(a int, b int, c int)",
    "SELECT * FROM xpath_table('id', 'doc', 'docs', '/a', crit) AS t(id int, a text)",
])
def test_sql_built_where_the_gateway_cannot_see_is_dynamic(sql: str) -> None:
    assert "DYNAMIC SQL" in one(sql).kinds


@pytest.mark.parametrize(("sql", "hidden"), [
    ("SELECT * FROM connectby('tree', 'id', 'parent', '1', 0) AS t(a int, b int, c int)",
     None),
    ("SELECT * FROM connectby('tree', 'id', 'parent', 'pos', '1', 0) AS t(a int, b int, c int,"
     " d int)", None),
    ("SELECT * FROM connectby('tree; DROP TABLE orders; --', 'id', 'parent', '1', 0)"
     " AS t(a int, b int, c int)", "DROP TABLE"),
    ("SELECT * FROM connectby('tree', 'pg_terminate_backend(1)', 'parent', '1', 0)"
     " AS t(a int, b int, c int)", "pg_terminate_backend"),
    ("SELECT * FROM xpath_table('id', 'doc', 'docs', '/a', 'true; DELETE FROM orders')"
     " AS t(id int, a text)", "DELETE WITHOUT WHERE"),
    ("SELECT * FROM xpath_table('id', 'doc', 'docs', '/a', 'pg_terminate_backend(1)')"
     " AS t(id int, a text)", "pg_terminate_backend"),
])
def test_sql_pasted_from_names_is_pasted_the_same_way(sql: str, hidden: str | None) -> None:
    facts = one(sql)
    assert "DYNAMIC SQL" not in facts.kinds
    if hidden is None:
        assert not (facts.kinds & {"DROP", "DELETE"})
    else:
        assert hidden in facts.kinds | facts.functions


@pytest.mark.parametrize("sql", [
    "SELECT ts_rewrite('a'::tsquery, 'a'::tsquery, 'b'::tsquery)",  # not the query form
    "SELECT cursor_to_xml('c', 10, true, true, '')",  # fetches a cursor a judged DECLARE opened
    "SELECT query_to_xml_ish('DROP TABLE t')",
    "SELECT format('DROP TABLE %I', 't')",
    "SELECT 'query_to_xml(''DROP TABLE t'')'",
])
def test_other_functions_run_no_text(sql: str) -> None:
    facts = one(sql)
    assert not facts.kinds & {"DYNAMIC SQL", "DROP", "OPAQUE BODY"}


def test_names_list_is_what_runs_knows() -> None:
    for function in querytext.NAMES:
        assert querytext.runs(function, []) is not None
    assert querytext.runs("lower", []) is None
