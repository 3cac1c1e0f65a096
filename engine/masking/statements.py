"""Statement texts as they are recorded: literals the detectors find, and passwords, masked.

The record keeps what a user ran, but not the secrets in it (ARCHITECTURE.md invariant 6):

- a string literal right after the word ``password`` (``CREATE ROLE ... PASSWORD 'x'``,
  ``ALTER USER ... ENCRYPTED PASSWORD '...'``, ``OPTIONS (password 'x')`` of a user mapping),
  or after any word that ends like a credential's name (``sslpassword``, ``"password"``,
  ``api_token``; comments between them skipped, a quoted name unquoted, case folded), and the
  value given a setting of such a name (``SET my.password = 'x'``, ``set_config('app.token',
  'x', false)``; a ``set_config`` whose setting's name is computed: every string after it) is
  always masked, whatever the session's masking rules: it is a credential;
- every literal (string, number, bit string) is read by the value detectors as the value the
  server sees: quotes undone, the escapes of ``E''`` and ``U&''`` strings decoded (with the
  escape character its ``UESCAPE`` names), a string continued on the next line joined (also
  across ``--`` comments between its pieces, as the server's scanner joins them), a bit
  string or hex literal as its bytes and as the integer a cast to ``bigint`` reads
  (``x'000E99A0C2ACE3C7'``), a number without its ``_`` separators and in base 10
  (``0x…``, ``0o…``, ``0b…``); and literals written in pieces (``'4111' || '111111111111'``,
  two strings around a comment) are read joined as well: a value found across pieces masks
  each piece;
- a ``U&""`` identifier is read decoded; the rest of the text (comments, identifiers) is
  masked as any text is;
- in a statement that names a masked column or a table with masked columns (``names``: a
  rule's column or table part, as a word of the text), every literal is masked, found or not:
  ``WHERE national_id = '…'`` or ``INSERT INTO customers VALUES (…)`` carries the column's
  values, which no detector may know the shape of (counted as ``masked-column``).

PostgreSQL's own scanner (pglast) cuts the text into tokens, so a quote inside a comment or a
dollar-quoted body does not confuse it; a text it cannot scan is masked as plain text. The
approver of a held statement still sees it exactly (``Session.ask``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import orjson
from pglast.parser import parse_sql_json, scan

from engine.guardrail import attribute, builtin_names

PASSWORD_MASK = "****"
_LITERALS = frozenset({"SCONST", "USCONST", "FCONST", "ICONST", "BCONST", "XCONST", "UIDENT"})
_STRINGS = frozenset({"SCONST", "USCONST"})
_BITS = frozenset({"BCONST", "XCONST"})
_INT64_BITS = 64  # a bit string cast to bigint: at most 64 bits, the first one the sign
_COMMENTS = frozenset({"C_COMMENT", "SQL_COMMENT"})
_MAX_SCANNED = 1 << 20  # longer texts are masked as plain text (the scanner is not free)
TIED = "masked-column"  # what a literal masked for the column it goes with counts as
_WORD = re.compile(r'[A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*|"(?:[^"]|"")+"')


# What a word right before a string literal ends with when the literal is a credential: the
# PASSWORD of a role, and the options of servers and user mappings (sslpassword, passfile,
# "password", an extension's api_token, secret_key …). Compared unquoted and case-folded.
_CREDENTIAL_NAMES = ("password", "passwd", "passphrase", "pass", "passfile", "secret",
                     "token", "key", "credential", "credentials", "pwd", "pw", "auth")


# Between a setting's name and its value: ``SET name = 'v'``, ``SET name TO 'v'``.
_SETTING_TO = frozenset({"ASCII_61", "TO"})


def _named_setting(tokens: Sequence[Any], i: int) -> bool:
    """Whether the ``set_config`` at ``tokens[i]`` is called with its setting's name as one
    string literal (``set_config('app.token', …)``), or is not called here at all."""
    after = [t.name for t in tokens[i + 1:i + 12] if t.name not in _COMMENTS][:3]
    if not after or after[0] != "ASCII_40":
        return True  # a name, not a call
    return len(after) >= 3 and after[1] in _STRINGS and after[2] == "ASCII_44"


def _unquoted(word: str) -> str:
    """A quoted identifier's name (``"pass""word"`` → ``pass"word``); other words as they are."""
    if len(word) >= 2 and word[0] == word[-1] == '"':
        return word[1:-1].replace('""', '"')
    return word


class Values(Protocol):
    def mask(self, text: str) -> tuple[str, list[str]]: ...


def mask_statement(text: str, values: Values | None,
                   names: Callable[[str], bool] | None = None, *,
                   tied: bool = False) -> tuple[str, list[str]]:
    """``text`` with secrets masked, and the detectors that fired (``password`` for a
    password literal, ``TIED`` for literals masked for a masked column ``names`` says the
    text names, or that reach one through code the text does not show: ``tied``, see
    ``runs_unseen``)."""
    if len(text) > _MAX_SCANNED and names is None:
        if values is None:
            return text, []
        masked, found = values.mask(text)
        if "private_key" not in found:
            return masked, found
        # A key's BEGIN line would star the text to its end (or to a matching END): read by
        # tokens below, however long, so that the SQL around it stays as it ran.
    if "'" not in text and "$" not in text and not _digits(text):
        if values is None:
            return text, []
        masked, found = values.mask(text)
        if not found:
            return masked, found
        # Something is found: read by tokens below, so that a finding cannot run from a
        # comment over the SQL after it.
    raw = text  # the scanner's offsets count characters, not bytes
    try:
        tokens = scan(text)
    except Exception:  # the scanner refused it: masked as plain text
        return values.mask(text) if values is not None else (text, [])
    ties: list[bool] = []  # whether the text names a masked column: asked at its 1st literal

    def names_tied() -> bool:
        if not ties:
            ties.append(names is not None and (tied or any(
                _names(token, raw[token.start:token.end + 1], names) for token in tokens)))
        return ties[0]

    fired: list[str] = []
    replace: dict[int, tuple[int, bytes]] = {}  # token start → (end, new bytes)
    previous = ""
    pieces: list[tuple[int, int, str]] = []  # string literals: start, end, content
    escapes = -1  # the index of a UESCAPE's character: no literal of its own
    unnamed = False  # a set_config whose setting's name is computed: its value may be a secret
    for i, token in enumerate(tokens):
        start, end = token.start, token.end + 1
        word = raw[start:end]
        if word.lower() == "set_config" and not _named_setting(tokens, i):
            # set_config('my.pass' || 'word', 'x', …) (outside attack round 14): what it
            # sets cannot be told, so every string after it is taken for a credential.
            unnamed = True
        if token.name in _STRINGS and unnamed and i != escapes:
            content = _content(word)
            replace[start] = (end, f"'{PASSWORD_MASK}'".encode())
            fired.append("password")
        elif token.name in _LITERALS and i != escapes:
            escape = "\\"
            if (token.name in ("USCONST", "UIDENT") and i + 2 < len(tokens)
                    and tokens[i + 1].name == "UESCAPE" and tokens[i + 2].name == "SCONST"):
                after, escapes = tokens[i + 2], i + 2
                escape = _content(raw[after.start:after.end + 1])[:1] or escape
            content = _content(word, escape)
            code = previous in ("as", "do") and token.name in _STRINGS
            if token.name in _STRINGS and previous.endswith(_CREDENTIAL_NAMES):
                replace[start] = (end, f"'{PASSWORD_MASK}'".encode())
                fired.append("password")
            elif code and (values is not None or names is not None):
                # A function's or DO block's body is SQL itself: read the same way, so that a
                # finding in one of its comments cannot star the rest of it.
                masked, found = mask_statement(content, values, names)
                if found:
                    replace[start] = (end, _quote(masked, token.name))
                    fired += found
            elif values is not None:
                found = _literal(token.name, content, values, start, end, replace)
                if not found and escape != "\\":
                    # Read with the backslash too: the server takes ``\0034`` after UESCAPE
                    # '!' as written, but a reader of the record decodes it at a glance.
                    found = _literal(token.name, _content(word), values, start, end,
                                     replace)
                fired += found
                if token.name in _STRINGS:
                    pieces.append((start, end, content))
            if (names is not None and not code and start not in replace
                    and token.name != "UIDENT" and names_tied()):
                replace[start] = (end, f"'{PASSWORD_MASK}'".encode())
                fired.append(TIED)
        if token.name == "UIDENT":  # U&"pass\0077ord": the name it spells (its UESCAPE's)
            previous = content.lower()
        elif token.name in _STRINGS and "." in content:
            # set_config('my.password', 'x', …): a custom setting's name, then its value
            previous = content.lower()
        elif token.name in _SETTING_TO or (token.name == "ASCII_44" and "." in previous):
            pass  # SET my.password = 'x' (or TO 'x'): the name stands before the value
        elif token.name not in _COMMENTS and token.name != "UESCAPE" and i != escapes:
            previous = _unquoted(word).lower()  # PASSWORD /* … */ 'x' is PASSWORD 'x'
    if values is not None and len(pieces) > 1:
        _joined(pieces, values, replace, fired)
    if replace:
        out: list[str] = []
        pos = 0
        for start in sorted(replace):
            end, new = replace[start]
            out += [raw[pos:start], new.decode("utf-8", "surrogateescape")]
            pos = end
        out.append(raw[pos:])
        whole = "".join(out)
    else:
        whole = text
    if values is None:
        return whole, fired
    masked, found = values.mask(whole)  # comments, identifiers, what the scanner left
    if not found:
        return masked, fired
    return _by_segments(raw, tokens, replace, values, fired), fired


def _by_segments(raw: str, tokens: Sequence[Any], replace: dict[int, tuple[int, bytes]],
                 values: Values, fired: list[str]) -> str:
    """The text with each comment, quoted name and literal masked on its own, and the SQL
    between them (keywords, operators, plain names) masked as runs: a finding never spans
    from one into another. A private key's BEGIN line in a comment starred everything to
    the end of the text, and the record showed a harmless SELECT where a DELETE had run."""
    out: list[str] = []
    pos = 0

    def run(end: int) -> None:
        if end > pos:
            text, names = values.mask(raw[pos:end])
            out.append(text)
            fired.extend(names)

    for token in tokens:
        start, end = token.start, token.end + 1
        if start < pos:
            continue
        own = token.name in _LITERALS or token.name in _COMMENTS or (
            token.name in ("IDENT", "UIDENT") and raw[start:start + 1] in ('"', "U", "u"))
        if not own:
            continue
        run(start)
        if start in replace:  # a literal the detectors found a value in (done above)
            end, new = replace[start]
            out.append(new.decode("utf-8", "surrogateescape"))
        elif token.name in _LITERALS:  # read already, with nothing found
            out.append(raw[start:end])
        else:
            text, names = values.mask(raw[start:end])
            out.append(text)
            fired.extend(names)
        pos = end
    run(len(raw))
    return "".join(out)


def _joined(pieces: list[tuple[int, int, str]], values: Values,
            replace: dict[int, tuple[int, bytes]], fired: list[str]) -> None:
    """Literals written in pieces: a value found across pieces masks each of them (those not
    masked already: a value found in one piece alone is not one found across others)."""
    pieces = [p for p in pieces if p[0] not in replace]
    if len(pieces) < 2:
        return
    joined = "".join(p[2] for p in pieces)
    masked, names = values.mask(joined)
    if not names or masked == joined:
        return
    offset = 0
    for start, end, content in pieces:
        part = masked[offset:offset + len(content)] if len(masked) == len(joined) else None
        offset += len(content)
        if start in replace:
            continue
        if part is None or part != content:
            replace[start] = (end, f"'{PASSWORD_MASK}'".encode())
            fired.append(names[0])


def names_any(text: str, names: Callable[[str], bool]) -> bool:
    """Whether a statement names a masked column or a table with masked columns anywhere (a
    function's body too): its parameters may be the column's values."""
    if not any(names(word) for word in _WORD.findall(text)):
        return False  # no word of it does, quoted or not: no need to scan
    try:
        tokens = scan(text)
    except Exception:  # the scanner refused it: the words alone say
        return True
    for token in tokens:
        word = text[token.start:token.end + 1]
        if token.name in _STRINGS and word.startswith("$"):
            if names_any(_content(word), names):  # a body
                return True
        elif _names(token, word, names):
            return True
    return False


# Bodies of the functions of a name as the catalog last read them (source and definition),
# or None when it never read them.
Bodies = Callable[[str], list[str] | None]
_BODY_DEPTH = 4  # a function calling a function …: followed this deep


def runs_unseen(text: str, names: Callable[[str], bool], bodies: Bodies | None,
                relations: Callable[[str], bool] | None = None) -> bool:
    """Whether a statement's literals and parameters may reach a masked column through code
    its text does not show, so that they are recorded masked as if it named one: an
    ``EXECUTE`` of a prepared statement (its arguments go to a text recorded elsewhere, in
    SQL or as a Bind's parameters of ``execute p($1)``), a call of a function that is not
    PostgreSQL's own whose body names a masked column or a table with masked columns
    (``select f('…')`` of ``… where national_id = $1``), or whose body the gateway does not
    know (``bodies``: the catalog's; None, or a name it never read: not known), a relation
    that holds a masked column's values under another name (``relations``: a view naming
    one, a table written from one), and a text PostgreSQL would not parse (what it holds
    cannot be told)."""
    if (relations is None and "(" not in text and "." not in text
            and "execute" not in text.lower()):
        return False  # no call (``t.f`` may be ``f(t)``: ``attribute``), no EXECUTE
    try:
        tree = orjson.loads(parse_sql_json(text))
    except Exception:
        return True
    return _reaches(tree, names, bodies, 0, set(), relations)


def _reaches(node: Any, names: Callable[[str], bool], bodies: Bodies | None, depth: int,
             seen: set[str], relations: Callable[[str], bool] | None = None) -> bool:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        if "ExecuteStmt" in item:
            return True
        relname = item.get("relname")  # a RangeVar's, or a write's target's
        if isinstance(relname, str) and relations is not None and relations(relname):
            return True
        call = item.get("FuncCall") or (item.get("CallStmt") or {}).get("funccall")
        for called in _attribute_calls(item, bodies):
            if _body_reaches(called, names, bodies, depth, seen):
                return True
        if isinstance(call, dict):
            parts = [str(n.get("String", {}).get("sval", ""))
                     for n in call.get("funcname", []) if isinstance(n, dict)]
            name = parts[-1].lower() if parts else ""
            schema = parts[-2] if len(parts) > 1 else None
            if (schema not in (None, "pg_catalog") or name not in builtin_names.FUNCTIONS) \
                    and _body_reaches(name, names, bodies, depth, seen):
                return True
        stack.extend(v for k, v in item.items() if k != "location")
    return False


def _attribute_calls(item: dict[str, Any], bodies: Bodies | None) -> Iterator[str]:
    """The users' functions a node may call in attribute notation (``(x).f`` is ``f(x)``,
    ``attribute``): in ``(x).f`` any name no function of PostgreSQL's has; in ``t.f`` (a
    column, as a rule) one the catalog knows a function of."""
    for kind in ("A_Indirection", "ColumnRef"):
        inner = item.get(kind)
        if not isinstance(inner, dict):
            continue
        for name, _ in attribute.selections(kind, inner):
            if name.lower() in builtin_names.FUNCTIONS:
                continue
            if kind == "A_Indirection" or (bodies is not None and bodies(name.lower())):
                yield name.lower()


def _body_reaches(name: str, names: Callable[[str], bool], bodies: Bodies | None,
                  depth: int, seen: set[str]) -> bool:
    """Whether a user's function of that name names a masked column in its body, or calls
    one that does (by the words of its body), or is not known."""
    if name in seen:
        return False
    seen.add(name)
    found = bodies(name) if bodies is not None else None
    if found is None or depth >= _BODY_DEPTH:
        return True
    for body in found:
        if names_any(body, names):
            return True
        for word in {w.lower() for w in _WORD.findall(body)}:
            if word in seen or word in builtin_names.FUNCTIONS or bodies is None:
                continue
            if bodies(word) and _body_reaches(word, names, bodies, depth + 1, seen):
                return True
    return False


def _names(token: Any, word: str, names: Callable[[str], bool]) -> bool:
    """Whether a token — a name, perhaps quoted, or a keyword used as one — names a masked
    column or a table with masked columns."""
    if not (token.name == "IDENT" or token.kind != "NO_KEYWORD") or not _WORD.fullmatch(word):
        return False
    if word.startswith('"'):
        word = word[1:-1].replace('""', '"')
    return names(word)


def _literal(kind: str, content: str, values: Values, start: int, end: int,
             replace: dict[int, tuple[int, bytes]]) -> list[str]:
    """Mask one literal (its token replaced in ``replace``); the detectors that fired."""
    if kind in _STRINGS or kind == "UIDENT":
        masked, names = values.mask(content)
        if names:
            replace[start] = (end, _quote(masked, kind))
        return names
    forms = _bit_forms(content, kind) if kind in _BITS else _number_forms(content)
    for form in forms:
        masked, names = values.mask(form)
        if names:
            replace[start] = (end, _quote(masked, kind) if form is content
                              else f"'{PASSWORD_MASK}'".encode())
            return names
    return []


def _number_forms(number: str) -> list[str]:
    """A number token as written, and as the decimal it is (``4_111…``, ``0x0E99A0C2ACE3C7``:
    PostgreSQL 16's separators and prefixes)."""
    forms = [number]
    plain = number.replace("_", "")
    if plain[:2].lower() in ("0x", "0o", "0b"):
        try:
            plain = str(int(plain, 0)) if len(plain) <= 2 + _INT64_BITS else plain
        except ValueError:
            pass
    if plain != number:
        forms.append(plain)
    return forms


def _bit_forms(digits: str, kind: str) -> list[str]:
    """A bit string's digits (hex of text is read by the masker's encoded candidates), its
    bytes as text, and the integer a cast reads (``::bigint``, ``::int``: two's complement)."""
    forms = [digits]
    base, per_byte = (16, 2) if kind == "XCONST" else (2, 8)
    try:
        number = int(digits, base) if digits else 0
    except ValueError:
        return forms
    width = len(digits) * (4 if base == 16 else 1)
    if len(digits) % per_byte == 0 and digits:
        forms.append(number.to_bytes(width // 8, "big").decode("utf-8", "surrogateescape"))
    if number.bit_length() <= _INT64_BITS:
        forms.append(str(number))
        if 0 < width <= _INT64_BITS and number >> (width - 1):  # its sign bit set
            forms.append(str(number - (1 << width)))
    return forms


def _content(token: str, escape: str = "\\") -> str:
    """What a literal token says, as the server reads it: quotes undone, pieces continued
    across a line break joined (``'4012'`` newline ``'8888…'`` is one string, also with a
    ``--`` comment between them), and the escapes of ``E''`` and ``U&''`` strings decoded
    (``E'\\x34'``, ``U&'\\0034'``, ``U&'!0034' UESCAPE '!'`` are a 4; ``escape`` is the
    ``UESCAPE`` character); what cannot be decoded is left as written."""
    escaped = token[:1] in "eE" and token[1:2] == "'"
    unicode = token[:2] in ("U&", "u&") and token[2:3] in ("'", '"')
    if token[:1] in "eEbBxXuU" and token[1:2] in ("'", "&"):
        token = token[1:] if token[1:2] == "'" else token[2:]
    if token.startswith('"') and token.endswith('"') and len(token) >= 2:  # U&"identifier"
        body = token[1:-1].replace('""', '"')
        return _unicode(body, escape) if unicode else body
    if token.startswith("'") and token.endswith("'") and len(token) >= 2:
        body = (_E_PIECES if escaped else _PIECES).sub(_piece, token[1:-1])
        if escaped:
            return _unescape(body)
        if unicode:
            return _unicode(body, escape)
        return body
    if token.startswith("$"):
        tag_end = token.find("$", 1)
        if tag_end > 0:
            return token[tag_end + 1 : len(token) - (tag_end + 1)]
    return token


# A string continued on the next line, as PostgreSQL's scanner reads one (``quotecontinue``):
# a quote, blanks and ``--`` comments holding at least one line break, a quote. Read from the
# left with the doubled quotes (and an ``E''`` string's backslash escapes), so that ``''``
# before a line break is a quote, not the end of a piece.
_GAP = r"'(?:[ \t\f\v]|--[^\n\r]*)*[\n\r](?:[ \t\n\r\f\v]|--[^\n\r]*)*'"
_PIECES = re.compile(rf"''|{_GAP}")
_E_PIECES = re.compile(rf"\\.|''|{_GAP}", re.DOTALL)


def _piece(m: re.Match[str]) -> str:
    text = m.group()
    if text == "''":
        return "'"
    return text if text[:1] == "\\" else ""
_ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{1,2})|([0-7]{1,3})|u([0-9A-Fa-f]{4})"
                     r"|U([0-9A-Fa-f]{8})|(.))", re.DOTALL)
_SIMPLE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_UNICODE: dict[str, re.Pattern[str]] = {}


def _char(code: int) -> str:
    try:
        return chr(code)
    except (ValueError, OverflowError):
        return "\ufffd"


def _unescape(body: str) -> str:
    """An ``E''`` string's backslash escapes, decoded as PostgreSQL does."""
    def one(m: re.Match[str]) -> str:
        hexa, octal, short, long, other = m.groups()
        if hexa or octal or short or long:
            return _char(int(hexa or short or long, 16) if not octal else int(octal, 8))
        return _SIMPLE.get(other, other)

    return _ESCAPE.sub(one, body)


def _unicode(body: str, escape: str = "\\") -> str:
    """A ``U&''`` string's escapes (``\\XXXX``, ``\\+XXXXXX``, or with the ``UESCAPE``
    character instead of the backslash), decoded."""
    pattern = _UNICODE.get(escape)
    if pattern is None:
        e = re.escape(escape)
        pattern = re.compile(rf"{e}(?:\+([0-9A-Fa-f]{{6}})|([0-9A-Fa-f]{{4}})|({e}))")
        if len(_UNICODE) < 64:
            _UNICODE[escape] = pattern

    def one(m: re.Match[str]) -> str:
        six, four, doubled = m.groups()
        return escape if doubled else _char(int(six or four, 16))

    return pattern.sub(one, body)


def _quote(masked: str, kind: str) -> bytes:
    if kind == "UIDENT":
        return ('"' + masked.replace('"', '""') + '"').encode("utf-8", "surrogateescape")
    if kind in ("FCONST", "ICONST"):
        return f"'{masked}'".encode("utf-8", "surrogateescape")
    return ("'" + masked.replace("'", "''") + "'").encode("utf-8", "surrogateescape")


def _digits(text: str) -> bool:
    return any(ch.isdigit() for ch in text)
