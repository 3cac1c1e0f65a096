"""COPY lines split as PostgreSQL spells them, and values spelled back so they read the same."""

from __future__ import annotations

import pytest

from engine.masking.copyline import CopyFormat, Field, copy_format, spell, split

CSV_R = CopyFormat(csv=True, delimiter="r", null="", quote="|", escape="|")


def options(**kw: str | None) -> dict[str, object]:
    return {"options": [{"DefElem": {"defname": k, **({"arg": {"String": {"sval": v}}}
                                                      if v is not None else {})}}
                        for k, v in kw.items()]}


def test_options_are_read_from_the_statement() -> None:
    assert copy_format(options(format="csv", delimiter="r", quote="|")) == CSV_R
    assert copy_format(options(format="text", delimiter="|", null="x")) == CopyFormat(
        delimiter="|", null="x")
    assert copy_format(options(format="csv", header=None)).header  # type: ignore[union-attr]


@pytest.mark.parametrize("node", [
    options(format="binary"), options(format="csv", encoding="SJIS"),
    options(format="csv", some_new_option="1"), options(format="text", quote="|"),
    options(format="csv", delimiter="ab"),
])
def test_options_the_gateway_cannot_read_are_refused(node: dict[str, object]) -> None:
    assert copy_format(node) is None


def test_csv_with_its_own_quote_and_delimiter() -> None:
    line = "|Mary Smith|r4111111111111111rr|a||b|"
    assert split(line, CSV_R) == [Field("|Mary Smith|", "Mary Smith"),
                                  Field("4111111111111111", "4111111111111111"),
                                  Field("", None), Field("|a||b|", "a|b")]
    assert split("|open", CSV_R) is None


def test_text_with_escaped_delimiters_and_its_null() -> None:
    fmt = CopyFormat(delimiter="|", null="x")
    assert split("a\\|b|x|\\x41\\n", fmt) == [Field("a\\|b", "a|b"), Field("x", None),
                                             Field("\\x41\\n", "A\n")]
    assert split("trailing\\", fmt) is None


@pytest.mark.parametrize("fmt", [CSV_R, CopyFormat(), CopyFormat(delimiter="|", null="x"),
                                 CopyFormat(csv=True, delimiter="1", quote="4", escape="|")])
@pytest.mark.parametrize("value", ["", "plain", "r|\n\\1|4", "****1111", "x"])
def test_a_spelled_value_reads_back_as_itself(fmt: CopyFormat, value: str) -> None:
    if not fmt.csv and value == fmt.null:
        return  # text COPY spells such a value as its NULL too (PostgreSQL's own ambiguity)
    fields = split(spell(value, fmt) + fmt.delimiter + spell("b", fmt), fmt)
    assert fields is not None and [f.value for f in fields] == [value, "b"]
