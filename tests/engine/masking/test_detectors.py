"""Detectors: what each built-in one finds, what it must leave alone, and the pre-screen promise.

Each row pins the exact text a detector masks in a sample (for ``secret_assignment`` and
``aws_secret_key`` only the value). The negative rows are the look-alikes that matter in
practice: failed checksums, never-issued SSNs, dates, IP addresses, versions, plain integers.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.masking.detectors import BUILTIN, custom, iban_valid, luhn_valid
from engine.masking.masker import ValueMasker

FUZZ = settings(database=None, deadline=None, max_examples=200)

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwia"
       "WF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
       "4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n"
       "-----END RSA PRIVATE KEY-----")
OPENSSH = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
           "-----END OPENSSH PRIVATE KEY-----")

FOUND = [
    # (detector, text, the values it masks)
    ("email", "mail a@b.co now", ["a@b.co"]),
    ("email", "signup ok user=alice.martin@example.com plan=pro", ["alice.martin@example.com"]),
    ("email", "bounce for dave+x@mail.example.co.uk.", ["dave+x@mail.example.co.uk"]),
    ("email", '{"email":"a@b.co"}', ["a@b.co"]),
    ("payment_card", "4242424242424242", ["4242424242424242"]),
    ("payment_card", "card=4111 1111 1111 1111", ["4111 1111 1111 1111"]),
    ("payment_card", "5555-5555-5555-4444", ["5555-5555-5555-4444"]),
    ("payment_card", "amex 3782 822463 10005", ["3782 822463 10005"]),
    ("payment_card", "diners 30569309025904", ["30569309025904"]),
    ("payment_card", "visa13 4222222222222", ["4222222222222"]),
    # 19 digits that fail Luhn, but hold a window that passes: a card with digits glued on.
    ("payment_card", "19 digits 6011000990139424123", ["6011000990139424123"]),
    ("payment_card", "card 4242 4242 4242 4242 12/25", ["4242 4242 4242 4242"]),  # + expiry
    # Signed and decorated numeric forms of a card (outside attack on issue 14): a bigint or a
    # JSON number below zero, a plus, leading zeros, a decimal, scientific notation.
    ("payment_card", "-4111111111111111", ["4111111111111111"]),
    ("payment_card", '{"n": -4111111111111111}', ["4111111111111111"]),
    ("payment_card", "n=+4111111111111111;", ["4111111111111111"]),
    ("payment_card", "x-4111111111111111", ["4111111111111111"]),
    ("payment_card", "0000004111111111111111", ["0000004111111111111111"]),
    ("payment_card", "-0004111111111111111.000", ["0004111111111111111.000"]),
    ("payment_card", "-4111111111111111.0", ["4111111111111111.0"]),
    ("payment_card", "-4.111111111111111e+015", ["4.111111111111111e+015"]),
    ("payment_card", "41.11111111111111E14", ["41.11111111111111E14"]),
    ("payment_card", "4111111.111111111e9", ["4111111.111111111e9"]),
    ("payment_card", "422222.2222222e7", ["422222.2222222e7"]),  # 13 digits, 6 and 7
    ("payment_card", "41111111111111110e-1", ["41111111111111110e-1"]),
    ("payment_card", "411111111111111100000e-5", ["411111111111111100000e-5"]),
    ("payment_card", "-$4,111,111,111,111,111.00", ["4,111,111,111,111,111.00"]),
    ("payment_card", "id 1234,4,111,111,111,111,111 x", ["4,111,111,111,111,111"]),  # after ,
    ("payment_card", "-5555-5555-5555-4444", ["5555-5555-5555-4444"]),
    ("payment_card", "long n = -4111111111111111L;", ["4111111111111111"]),  # type suffixes
    # Digit boundaries, not word boundaries: a card glued to a letter or an underscore is one.
    ("payment_card", "4111111111111111dead", ["4111111111111111"]),
    ("us_ssn", "ssn_123-45-6789", ["123-45-6789"]),
    ("us_ssn", "SSN123-45-6789x", ["123-45-6789"]),
    ("payment_card", "id_4111111111111111_x", ["4111111111111111"]),
    ("payment_card", "ref_4012888888881881", ["4012888888881881"]),
    ("payment_card", "cardA4012888888881881", ["4012888888881881"]),
    ("payment_card", "4012888888881881x", ["4012888888881881"]),
    ("payment_card", "stmt_4012888888881881.pdf", ["4012888888881881"]),
    # Dots, underscores and single blanks as separators.
    ("payment_card", "card 4012.8888.8888.1881", ["4012.8888.8888.1881"]),
    ("payment_card", "card 4012_8888_8888_1881", ["4012_8888_8888_1881"]),
    ("payment_card", "3782_822463_10005", ["3782_822463_10005"]),
    ("payment_card", "card 4 0 1 2 8 8 8 8 8 8 8 8 1 8 8 1 end",
     ["4 0 1 2 8 8 8 8 8 8 8 8 1 8 8 1"]),
    ("payment_card", "4.0.1.2.8.8.8.8.8.8.8.8.1.8.8.1", ["4.0.1.2.8.8.8.8.8.8.8.8.1.8.8.1"]),
    ("payment_card", "x4_0_1_2_8_8_8_8_8_8_8_8_1_8_8_1y", ["4_0_1_2_8_8_8_8_8_8_8_8_1_8_8_1"]),
    # Any other printable separator, mixed or not, and the first or last four apart (outside
    # attack, round 10): SQL (regexp_replace, ||) and the shell write a card in any of these.
    ("payment_card", "4012/8888/8888/1881", ["4012/8888/8888/1881"]),
    ("payment_card", "4012:8888:8888:1881", ["4012:8888:8888:1881"]),
    ("payment_card", "(4012)888888881881", ["4012)888888881881"]),
    ("payment_card", "4012|8888;8888#1881", ["4012|8888;8888#1881"]),
    ("payment_card", "4242 4242-4242 4242", ["4242 4242-4242 4242"]),
    ("payment_card", "n=401288888888/1881;", ["401288888888/1881"]),
    ("payment_card", "3782/822463:10005", ["3782/822463:10005"]),
    ("payment_card", "4+0+1+2+8+8+8+8+8+8+8+8+1+8+8+1", ["4+0+1+2+8+8+8+8+8+8+8+8+1+8+8+1"]),
    ("payment_card", "BigInt: 4111111111111111n, 5555555555554444ULL",
     ["4111111111111111", "5555555555554444"]),
    # Groups of any size, any one of blank, tab, - . / : _ between them, mixed (outside attack,
    # round 11): pg_lsn's and macaddr8's output of a card, pairs, threes, tabs.
    ("payment_card", "lsn 40128888/88881881", ["40128888/88881881"]),
    ("payment_card", "mac 40:12:88:88:88:88:18:81", ["40:12:88:88:88:88:18:81"]),
    ("payment_card", "40-12-88-88-88-88-18-81", ["40-12-88-88-88-88-18-81"]),
    ("payment_card", "tab 4012\t8888\t8888\t1881", ["4012\t8888\t8888\t1881"]),
    ("payment_card", "sp3 401 288 888 888 1881.", ["401 288 888 888 1881"]),
    ("payment_card", "4012 8888.8888 1881", ["4012 8888.8888 1881"]),
    ("payment_card", "40_12 888:888 88:1 8-81", ["40_12 888:888 88:1 8-81"]),
    # Fractions are groups too: a card divided by a power of ten.
    ("payment_card", "-0.4111111111111111", ["0.4111111111111111"]),
    # A group of 13-19 digits that is a card is one wherever it stands (cat pre.txt k.txt
    # with "1." in pre.txt); digits glued to a card in a list of numbers too.
    ("payment_card", "pi 3.4242424242424242", ["4242424242424242"]),
    ("payment_card", "1.4111111111111111", ["4111111111111111"]),
    ("payment_card", "12 34 340128888888818815 7", ["340128888888818815"]),
    # Digits glued to a card (cat k.txt suffix): the run is masked whole, as are the groups
    # a card's digits touch in a separated run; and a run longer than 40 digits.
    ("payment_card", "40128888888818815", ["40128888888818815"]),
    ("payment_card", "x 940128888888818815", ["940128888888818815"]),
    ("payment_card", "-40128888888818815", ["40128888888818815"]),
    ("payment_card", "4012 8888 8888 18815", ["4012 8888 8888 18815"]),
    ("payment_card", "7 4012/8888/8888/1881 2", ["4012/8888/8888/1881"]),
    ("payment_card", "54012 8888 8888 1881", ["54012 8888 8888 1881"]),
    ("payment_card", "3782 822463 100059", ["3782 822463 100059"]),
    ("payment_card", "order 12345678901234567890", ["12345678901234567890"]),
    ("payment_card", "n " + "12" * 21, ["12" * 21]),
    ("payment_card", "n " + "1" * 41 + " ", []),  # one digit: no card in any window
    ("iban", "DE89 3704 0044 0532 0130 00", ["DE89 3704 0044 0532 0130 00"]),
    ("iban", "iban=GB82WEST12345698765432;", ["GB82WEST12345698765432"]),
    ("iban", "NL91ABNA0417164300 and FR1420041010050500013M02606",
     ["NL91ABNA0417164300", "FR1420041010050500013M02606"]),
    ("iban", "GB82 WEST 1234 5698 7654 32 ABCD", ["GB82 WEST 1234 5698 7654 32"]),
    ("us_ssn", "ssn 123-45-6789", ["123-45-6789"]),
    ("us_ssn", "078-05-1120,", ["078-05-1120"]),
    ("us_ssn", "-123-45-6789", ["123-45-6789"]),  # a sign is no part of a dashed token
    ("us_ssn", "ssn: -078-05-1120", ["078-05-1120"]),
    ("phone", "call +1 555 123 4567", ["+1 555 123 4567"]),
    ("phone", "+44 (20) 7946 0958", ["+44 (20) 7946 0958"]),
    ("phone", "+33 1 23 45 67 89", ["+33 1 23 45 67 89"]),
    ("phone", "+4915112345678", ["+4915112345678"]),
    ("phone", "(555) 123-4567", ["(555) 123-4567"]),
    ("phone", "tel: 555-123-4567.", ["555-123-4567"]),
    ("phone", "1-800-555-0199", ["1-800-555-0199"]),
    ("jwt", f"Authorization: Bearer {JWT}", [JWT]),
    ("aws_access_key", "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", ["AKIAIOSFODNN7EXAMPLE"]),
    ("aws_access_key", '"AccessKeyId": "ASIAY34FZKBOKMUTVV7A"', ["ASIAY34FZKBOKMUTVV7A"]),
    ("aws_secret_key", f"AWS_SECRET_ACCESS_KEY={SECRET}", [SECRET]),
    ("aws_secret_key", f"aws_secret_access_key = {SECRET}", [SECRET]),
    ("aws_secret_key", f'"SecretAccessKey": "{SECRET}",', [SECRET]),
    ("private_key", f"key:\n{PEM}\nafter", [PEM]),
    ("private_key", f"{OPENSSH}\n", [OPENSSH]),
    ("private_key", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE",  # truncated: to the end
     ["-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE"]),
    ("secret_assignment", "password=hunter2", ["hunter2"]),
    ("secret_assignment", "DB_PASSWORD = 'correct horse'", ["correct horse"]),
    ("secret_assignment", '{"password": "s3cr3t", "user": "bob"}', ["s3cr3t"]),
    ("secret_assignment", "passwd: letmein", ["letmein"]),
    ("secret_assignment", "client_secret=abc&x=1", ["abc"]),
    ("secret_assignment", "x-api-key: k1\tGITHUB_TOKEN=ghp_123", ["k1", "ghp_123"]),
    ("secret_assignment", "API_KEY=xyz", ["xyz"]),
    ("secret_assignment", "db_pass: Yaml0Pass", ["Yaml0Pass"]),
    ("secret_assignment", "PASS=abc", ["abc"]),
    ("url_credentials", "DATABASE_URL=postgres://shop:Pa55w0rdX@10.1.2.3:5432/shop",
     ["Pa55w0rdX"]),
    ("url_credentials", "REDIS_URL=redis://:R3disPassZ@cache:6379/0", ["R3disPassZ"]),
    ("url_credentials", "url https://admin:Adm1nPassQ@intranet/", ["Adm1nPassQ"]),
    ("url_credentials", "select 'postgres://u:PwUri2525@h/db'", ["PwUri2525"]),
    ("url_credentials", "amqp://guest:gu:est@rabbit", ["gu:est"]),
]

NOT_FOUND = [
    ("email", "user@host:~$ "),
    ("email", "no at sign here"),
    ("email", "a@localhost"),
    # Luhn fails, and in every window of 13 digits or more (a 4242… or 4012888… near miss
    # holds a window that passes: digits glued to a shorter card).
    ("payment_card", "4111111111111113"),
    ("payment_card", "4111 1111 1111 1113"),
    ("payment_card", "0000 0000 0000 0000"),  # a placeholder
    ("payment_card", "ts 2024/01/02 12:30:45"),  # a date and a time
    ("payment_card", "pi 3.4444444444444441"),  # a fraction that is no card, however read
    ("payment_card", "4111/1111/1111/1113"),  # Luhn fails
    ("payment_card", "-4111111111111113"),  # a signed number that fails Luhn
    ("payment_card", "000000000000000000"),  # zeros only
    ("payment_card", "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 3"),  # Luhn fails, spaced
    # Timestamps as PostgreSQL and ls --full-time print them are no runs of digits.
    ("payment_card", "2024-05-02 09:14:03.123456+00"),
    ("payment_card", "pg 2026-12-06 07:18:55.5+05:30"),
    ("payment_card", "ls 2026-12-06 07:18:55.123456789 +0000"),
    ("payment_card", "2026-12-06T07:18:55.123-05:00"),
    ("payment_card", "12:30:45.123456"),
    ("iban", "DE89 3704 0044 0532 0130 01"),  # mod 97 fails
    ("iban", "DE89370400440532013"),  # too short for DE
    ("iban", "ZZ89370400440532013000"),  # no such country
    ("us_ssn", "000-12-3456"),
    ("us_ssn", "666-12-3456"),
    ("us_ssn", "900-12-3456"),
    ("us_ssn", "123-00-4567"),
    ("us_ssn", "123-45-0000"),
    ("us_ssn", "123-45-67890"),
    ("us_ssn", "x-123-45-6789"),  # inside a dashed token
    ("us_ssn", "1-123-45-6789"),
    ("us_ssn", "--123-45-6789"),
    ("phone", "2024-05-02"),
    ("phone", "2024-05-02T09:14:03Z"),
    ("phone", "12:30:45"),
    ("phone", "192.168.1.10"),
    ("phone", "v10.15.7"),
    ("phone", "1234567890"),
    ("phone", "id 12345678901234"),
    ("phone", "+1234567"),  # 7 digits
    ("phone", "x+12345678"),
    ("jwt", "eyJmb28iOiJiYXIifQ.eyJ4IjoxfQ.sig"),  # header without "alg"
    ("jwt", "eyJhbGciOiJIUzI1NiJ9"),  # one segment
    ("aws_access_key", "AKIAIOSFODNN7EXAMPL"),  # 15 after the prefix
    ("aws_access_key", "XAKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_key", f"some_other_value={SECRET}"),
    ("aws_secret_key", "aws_secret_access_key=short"),
    ("private_key", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"),
    ("private_key", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"),
    ("secret_assignment", "Password: "),
    ("secret_assignment", "[sudo] password for demo:"),
    ("secret_assignment", "password_hash=x"),
    ("secret_assignment", "PWD=/home/demo"),
    ("secret_assignment", "tokens: 5"),
    ("secret_assignment", 'password=""'),
    ("secret_assignment", "bypass: on"),
    ("secret_assignment", "compass=north"),
    ("url_credentials", "https://example.com:8443/path?a=b@c"),
    ("url_credentials", "http://user@host/"),
    ("url_credentials", "see https://h/x:y and mail a@b.example"),
]


@pytest.mark.parametrize(("name", "text", "values"), FOUND)
def test_finds(name: str, text: str, values: list[str]) -> None:
    assert [text[f.start:f.end] for f in BUILTIN[name].find(text)] == values


@pytest.mark.parametrize(("name", "text"), NOT_FOUND)
def test_leaves_alone(name: str, text: str) -> None:
    assert list(BUILTIN[name].find(text)) == []


def test_findings_name_their_detector() -> None:
    [f] = BUILTIN["email"].find("x a@b.co")
    assert (f.start, f.end, f.detector) == (2, 8, "email")


def test_builtin_names() -> None:
    assert set(BUILTIN) == {"email", "payment_card", "iban", "us_ssn", "phone", "jwt",
                            "aws_access_key", "aws_secret_key", "private_key",
                            "secret_assignment", "url_credentials"}


@pytest.mark.parametrize(("digits", "valid"), [
    ("4242424242424242", True), ("4111111111111111", True), ("378282246310005", True),
    ("4242424242424241", False), ("1234567812345678", False), ("79927398713", True),
])
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(("iban", "valid"), [
    ("DE89370400440532013000", True), ("GB82WEST12345698765432", True),
    ("NO9386011117947", True), ("DE89370400440532013001", False), ("GB82WEST1234569876543", False),
])
def test_iban_checksum(iban: str, valid: bool) -> None:
    assert iban_valid(iban) is valid


# --- custom detectors ------------------------------------------------------------------------

def test_custom_masks_the_value_group_when_there_is_one() -> None:
    whole = custom("order_ref", r"ORD-\d{6}")
    part = custom("pin", r"pin (?P<value>\d{4})")
    assert [(f.start, f.end) for f in whole.find("ref ORD-123456.")] == [(4, 14)]
    assert [(f.start, f.end, f.detector) for f in part.find("pin 1234")] == [(4, 8, "pin")]


def test_custom_rejects_bad_regex_and_names_in_one_sentence() -> None:
    with pytest.raises(ValueError, match="not a valid regular expression"):
        custom("broken", "(unclosed")
    with pytest.raises(ValueError, match="letters, digits"):
        custom("no spaces", "x")


def test_empty_matches_are_not_findings() -> None:
    assert list(custom("maybe", r"x*").find("abc")) == []


# --- triggers: the pre-screen may only reject text in which nothing can be found -------------

ALONE = {name: ValueMasker([detector]) for name, detector in BUILTIN.items()}
ALL = ValueMasker()


@pytest.mark.parametrize(("name", "text", "values"), [row for row in FOUND if row[2]])
def test_every_sample_passes_its_own_trigger(name: str, text: str, values: list[str]) -> None:
    assert ALONE[name].screen_text(text)
    assert ALL.screen(text.encode())


PIECES = [row[1] for row in FOUND] + [row[1] for row in NOT_FOUND] + [
    " ", "\n", ",", "=", ":", "-", "+", "(", ")", "'", '"', "0", "7", "A", "a", "@", ".",
]


@FUZZ
@given(st.lists(st.sampled_from(PIECES), max_size=6))
def test_no_finding_without_its_trigger(parts: list[str]) -> None:
    text = "".join(parts)
    for name, detector in BUILTIN.items():
        if list(detector.find(text)):
            assert ALONE[name].screen_text(text), (name, text)
            assert ALL.screen(text.encode()), (name, text)


def test_a_huge_exponent_is_no_card_and_costs_nothing() -> None:
    """Found by the prefilter property test: ``4111111111111111e0378282246310005`` in a value
    was expanded to an integer of 378 quadrillion digits (MemoryError)."""
    from engine.masking.detectors import _card_valid

    assert _card_valid("4111111111111111e0378282246310005") in (True, False)
    assert _card_valid("4.111111111111111e15")  # a card's value written as a float
