"""Value detectors: a regular expression per kind of sensitive value, validated where it can be.

A ``Detector`` finds candidate spans with its ``pattern`` and keeps those its ``validate`` accepts
(Luhn for payment cards, mod 97 for IBANs, a JSON header for JWTs). When the pattern has a group
named ``value``, only that group is masked: ``password=hunter2`` masks ``hunter2``, not the key.

Every built-in pattern is compiled with ``re.ASCII`` so that ``\\d`` and ``\\w`` mean the same in
every context, and each one names a ``trigger`` that every match contains: plain strings (``@``
for an email, ``AKIA|ASIA``) or a regex compiled with ``re.ASCII | re.VERBOSE`` (``DIGITS`` for
every number-shaped detector, ``ASSIGNMENT``). The masker joins the triggers of the detectors it
uses into one pre-screen, so that the common value, which contains nothing, costs a few
substring tests and one regex search.

Built-in patterns never let a match run across a line break (a private key block excepted), and
the stream masker relies on it; ``tests/engine/masking/test_stream.py`` checks the rules it
derives from the patterns (``engine.masking.stream``) against them.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from engine.masking import cardruns


class Finding(NamedTuple):
    """A span of text to mask, and the detector that found it. (A tuple: cheap to make.)"""

    start: int
    end: int
    detector: str


# A failed validation retries shorter matches at the same start, at most this many times: a card
# followed by its expiry ("4242 4242 4242 4242 12/25") first matches as 18 digits. Bounded so
# that a long invalid candidate (a JWT whose header is not JSON) costs a few matches, not one per
# character.
_RETRIES = 8


@dataclass(frozen=True)
class Detector:
    """One kind of value: where it may be (``pattern``) and whether a candidate is one.

    ``validate`` receives the text to be masked (the ``value`` group when the pattern has one) and
    may reject it. ``trigger`` is a regex fragment, ASCII only, that matches somewhere inside every
    match of ``pattern`` (a ``|``-list of plain strings is tested with ``in``); ``None`` (custom
    detectors) means the pattern itself is the pre-screen.
    """

    name: str
    pattern: re.Pattern[str]
    validate: Callable[[str], bool] | None = None
    trigger: str | None = None

    def find(self, text: str) -> Iterator[Finding]:
        """The spans of ``text`` this detector masks, in order, validated."""
        group: int | str = "value" if "value" in self.pattern.groupindex else 0
        for m in self.pattern.finditer(text):
            found = self._accept(text, m, group)
            if found is not None:
                yield found

    def _accept(self, text: str, m: re.Match[str], group: int | str) -> Finding | None:
        start, end = m.span(group)
        if start < 0 or end <= start:  # an optional value group that did not take part
            return None
        if self.validate is None or self.validate(text[start:end]):
            return Finding(start, end, self.name)
        # Retry at the same start with shorter matches, but only those that end where the real
        # text has a boundary: a shorter prefix of a longer number is not a value of its own.
        origin = m.start()
        limit = m.end()
        for _ in range(_RETRIES):
            shorter = self.pattern.match(text, origin, limit - 1)
            if shorter is None:
                return None
            limit = shorter.end()
            if limit < len(text) and (text[limit].isalnum() or _spaced_on(text, limit)):
                continue
            start, end = shorter.span(group)
            if start >= 0 and end > start and self.validate(text[start:end]):
                return Finding(start, end, self.name)
        return None


@dataclass(frozen=True)
class CardDetector(Detector):
    """Payment cards: the pattern's groupings and numeric forms, and cards in runs of digits
    of any grouping or with digits glued on (``engine.masking.cardruns``; ``glued=False``: a
    run of digits alone only whole), merged."""

    glued: bool = True

    def find(self, text: str) -> Iterator[Finding]:
        found = list(super().find(text))
        covered = [(f.start, f.end) for f in found]
        runs = [Finding(a, b, self.name)
                for a, b in cardruns.find(text, covered, glued=self.glued)]
        if not runs:
            yield from found
            return
        merged: list[Finding] = []
        for f in sorted(found + runs):
            if merged and f.start < merged[-1].end:
                last = merged[-1]
                merged[-1] = Finding(last.start, max(last.end, f.end), self.name)
            else:
                merged.append(f)
        yield from merged


def _spaced_on(text: str, end: int) -> bool:
    """Whether a match ending at ``end`` in one digit after a separator (``4 0 1 2``) is cut
    from a longer run of the same form: the same separator and another digit follow."""
    return (2 <= end < len(text) - 1 and text[end] == text[end - 2]
            and not text[end].isalnum() and text[end - 1].isdigit() and text[end + 1].isdigit())


def custom(name: str, regex: str) -> Detector:
    """A detector from the policies file: ``regex`` as written, a ``value`` group if it has one.

    Custom patterns are not validated and have no trigger, so the masker runs each of them on
    every value that reaches it; the stream masker keeps whole lines back while one is in use.
    """
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"masking detector name {name!r} must be letters, digits, - and _ only.")
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise ValueError(
            f"masking pattern {name!r} is not a valid regular expression ({exc}); fix it in the "
            "policies file.") from exc
    return Detector(name, pattern)


# --- checksums -------------------------------------------------------------------------------

def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of payment card numbers; ``digits`` holds digits only."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Group separators: any character but a digit, the point and an exponent ("e", "E") and its
# sign (a + or - after the "e"), which a number's form keeps for the decimal reading below.
_GROUP_SEPARATORS = re.compile(r"[^\d.eE+-]|(?<=\d)[+-]")


def _card_valid(value: str) -> bool:
    digits = _GROUP_SEPARATORS.sub("", value)
    if not digits.isdigit():  # a number's form: its integer digits, or its value's
        whole = re.split("[.eE]", digits, maxsplit=1)[0]
        try:
            amount = decimal.Decimal(digits)
            # (a card has at most 19 digits: a larger exponent is no card, and expanding
            # ``4111e0378282246310005`` to an integer ran out of memory)
            number = str(int(amount)) if amount.is_finite() and amount.adjusted() < 25 else ""
        except (decimal.InvalidOperation, ValueError, OverflowError):
            number = ""
        return any(_card_digits(d) for d in (whole, number, digits.partition("e")[0].replace(
            ".", "").partition("E")[0]))
    return _card_digits(digits) or (digits[:1] == "0" and _card_digits(digits.lstrip("0")))


def _card_digits(digits: str) -> bool:
    # All one digit ("0000 0000 0000 0000") passes Luhn but is a placeholder, not a card.
    return (13 <= len(digits) <= 19 and digits.isdigit() and len(set(digits)) > 1
            and luhn_valid(digits))


# ISO 13616 registry: the length of an IBAN in each country that issues them.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


_IBAN_SEPARATORS = re.compile(r"[\ \-./_]")


def iban_valid(value: str) -> bool:
    """Known country, that country's length, and the mod-97 check (ISO 7064) equal to 1."""
    iban = _IBAN_SEPARATORS.sub("", value).upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _aws_key_valid(value: str) -> bool:
    """An access key id together, or with separators and a digit among its last 16."""
    return value.isalnum() or any(ch.isdigit() for ch in value[4:])


def _phone_valid(value: str) -> bool:
    return 8 <= sum(ch.isdigit() for ch in value) <= 15


def _jwt_valid(value: str) -> bool:
    header = value.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        parsed = json.loads(decoded)
    except (binascii.Error, ValueError):  # bad base64, not UTF-8, not JSON
        return False
    return isinstance(parsed, dict) and "alg" in parsed


# --- the built-in detectors --------------------------------------------------------------------

def _builtin(name: str, regex: str, trigger: str,
             validate: Callable[[str], bool] | None = None) -> Detector:
    return Detector(name, re.compile(regex, re.ASCII | re.VERBOSE), validate, trigger)


# The header of a private key block (PEM, OpenSSH, PGP); group 1 is its label, which the footer
# repeats. The stream masker holds text from an open header until that footer arrives.
_KEY_LABEL = r"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?"
KEY_HEADER = re.compile(rf"-----BEGIN ({_KEY_LABEL})-----", re.ASCII)

# The trigger of every number-shaped detector, one regex so that the pre-screen searches once.
# Each detector's shape has one of its parts: four digits, maybe a separator, four digits (cards);
# 3-2-4 (SSNs); 3-4 (North American phones); a + and five digits (E.164, not a time zone like
# +0200); two letters and two digits (IBANs); 13 digits with at most one separator between
# any two (a card in a run, ``cardruns``); four digits, one to eight blanks, four digits (a
# card's layout spaced out); a bracket, quote or sign, then 13 digits with up to 18 of a
# list's characters between any two (a card in a list's elements, ``cardruns``). Short
# dates, times, IP addresses and version numbers have none of them. Each part starts where a
# run of digits starts (every detector's left boundary excludes a digit before it), so only
# those digits are tried; and the regex starts with a character class, which the engine
# skips to in C.
DIGITS = r"""[\d+](?: (?<=\+)\d(?:[\ ()-]{0,2}\d){4}
                   | (?<!\d\d)(?<=\d)\d (?: \d\d[\ -/:-@\[-`{-~]?\d{4} | \d-\d\d-\d{4} | \d-\d{4}
                                       | (?<=[A-Za-z]{2}\d\d) | \.\d{8} | \d{4,5}\.\d{6,7}[eE]
                                       | \d\d[\t\ ]{1,8}\d{4} )
                   | (?<!\d\d)(?<=\d)(?:[\ -/:-@\[-`{-~]\d){8}
                   | (?<!\d\d)(?<=\d)\d?\d?,\d{3},\d{3},\d{3}
                   | (?<!\d\d)(?<=\d)(?:[\t\ ./:_'-]?\d){12}
                   | (?<=[\[{("-]\d)(?:[\t\ ./:_'",()\[\]{}-]{0,18}\d){12} )"""

# One separator between a card's digit groups, where the groups may be separated by different
# ones: printable ASCII but letters, digits, the point and the comma (see payment_card).
_MIXED_SEPARATOR = r"[\ -+\-/:-@\[-`{-~]"

# The trigger of assignments: an = or : right after a letter, a quote or a blank (the key word
# ends in a letter), which lets timestamps and times through without running the key regexes.
ASSIGNMENT = r"""[=:](?<=[A-Za-z"'\ \t][=:])"""

# Triggers in forms hyperscan compiles (``engine.masking.prefilter``): no look-arounds, and
# each matches inside every match of the detectors that use the trigger. A positive
# look-behind becomes the characters it looked at, so a native match may start a few bytes
# before the trigger's; negative look-behinds are dropped, as the byte screens drop them.
# Bytes, so \d is [0-9] as under re.ASCII. The "@" of an e-mail address is read with the
# characters around it (every address has a local-part character before it and a domain
# character after it), so that a length of 64 (0x40) in the protocol's framing does not look
# like one. tests/engine/masking/test_prefilter.py checks each against its detectors.
NATIVE_TRIGGERS: dict[str, str] = {
    "@": r"[A-Za-z0-9._%+\-]@[A-Za-z0-9\-]",
    DIGITS: (r"\+\d(?:[ ()\-]{0,2}\d){4}"
             r"|\d\d(?:\d\d[ -/:-@\[-`{-~]?\d{4}|\d-\d\d-\d{4}|\d-\d{4}|\.\d{8}"
             r"|\d{4,5}\.\d{6,7}[eE]|\d\d[\t ]{1,8}\d{4})"
             r"|\d(?:[ -/:-@\[-`{-~]\d){8}"
             r"|[A-Za-z]{2}\d\d"
             r"|\d\d?\d?,\d{3},\d{3},\d{3}"
             r"|\d(?:[\t ./:_'\-]?\d){12}"
             r"|[\[{(\"\-]\d(?:[\t ./:_'\",()\[\]{}\-]{0,18}\d){12}"),
    ASSIGNMENT: r"""[A-Za-z"' \t][=:]""",
}

# Words that end the key of a secret assignment (whatever comes before them: DB_PASSWORD), by
# first letter: see _first_letter_led.
SECRET_WORDS = {
    # "pass" alone only as a word of its own (db_pass, PASS=): "bypass: on" is no secret.
    "p": r"assw(?:or)?d | assphrase | rivate[_-]?key | (?<![A-Za-z]p)ass",
    "s": r"ecret(?:[_-]?(?:access[_-]?)?key)?",
    "a": r"pi[_-]?key",
    "t": r"oken",
    "c": r"redentials?",
}


def _first_letter_led(words: dict[str, str]) -> str:
    """Case-insensitive ``password|secret|...`` written to start with a class of first letters.

    The regex engine skips to a leading character class in C, but tries a case-insensitive
    alternation at every position in its matcher loop: on bulk SSH output the led form is
    several times faster, which matters since assignments are looked for in most lines.
    """
    letters = "".join(c.lower() + c.upper() for c in words)
    branches = " | ".join(f"(?<={c})(?:{rest})" for c, rest in words.items())
    return f"[{letters}](?i:{branches})"


_DETECTORS = (
    # The whole block, header to footer. Without its footer the block runs to the end of the
    # text: a truncated key is still a key (the stream masker holds a block until its footer).
    Detector("private_key", re.compile(
        rf"-----BEGIN (?P<label>{_KEY_LABEL})-----(?:[\s\S]*?-----END (?P=label)-----|[\s\S]*\Z)",
        re.ASCII), None, "-----BEGIN"),
    _builtin("jwt", r"""
        (?<![\w-]) eyJ[A-Za-z0-9_-]{2,} \. [A-Za-z0-9_-]{2,} \. [A-Za-z0-9_-]*
        """, "eyJ", _jwt_valid),
    # The 16 characters after the prefix together, or with a separator between any two: a
    # blank or blanks, or one printable character that is neither a letter nor a digit
    # (``AKIA IOSF ODNN 7EXA MPLE``, ``AKIA-IOSFODNN7EXAMPLE``); so written they hold a digit
    # (capital words after "ASIA" are no key: ``ASIA PACIFIC TOTAL SALE``).
    _builtin("aws_access_key", r"""
        (?<![A-Za-z0-9]) (?:AKIA|ASIA)
        (?:(?:[\ \t]+|[!-/:-@\[-`{-~])?[A-Z0-9]){16}
        (?![A-Za-z0-9])
        """, "AKIA|ASIA", _aws_key_valid),
    # aws_secret_access_key = ..., AWS_SECRET_ACCESS_KEY=..., "SecretAccessKey": "...". What comes
    # before the key word does not matter: only the value is masked.
    _builtin("aws_secret_key", r"""
        (?i:secret[_-]?(?:access[_-]?)?key) ["']? [\ \t]*[=:][\ \t]* ["']?
        (?P<value>[A-Za-z0-9/+]{40}) (?![A-Za-z0-9/+=])
        """, ASSIGNMENT),
    # key = value, key: value, "key": "value"; a quoted value may hold spaces and runs to its
    # closing quote (or the end of the line); a bare one stops at white space and , ; & " '.
    _builtin("secret_assignment", rf"""
        {_first_letter_led(SECRET_WORDS)} ["']? [\ \t]*[=:][\ \t]*
        (?P<q>["'])?
        (?P<value>(?(q)(?:(?!(?P=q))[^\r\n])+|[^\s"',;&]+))
        """, ASSIGNMENT),
    # The password of a URL's user information (RFC 3986): postgres://user:PASSWORD@host,
    # redis://:PASSWORD@cache. Only the password is masked. Led by the "://" (the scheme does
    # not matter); the password stops at what ends a URL's authority, or a blank, quote, comma
    # or semicolon (which the stream masker may cut at).
    _builtin("url_credentials", r"""
        :// [^\s:/?\#@"'<>,;]{0,256} : (?P<value>[^\s/?\#@"'<>,;]{1,256}) @
        """, "://"),
    _builtin("email", r"""
        (?<![\w.+%-]) [A-Za-z0-9_][A-Za-z0-9._%+-]*+ @ (?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,63} (?![\w-])
        """, "@"),
    # 13-19 digits, together or in groups: 4-4-4-4(-1..3), the 4-6-5 / 4-6-4 of American
    # Express and Diners, single digits, the first four apart (``(4012)888888881881``) or the
    # last four. Groups are separated by one blank, ``,`` ``.`` ``_`` or ``-`` used throughout,
    # or by any one printable character that is neither a letter nor a digit, mixed as it
    # comes (``4012/8888:8888|1881``: SQL and shell turn a card into any of these), bar the
    # point and the comma, which mixed with others are how numbers are written
    # (``1234.5678 9012.3456``: two amounts, not a card). No issuer prefix is required. (Led by the
    # first digit, with the left boundary checked after it, so that the search skips in C.)
    # A sign before it is no boundary (``-4111111111111111``, a bigint or a JSON number; a
    # ``-`` after a word is masked too), nor are leading zeros (``lpad``, ``%020d``).
    # Numeric forms of one too: a decimal or exponent after it (``::numeric(30,2)``,
    # ``::float8``, ``4111111111111111e0``), thousands groups (``::money``: $5,555,...,444.00)
    # and scientific notation (``4.111111111111111e+15``, ``41.11111111111111E14``: a
    # mantissa with at least 9 digits, as a card has 13 and fewer are left when it ends in
    # zeros, whose value the validator reads); a literal's type suffix after it is no part of
    # a word (``4111111111111111L``, ``…n``, ``…ULL``, ``…m``). Each branch holds a part of
    # DIGITS: a run of 8 digits, or 6 and 6 around the point of a mantissa. (Every branch has
    # 8 digits or separators after its first digit: the look-ahead turns the many short
    # numbers away at once.)
    CardDetector("payment_card", re.compile(r"""
        \d (?<!\d\d) (?<!\d\.\d) (?=[\ -@\[-`{-~]{8})
        (?: \d{2,3}(?P<s1>[\ ,._-])\d{4}(?P=s1)\d{4}(?P=s1)\d{4}(?:(?P=s1)\d{1,3})?
          | \d{2,3}{sep}\d{4}{sep}\d{4}{sep}\d{4}
            (?:{sep}\d{1,3})?
          | \d{3}(?P<s2>[\ ._-])\d{6}(?P=s2)\d{4,5}
          | \d{3}{sep}\d{6}{sep}\d{4,5}
          | (?P<s3>[\ ._-])\d(?:(?P=s3)\d){11,17}
          | (?:{sep}\d){12,18}
          | \d{3}{sep}\d{9,15} | \d{8,14}{sep}\d{4}
          | \d{0,2}(?:,\d{3}){4,6}
          | \d{12,}+
          | (?: \d*+\.\d{8,}+ | \d{7,}+\.\d++ | \d{5,6}+\.\d{6,7}+ ) [eE][+-]?\d+ )
        (?:\.\d+)? (?:[eE][+-]?\d+)?
        (?! \.\d | \d )
        """.replace("{sep}", _MIXED_SEPARATOR), re.ASCII | re.VERBOSE), _card_valid, DIGITS),
    # Country, check digits, then the rest together or in groups of four, in capitals or not
    # (``de89370400440532013000``). The groups are separated by one blank or more, or by one
    # ``-`` ``.`` ``_`` or ``/`` (``de89-3704-0044-0532-0130-00``).
    _builtin("iban", r"""
        [A-Za-z] (?<![A-Za-z0-9][A-Za-z]) [A-Za-z]\d{2}
        (?: [A-Za-z0-9]{11,30}
          | (?:(?:\ +|[\-./_])[A-Za-z0-9]{4}){2,7}(?:(?:\ +|[\-./_])[A-Za-z0-9]{1,3})? )
        (?![A-Za-z0-9])
        """, DIGITS, iban_valid),
    # AAA-GG-SSSS without the numbers never issued: area 000, 666, 9xx; group 00; serial 0000.
    # Not inside a longer dashed token; a sign before it is no part of one (``-123-45-6789``).
    # Its boundaries are digits, not words: ``ssn_123-45-6789``, ``123-45-6789x``.
    # (Led by the area's first digit, the boundary checked after it, so the search skips in C.)
    _builtin("us_ssn", r"""
        [0-8] (?<!\d\d) (?<![\w-]-\d) (?!(?<=0)00|(?<=6)66)
        \d\d - (?!00)\d{2} - (?!0000)\d{4} (?![\d-])
        """, DIGITS),
    # E.164 (+ and 8-15 digits, spaces, dashes, an area code in parentheses), or the North
    # American (555) 123-4567 and 555-123-4567. Dots are not separators: no IPs, no versions.
    # Led by the first character, the left boundary checked after it, as for cards.
    _builtin("phone", r"""
        [+(\d]
        (?: (?<![\w+]\+) (?<=\+) \d (?:[\ -]?\d | [\ -]?\(\d{1,4}\)){7,14} (?!\w)
          | (?<![\w(+-][(\d])
            (?: (?<=1) [\ -] (?:\(\d{3}\)\ ? | \d{3}-)      # 1-555-..., 1 (555) ...
              | (?<=\() \d{3}\)\ ?                           # (555) ...
              | (?<=\d) \d\d- )                               # 555-...
            \d{3}-\d{4} (?![\w-]) )
        """, DIGITS, _phone_valid),
)

BUILTIN: dict[str, Detector] = {d.name: d for d in _DETECTORS}

# How every key that SECRET_WORDS or aws_secret_key accepts ends, in lower case. A stream masker
# keeps back text after a word that ends like this, since "= value" may still follow it.
KEY_ENDINGS = ("password", "passwd", "passphrase", "secret", "key", "token", "credential",
               "credentials", "pass")

# The order BUILTIN lists them in is also the order that breaks ties between findings of the
# same span: "password=4242..." is a password (redacted) before it is a card (partly shown).


def is_builtin(detector: Detector) -> bool:
    return BUILTIN.get(detector.name) is detector
