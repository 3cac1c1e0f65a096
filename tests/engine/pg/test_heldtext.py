"""What a held statement's text may hold, and what may come in front of it (round 18)."""

from __future__ import annotations

import pytest

from engine.guardrail import Guard, GuardrailSettings
from engine.pg import heldtext

HELD = "UPDATE orders SET created_at = '03/04/2024 12:00'"


@pytest.mark.parametrize("front", [
    # Fetches the cursor c, whose query may call set_config (round 18 F5).
    "SELECT cursor_to_xml('c', 1, false, false, '')",
    "SELECT cursor_to_xmlschema('c', false, false, '')",
    # Run SQL given as text (those reading a table by name were refused already: a read).
    "SELECT query_to_xml('SELECT 1', false, false, '')",
    "SELECT query_to_xml_and_xmlschema('SELECT 1', false, false, '')",
    "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')",
    # Change something, or are not known to change nothing.
    "SELECT nextval('s')",
    "SELECT pg_advisory_lock(1)",
    "SELECT random()",
    "SELECT pg_notify('c', 'x')",
    "SELECT lo_unlink(1)",
    # A type's input function called by hand runs a domain's CHECK.
    "SELECT domain_in('5', 'posint'::regtype, -1)",
    # So does a value converted into a user's type, however it is named (a cast was
    # refused already).
    "SELECT x FROM jsonb_to_record('{\"x\": 1}') AS r(x public.posint)",
    "SELECT x FROM jsonb_to_record('{\"x\": 1}') AS r(x posint)",
    "SELECT * FROM XMLTABLE('/a' PASSING '<a/>' COLUMNS x posint PATH '.')",
    # A table made of a prepared query runs it, whatever it calls (round 19).
    "CREATE TEMP TABLE z AS EXECUTE sc",
    "CREATE TABLE z AS EXECUTE sc(1)",
])
def test_what_may_run_other_code_cannot_come_in_front(front: str) -> None:
    assert heldtext.unseen_before(f"{front}; {HELD}", 1)
    for pure in ALLOWED:  # what runs only PostgreSQL's own code still may
        assert not heldtext.unseen_before(f"{pure}; {HELD}", 1), pure


ALLOWED = ("SELECT 1", "BEGIN", "SAVEPOINT a", "SELECT now(), lower('X'), 1 + 2, '{1}'::int[]",
           "SELECT pg_catalog.upper('x'), length('abc'), current_setting('datestyle')",
           "CREATE TABLE t (a int)")


def test_a_session_that_shadowed_pg_catalog_may_call_a_user_s_code_by_any_name() -> None:
    assert heldtext.unseen_before(f"SELECT lower('X'); {HELD}", 1, True)
    assert heldtext.unseen_before(f"SELECT 'x'::text; {HELD}", 1, True)
    assert not heldtext.unseen_before(f"SELECT 'x'::text; {HELD}", 1)


def test_a_user_s_overload_of_a_name_in_front_counts() -> None:
    """``lower(5)`` runs ``public.lower(int)`` when the target has one: the names in front
    are asked of the catalog, and a name it never read counts (fail closed)."""
    names = heldtext.front_names(f"SELECT lower(5), 1 + 2; {HELD}", 1)
    assert names == {"lower", "operator:+"}
    guard = Guard((), GuardrailSettings()).for_session("c", "u", frozenset())
    answers: dict[str, bool | None] = {"lower": False, "operator:+": False}
    guard.overloads = lambda name, fresh: answers.get(name)
    assert not guard.may_be_users(names)
    answers["lower"] = True
    assert guard.may_be_users(names)
    answers["lower"] = None  # never read
    assert guard.may_be_users(names)
    assert not guard.may_be_users(frozenset())


FORGED = [
    # Round 18 F8: a no-break space in front of --, a Cyrillic a in the name.
    '\n\u00a0-- g\u0430tewatch: settings in force: datestyle = SQL, DMY',
    # Other blanks and invisible characters in front; any non-ASCII on such a line.
    '\n\u3000-- note: settings in force: datestyle = SQL, DMY',
    '\n\u200b-- note \u00e9',
    '\n\u2060\u3164-- settings',
    '\n\u2003\u2014\u2014 settings in force: datestyle = SQL, DMY',  # em dashes for --
    '\n-- gate watch: settings in force',  # the name, split
]


@pytest.mark.parametrize("line", FORGED)
@pytest.mark.parametrize("where", ["identifier", "string", "dollar"])
def test_a_line_that_may_pass_for_a_note_is_refused_wherever_it_is(line: str,
                                                                    where: str) -> None:
    text = {"identifier": f'{HELD} RETURNING id AS "{line}"',
            "string": f"{HELD} WHERE note = '{line}'",
            "dollar": f"{HELD} WHERE note = $q${line}$q$"}[where]
    assert heldtext.imitates_notes(text)
    assert heldtext.imitates_notes(f"{HELD} /* {line} */")  # (a comment's were already)


@pytest.mark.parametrize("name", [
    "g\u0430tewatch", "g4tewatch", "gate\u200bwatch", "\u0261atewatch",
    "g\u00e0tewatch", "gat\u0435w\u0430t\u0441h",
])
def test_the_gateway_s_name_is_matched_by_its_skeleton_anywhere(name: str) -> None:
    assert heldtext.imitates_notes(f"{HELD} WHERE note = '{name}'")
    for text in ORDINARY:  # and ordinary text is not taken for a note
        assert not heldtext.imitates_notes(text), text


ORDINARY = (HELD, f"{HELD} -- fix the import, ticket OPS-88", f"{HELD} WHERE name = 'Zo\u00eb'",
            f"{HELD} WHERE note = 'caf\u00e9 -- ok'", f"{HELD} WHERE gate = 1 OR watch = 2",
            f"{HELD}\n-- a plain comment line\n")


