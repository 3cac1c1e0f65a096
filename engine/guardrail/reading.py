"""The settings the gateway needs to read SQL exactly as the server does.

pglast parses with ``standard_conforming_strings = on`` and the gateway decodes text as UTF-8.
If a session turned the first off, or chose a client encoding whose multi-byte characters can
end in a backslash or quote byte (the ones PostgreSQL refuses as server encodings), the server
would split a query into statements differently from the guard — ``SELECT 'x\\'' ; DROP …``
would look like one string to one and a DROP to the other. So statements that change these
settings are refused, and a session the server reports in such a state (startup parameters,
``options``, role or database defaults) has every statement refused. Not configurable.
"""

from __future__ import annotations

RULE = "gateway-sql-reading"

# Client encodings PostgreSQL itself will not use as server encodings, for the same reason.
UNSAFE_ENCODINGS = frozenset({"sjis", "shift_jis_2004", "big5", "gbk", "uhc", "gb18030",
                              "johab", "shiftjis", "mskanji", "windows932", "win932",
                              "windows936", "win936", "windows949", "win949", "windows950",
                              "win950", "shift_jis", "cp932", "cp936", "cp949", "cp950"})
_SAFE_ENCODINGS_TO_SET = frozenset({"utf8", "unicode", "sqlascii"})
_ON = frozenset({"on", "true", "yes", "1", "t", "y"})
_ON_VALUES = _ON


def _normal(value: str | None) -> str:
    return (value or "").strip().lower().replace("-", "_").replace(" ", "")


# Settings that change what a statement's text means to the server, away from the value an
# approver reads it with (outside attack on issue 12: with transform_null_equals on, a held
# ``CASE WHEN NULL = NULL THEN 1 ELSE 2001 END`` read as 2001 and ran as 1): a setting → the
# only values a statement may set it to.
_MEANING = {"transform_null_equals": frozenset({"off", "false", "no", "0", "f", "n"}),
            "array_nulls": _ON_VALUES, "xmloption": frozenset({"content"}),
            "backslash_quote": frozenset({"safe_encoding", "off", "false", "no", "0"})}


def unsafe_change(settings: dict[str, str | None]) -> str | None:
    """Why changing ``settings`` (from a statement) would blind the guard, or None."""
    for name, value in settings.items():
        if name == "*":
            return "calls set_config with a setting name that is not a constant"
        allowed = _MEANING.get(name)
        if allowed is not None and (value is None or _normal(value) not in allowed):
            return (f"would set {name}, which changes what statements' text means from how "
                    "an approver reads it")
        if name == "standard_conforming_strings" and _normal(value) not in _ON:
            return "would turn standard_conforming_strings off"
        if name == "client_encoding" and _normal(value).replace("_", "") not in (
                _SAFE_ENCODINGS_TO_SET):
            shown = value if value is not None else "a value the gateway cannot see"
            return f"would set client_encoding to {shown}"
    return None


def unsafe_state(name: str, value: str) -> str | None:
    """Why a session whose server reports ``name = value`` cannot be judged, or None."""
    if name == "standard_conforming_strings" and _normal(value) not in _ON:
        return "the session has standard_conforming_strings off"
    if name == "client_encoding" and _normal(value) in UNSAFE_ENCODINGS:
        return f"the session's client_encoding is {value}"
    return None
