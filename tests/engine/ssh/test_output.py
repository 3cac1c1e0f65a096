"""``ChannelOutput``: what the client gets and what the tape records of a channel's output."""

from __future__ import annotations

from collections import Counter

import pytest

from engine.masking.policy import SessionMasking, for_session
from engine.masking.rules import MaskingRule
from engine.masking.transfer import TransferError
from engine.ssh.output import (
    PASTE_OFF,
    PASTE_ON,
    ChannelOutput,
    Out,
    detaches,
    prints_no_escapes,
    transfer_kind,
    transfers_files,
    transforms_output,
)

CARD = b"4111 1111 1111 1111"


def card_masking() -> SessionMasking:
    return for_session((MaskingRule("cards", detectors=("payment_card",)),), "web", "alice",
                       frozenset(), b"k" * 32)


def cards(counts: Counter[str], *, transfer: str | None = None,
          whole: bool = False) -> ChannelOutput:
    return ChannelOutput(card_masking(), counts, transfer=transfer, whole=whole)


def test_output_is_masked_for_the_client_and_the_tape_and_counted() -> None:
    counts: Counter[str] = Counter()
    out = cards(counts).feed(b"pay " + CARD + b" now\n", False)
    assert out == Out(False, b"pay **** now\n", b"pay **** now\n")
    assert counts == {"cards:payment_card": 1}


def test_a_value_that_may_still_grow_is_held_until_a_flush() -> None:
    output = cards(Counter())
    assert output.feed(b"pay 4111 1111 11", False) == Out(False, b"pay ", b"pay ")
    assert output.held
    assert output.feed(b"4111", True) == Out(True, b"", b"")  # stderr has its own
    assert output.flush() == [Out(False, b"4111 1111 11", b"4111 1111 11"),
                              Out(True, b"4111", b"4111")]
    assert not output.held and output.flush(end=True) == []


def test_an_allowed_file_transfer_reaches_the_client_as_it_is_and_is_recorded_masked() -> None:
    counts: Counter[str] = Counter()
    output = cards(counts, transfer="allow")
    assert output.feed(CARD + b"\n", False) == Out(False, CARD + b"\n", b"****\n")
    assert output.feed(b"x " + CARD, False) == Out(False, b"x " + CARD, b"x ")
    assert output.flush(end=True) == [Out(False, b"", b"****")]  # sent already
    assert counts == {"cards:payment_card": 2}


def test_masking_applies_only_with_value_detectors() -> None:
    exempt = for_session((MaskingRule("ops", exempt=True),), "web", "alice", frozenset(), b"")
    columns = for_session((MaskingRule("cols", columns=("email",)),), "web", "alice",
                          frozenset(), b"")
    assert not ChannelOutput.masks(None)
    assert not ChannelOutput.masks(exempt)
    assert not ChannelOutput.masks(columns)
    assert ChannelOutput.masks(card_masking())


@pytest.mark.parametrize(("command", "transfer"), [
    ("scp -t /tmp", True),
    ("rsync --server -vlogDtpre.iLsfxC . /srv", True),
    ("/usr/lib/openssh/sftp-server", True),
    ("cat /etc/hosts", False),
    ("ls '", False),  # not shell words: not a transfer, masked as usual
])
def test_which_commands_transfer_files(command: str, transfer: bool) -> None:
    assert transfers_files(command) == transfer


def _sftp_data(request: int, data: bytes) -> bytes:
    body = bytes([103]) + request.to_bytes(4, "big") + len(data).to_bytes(4, "big") + data
    return len(body).to_bytes(4, "big") + body


def _sftp_status(request: int) -> bytes:
    body = bytes([101]) + request.to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(8)
    return len(body).to_bytes(4, "big") + body


@pytest.mark.parametrize("cut", [1, 7, 13, 100, 4096])
def test_an_sftp_download_is_masked_in_place_whatever_its_replies_and_chunks(cut: int) -> None:
    counts: Counter[str] = Counter()
    output = cards(counts, transfer="sftp")
    content = b"".join(b"row %d pays " % i + CARD + b"\n" for i in range(300))
    replies = b"".join(_sftp_data(i, content[at:at + 333])
                       for i, at in enumerate(range(0, len(content), 333)))
    stream = replies + _sftp_status(999)
    sent = b"".join(output.feed(stream[at:at + cut], False).sent
                    for at in range(0, len(stream), cut))
    sent += b"".join(out.sent for out in output.flush(end=True))
    assert len(sent) == len(stream)  # every length kept: the client still parses it
    assert CARD not in sent and b"4111" not in sent.replace(b"\n", b"")
    assert sent.endswith(_sftp_status(999))
    assert counts == {"cards:payment_card": 300}


def test_an_sftp_reply_held_back_goes_out_at_a_quiet_flush() -> None:
    output = cards(Counter(), transfer="sftp")
    packet = _sftp_data(1, b"pays " + CARD[:9])
    assert output.feed(packet, False).sent == b""
    assert output.held and output.quiet_flush
    # Released at a pause, the held start of a card is starred: the next read would have
    # given its rest, and no detector knows a card's second half (outside attack, issue 14).
    assert [out.sent for out in output.flush()] == [_sftp_data(1, b"pays **** ****")]


def test_sftp_that_is_not_sftp_closes_the_transfer() -> None:
    output = cards(Counter(), transfer="sftp")
    with pytest.raises(TransferError):
        output.feed(b"\xff\xff\xff\xff and more", False)


@pytest.mark.parametrize("cut", [1, 5, 64, 10_000])
def test_an_scp_download_is_masked_and_keeps_its_announced_size(cut: int) -> None:
    counts: Counter[str] = Counter()
    output = cards(counts, transfer="scp")
    body = b"a " + CARD + b"\nb " + CARD + b"\n"
    stream = (b"\x00D0755 0 dir\nC0644 %d cards.txt\n" % len(body) + body + b"\x00"
              b"C0600 5 t.txt\nhello\x00E\n")
    sent = b"".join(output.feed(stream[at:at + cut], False).sent
                    for at in range(0, len(stream), cut))
    assert len(sent) == len(stream)
    assert CARD not in sent and b"C0644 %d cards.txt\n" % len(body) in sent
    assert sent.endswith(b"C0600 5 t.txt\nhello\x00E\n")
    assert counts == {"cards:payment_card": 2}


def test_a_redacting_rule_keeps_lengths_in_a_transfer() -> None:
    masking = for_session((MaskingRule("mail", detectors=("email",), strategy="hash"),),
                          "web", "alice", frozenset(), b"k" * 32)
    output = ChannelOutput(masking, Counter(), transfer="scp")
    body = "é alice@example.com\n".encode()
    sent = output.feed(b"C0644 %d f\n" % len(body) + body + b"\x00", False).sent
    assert sent == b"C0644 %d f\n" % len(body) + "é *****@*******.***\n".encode() + b"\x00"


def test_the_whole_output_of_an_output_transform_is_masked() -> None:
    counts: Counter[str] = Counter()
    out = cards(counts, whole=True).feed(b"1111 1111 1111 1114\nmoc.elpmaxe@ecila\n", False)
    assert out.sent == out.recorded == b"**** **** **** ****\n*****************\n"
    assert counts == {"output-transform:output-transform": 1}


@pytest.mark.parametrize(("command", "kind"), [
    (None, "sftp"), ("scp -f secrets.txt", "scp"), ("scp -t /tmp", "scp"),
    ("/usr/lib/openssh/sftp-server", "sftp"), ("rsync --server --sender . x", "rsync"),
    ("rsync --server -a . /tmp/x", "upload"),
    ("cat x", None),
])
def test_transfer_kinds(command: str | None, kind: str | None) -> None:
    assert transfer_kind(command) == kind


@pytest.mark.parametrize(("command", "transforms"), [
    ("rev secrets.txt", True), ("fold -w5 secrets.txt", True), ("od -c secrets.txt", True),
    ("xxd -p secrets.txt", True), ("base64 secrets.txt", True), ("cat secrets.txt | rev", True),
    ("sudo tr 0-9 a-j < secrets.txt", True), ("gzip -c secrets.txt", True),
    ("sh -c 'cut -c1-8 secrets.txt'", True), ("echo 'unclosed", True),
    # issue 14, outside attack: anything but a plain reader transforms (allow-list)
    ("sed 's/./& /g' f", True), ("awk '{print substr($0,1,12); print substr($0,13)}' f", True),
    ("tac -r -s . f", True), ("dd conv=swab if=f", True), ("sort f | sed 's/1/I/g'", True),
    ("sed 's/@/ AT /' f", True), ("grep -o '[0-9]*' f", True), ("grep -ho x f", True),
    ("grep --only-matching x f", True), ("perl -pe 's/(.)/$1 /g' f", True),
    ("python3 -c 'print(open(\"f\").read()[::-1])'", True), ("head -c 12 f", True),
    ("tail -5c f", True), ("tail --bytes=5 f", True), ("cat -A f", True),
    ("x=$(cat f); echo ${x:0:8}", True), ("cat f | xargs -n1 echo", True),
    ("cat <<< \"$x\"", True), ("while read -n1 c; do echo $c; done < f", True),
    ("./cat f", True), ("bash -lc 'cat f'", True), ("watch cat f", True),
    ("frobnicate f", True), ("$PAGER f", True), ("date -f f", True),
    # round 11: the order sort gives, the neighbours uniq merges, spell a masked line
    ("sort s2.txt probes", True), ("cat s2.txt probes | sort", True), ("sort -u f", True),
    ("uniq -w 6 f", True), ("uniq -c f", True), ("uniq f", True),
    ("cat secrets.txt", False), ("ls -l", False), ("grep alice secrets.txt", False),
    ("sudo -u app nice -n 5 cat f | head -3 | grep -c x", False), ("/bin/cat f", False),
    ("head -n 5 f; tail -n +3 f", False), ("sh -c 'cat f'", False), ("echo hi", False),
    ("printf '%s\\n' a b", False), ("echo ready-$((2+3))", False), ("exit 3", False),
    ("grep --color=always x f", False), ("cat <<'EOF'\nplain $x\nEOF", False),
])
def test_output_transforms(command: str, transforms: bool) -> None:
    assert transforms_output(command) is transforms


def test_at_a_terminal_output_is_shown_at_once_and_recorded_once_decided() -> None:
    counts: Counter[str] = Counter()
    output = ChannelOutput(card_masking(), counts, screen=(80, 24))
    assert output.feed(b"pay 4111 1111 11", False) == Out(False, b"pay 4111 1111 11", b"pay ")
    assert not output.held  # shown: no quiet moment to wait for
    out = output.feed(b"11 1111\r\n", False)
    assert out.recorded == b"****\r\n"  # the tape never had the digits
    # back over the 12 characters shown, the mask, the 8 cells left blanked, the line break
    assert out.sent == b"\x1b[12D****" + b" " * 8 + b"\x1b[8D\r\n"
    assert CARD not in out.sent and counts == {"cards:payment_card": 1}
    output.resize(40, 10)
    assert output.flush(end=True) == []


PROMPT = PASTE_ON + b"gw$ "


def ran(command: bytes, output: bytes) -> bytes:
    """What bash writes for one line: its echo, readline done, the output, the next prompt."""
    return command + b"\r\n" + PASTE_OFF + b"\r" + output + PROMPT


def test_at_a_shell_the_output_of_a_transforming_line_is_masked_whole_not_its_prompt() -> None:
    counts: Counter[str] = Counter()
    output = cards(counts)
    output.line_sent(True, delimited=True, ends=True)  # od: it cannot forge the prompt
    out = output.feed(ran(b"od f", b"1111 1111 1111 1114\r\n"), False)
    assert out.sent == out.recorded == ran(b"od f", b"**** **** **** ****\r\n")
    assert counts == {"output-transform:output-transform": 1}
    output.line_sent(False, delimited=True)  # a plain reader after it: masked as usual
    out = output.feed(ran(b"cat f", b"pay " + CARD + b"\r\n"), False)
    assert out.sent == ran(b"cat f", b"pay ****\r\n")


def test_the_switches_are_found_across_chunks_and_each_line_gets_its_own_output() -> None:
    output = cards(Counter())
    output.line_sent(False, delimited=True)
    output.line_sent(True, delimited=True, ends=True)  # typed ahead: read after the first
    stream = ran(b"cat f", b"x " + CARD + b"\r\n") + ran(b"xxd f", b"3431 3131\r\n")
    sent = b"".join(output.feed(stream[i:i + 3], False).sent for i in range(0, len(stream), 3))
    sent += b"".join(out.sent for out in output.flush(end=True))
    # the line ahead of a transforming one is masked whole too: which output is whose is not
    # known for sure until the transforming one ran
    assert sent == ran(b"cat f", b"* **** **** **** ****\r\n") + ran(b"xxd f", b"**** ****\r\n")
    assert b"3431" not in sent and b"4111" not in sent


def test_a_line_the_shell_reads_that_was_not_announced_is_masked_whole() -> None:
    output = cards(Counter())
    output.line_sent(False, delimited=True)
    output.feed(ran(b"ls", b"a b\r\n"), False)
    out = output.feed(ran(b"", b"secret\r\n"), False)  # a line no LineSent told of
    assert out.sent == ran(b"", b"******\r\n")


@pytest.mark.parametrize("cut", [1, 3, 7, 1000])
def test_a_transform_that_may_forge_its_prompt_masks_the_rest_of_the_channel(cut: int) -> None:
    """Issue 14: ``rev`` of a file holding the switches backwards prints a prompt switch of its
    own; what follows it — and every later command — stays masked whole."""
    counts: Counter[str] = Counter()
    output = cards(counts)
    output.line_sent(True, delimited=True)  # rev: its output may hold any byte
    stream = (b"rev a\r\n" + PASTE_OFF + b"\r" + PROMPT + b"\r\n" + PASTE_OFF
              + b"pay 4111 1111 1111 1111 \r\n" + PROMPT)
    output.line_sent(False, delimited=True)  # the next line: plain, but not believed
    stream += ran(b"cat f", b"pay " + CARD + b"\r\n")
    sent = b"".join(output.feed(stream[i:i + cut], False).sent
                    for i in range(0, len(stream), cut))
    sent += b"".join(out.sent for out in output.flush(end=True))
    assert sent.startswith(b"rev a\r\n" + PASTE_OFF)
    assert set(sent[len(b"rev a\r\n" + PASTE_OFF):]) <= set(b"* \t\r\n")
    assert output.whole


def test_a_tainted_channel_is_masked_whole_from_then_on() -> None:
    output = cards(Counter())
    output.line_sent(False, delimited=True)
    output.feed(b"tail -f g\r\n" + PASTE_OFF + b"x\r\n", False)
    output.taint()  # another channel ran ``rev s >> g``
    out = output.feed(b"1111 1111 1111 1114\r\n" + PROMPT, False)
    assert set(out.sent) <= set(b"* \t\r\n") and output.whole


def test_a_password_typed_while_a_command_runs_changes_nothing() -> None:
    output = cards(Counter())
    output.line_sent(False, delimited=True)
    output.feed(b"sudo cat f\r\n" + PASTE_OFF + b"[sudo] password for a: ", False)
    output.line_sent(True, delimited=False, secret=True)
    assert not output.whole
    out = output.feed(b"\r\npay " + CARD + b"\r\n", False)
    assert out.sent.endswith(b"\r\npay ****\r\n")  # after the prompt masking held back


@pytest.mark.parametrize("before", [b"", ran(b"cat f", b"x\r\n")],
                         ids=["no switches", "at the prompt"])
def test_a_line_typed_at_a_password_prompt_of_a_shell_masks_the_rest(before: bytes) -> None:
    """``PS1='Password: '`` in a shell without bracketed paste: the line typed there is a
    shell line nothing of which the gateway knows."""
    output = cards(Counter())
    if before:
        output.line_sent(False, delimited=True)
        output.feed(before, False)
    output.line_sent(True, delimited=False, secret=True)
    assert output.whole
    assert set(output.feed(b"1111 1111 1111 1114\r\n", False).sent) <= set(b"* \r\n")


@pytest.mark.parametrize(("command", "expected"), [
    ("od -c f", True), ("xxd -p f", True), ("base64 f", True), ("seq 40", True),
    ("sleep 1; od -An -tx1 f", True), ("rev f", False), ("xxd -r f", False),
    ("base64 -d f", False), ("od -S 4 f", False), ("seq -f '%g' 3", False),
    ("od -c f | cat", False), ("od $f", False), ("od *", False), ("cat f", False),
    ("sed 's/x/y/' f", False), ("od 'unclosed", False),
])
def test_which_lines_cannot_forge_a_prompt(command: str, expected: bool) -> None:
    assert prints_no_escapes(command) is expected


@pytest.mark.parametrize("how", ["undelimited", "detaches", "suspended"])
def test_what_may_write_after_its_prompt_masks_the_rest_of_the_channel(how: str) -> None:
    output = cards(Counter())
    if how == "suspended":
        output.line_sent(True, delimited=True)
        output.feed(b"rev big\r\n" + PASTE_OFF + b"\r1111", False)
        output.suspended()  # Ctrl-Z: then bg, and the job writes after the prompt
    else:
        output.line_sent(True, delimited=how != "undelimited", detaches=how == "detaches")
    out = output.feed(ran(b"cat f", b"x\r\n"), False)
    assert set(out.sent) <= set(b"* \t\r\n") and output.whole


def test_an_exec_that_starts_a_shell_is_masked_whole_until_its_first_prompt() -> None:
    output = ChannelOutput(card_masking(), Counter(), until_prompt=True)
    out = output.feed(b"tac f\r\n" + PROMPT, False)
    assert out.sent == b"*** *\r\n" + PROMPT
    output.line_sent(False, delimited=True)
    assert output.feed(ran(b"echo hi", b"hi\r\n"), False).sent == ran(b"echo hi", b"hi\r\n")


@pytest.mark.parametrize(("command", "expected"), [
    ("rev f &", True), ("setsid rev f", True), ("(sleep 1; rev f) & wait", True),
    ("rev f", False), ("echo 'unclosed", True),
])
def test_lines_that_may_write_after_their_prompt(command: str, expected: bool) -> None:
    assert detaches(command) is expected
