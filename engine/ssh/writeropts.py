"""Where a program that may write files writes, read with that program's own option grammar
(issue 14).

A file written by a transform is remembered by name (``engine.ssh.written``), so the name has
to be found the way the program finds it. Reading words by their looks misses forms the program
takes: an option cluster (``sort -uo F``), a long option with its value as the next word
(``--output F``), an abbreviation (``--out=F``), an option's value that shifts the operands
(``uniq -f 0 - F``), options after the operands, which GNU getopt moves ahead of them
(``split - P -l 1``), and ``--`` ending the options (``tee -- -x.txt``). So each writer here has
its grammar: which short letters and long names take a value, which take one only after ``=``,
which take none. The words are read as getopt would, once permuting and once not (a
``POSIXLY_CORRECT`` environment stops the permutation), and what either reading writes counts.

Copiers (``cp``, ``mv``, ``install``, ``ln``) are read the same way (``copied``): where a copy
of a marked file lands (``cp -vt DIR``, ``--target-directory DIR``, ``-t/d``).

Fail closed: a word the grammar does not know (an option the program does not have, an
ambiguous abbreviation, a value missing) means the gateway cannot place the operands, so every
operand and every option value counts as written (``Outputs.guessed``); a program told to run a
command with what it writes (``split --filter``) writes where the gateway cannot see
(``Outputs.anywhere``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_DIGITS = "0123456789"
_NUMBER = re.compile(r"[-+]?(?:0[xX])?[0-9a-fA-F]+")


@dataclass(frozen=True)
class Grammar:
    """A program's options: short letters with a value (``value``) and without (``flags``);
    long names with a value (``long_value``: ``--x=v`` or ``--x v``), with one only after
    ``=`` (``long_optional``), and without (``long_flags``). ``permutes``: getopt takes options
    after the operands too (GNU); else the first operand ends the options. ``clusters``:
    letters may be run together (``-uo F``); else a word holds one letter and, after it, only
    a number (``-c8``): anything else is a word the grammar does not know."""

    value: str
    flags: str
    long_value: tuple[str, ...] = ()
    long_optional: tuple[str, ...] = ()
    long_flags: tuple[str, ...] = ("--help", "--version")
    permutes: bool = True
    clusters: bool = True  # ``-uo F``; else one letter a word, a value only a number after it
    optional: str = ""  # short letters whose value is only the rest of the word (``-i.bak``)


_GRAMMARS: dict[str, Grammar] = {
    "sort": Grammar("kotSTy", "bcCdfghimMnrRsuVz", (
        "--key", "--output", "--buffer-size", "--field-separator", "--temporary-directory",
        "--parallel", "--batch-size", "--compress-program", "--files0-from", "--random-source",
        "--sort"), ("--check",), (
        "--ignore-leading-blanks", "--dictionary-order", "--ignore-case",
        "--general-numeric-sort", "--ignore-nonprinting", "--month-sort",
        "--human-numeric-sort", "--numeric-sort", "--random-sort", "--reverse",
        "--version-sort", "--merge", "--stable", "--unique", "--zero-terminated", "--debug",
        "--help", "--version")),
    "shuf": Grammar("ino", "erz", ("--input-range", "--head-count", "--output",
                                   "--random-source"), (), (
        "--echo", "--repeat", "--zero-terminated", "--help", "--version")),
    "iconv": Grammar("fto", "cslV?", ("--from-code", "--to-code", "--output"), (), (
        "--silent", "--verbose", "--list", "--help", "--usage", "--version")),
    "uniq": Grammar("fsw", "cdDiuz" + _DIGITS, ("--skip-fields", "--skip-chars",
                                                "--check-chars"),
                    ("--all-repeated", "--group"), (
        "--count", "--repeated", "--unique", "--zero-terminated", "--ignore-case", "--help",
        "--version")),
    "tee": Grammar("", "aip", (), ("--output-error",), (
        "--append", "--ignore-interrupts", "--help", "--version")),
    "split": Grammar("Cablnt", "deux" + _DIGITS, (
        "--bytes", "--line-bytes", "--lines", "--number", "--additional-suffix",
        "--suffix-length", "--separator", "--filter"), ("--numeric-suffixes", "--hex-suffixes"),
        ("--elide-empty-files", "--unbuffered", "--verbose", "--help", "--version")),
    "csplit": Grammar("bfn", "ksqz", ("--prefix", "--suffix-format", "--digits"), (), (
        "--keep-files", "--quiet", "--silent", "--elide-empty-files", "--suppress-matched",
        "--help", "--version")),
    # xxd reads its options itself, before its operands only; its long forms (``-cols``,
    # ``-len``) are words the grammar does not know: every operand counts then
    "sed": Grammar("efl", "nrEsuz", ("--expression", "--file", "--line-length"),
                   ("--in-place",), (
        "--quiet", "--silent", "--regexp-extended", "--separate", "--unbuffered",
        "--null-data", "--zero-terminated", "--posix", "--debug", "--sandbox",
        "--follow-symlinks", "--binary", "--help", "--version"), optional="i"),
    "xxd": Grammar("cglnosR", "abCdEehipruv", ("-cols", "-groupsize", "-len", "-name", "-seek"),
                   (), ("-ps", "-postscript", "-plain", "-bits", "-include", "-revert",
                        "-autoskip", "-capitalize", "-EBCDIC", "-help", "-version"),
                   permutes=False, clusters=False),
}
WRITERS = frozenset(_GRAMMARS)
_BACKUP = ("--backup",)
# Programs that copy (or move, or link) files as they are: where they put them.
_COPIERS: dict[str, Grammar] = {
    "cp": Grammar("St", "abdfHilLnprsuvxPRTZ", (
        "--no-preserve", "--sparse", "--suffix", "--target-directory"), (
        *_BACKUP, "--preserve", "--reflink", "--update", "--context"), (
        "--archive", "--attributes-only", "--copy-contents", "--debug", "--force",
        "--interactive", "--link", "--dereference", "--no-clobber", "--no-dereference",
        "--parents", "--recursive", "--remove-destination", "--strip-trailing-slashes",
        "--symbolic-link", "--no-target-directory", "--verbose", "--one-file-system",
        "--keep-directory-symlink", "--help", "--version")),
    "mv": Grammar("St", "bfinuvTZ", ("--suffix", "--target-directory"), (
        *_BACKUP, "--update", "--context"), (
        "--exchange", "--force", "--interactive", "--no-clobber", "--no-copy",
        "--no-target-directory", "--strip-trailing-slashes", "--verbose", "--debug",
        "--help", "--version")),
    "install": Grammar("gmotS", "bcCdDpsTvZ", (
        "--group", "--mode", "--owner", "--strip-program", "--suffix", "--target-directory"),
        (*_BACKUP, "--context"), (
        "--compare", "--debug", "--directory", "--preserve-timestamps", "--strip",
        "--no-target-directory", "--verbose", "--preserve-context", "--help", "--version")),
    "ln": Grammar("St", "bdfinrsvFLPT", ("--suffix", "--target-directory"), _BACKUP, (
        "--directory", "--force", "--interactive", "--logical", "--no-dereference",
        "--physical", "--relative", "--symbolic", "--no-target-directory", "--verbose",
        "--help", "--version")),
    "link": Grammar("", "", ()),
}
_COPIERS["ginstall"] = _COPIERS["install"]
COPIERS = frozenset(_COPIERS)


@dataclass(frozen=True)
class Copied:
    """What a copier copies (``sources``) and where to (``destinations``: the directory
    ``-t`` names, else the last operand)."""

    sources: tuple[str, ...]
    destinations: tuple[str, ...]


def copied(name: str, words: tuple[str, ...]) -> Copied | None:
    """``cp``, ``mv``, ``install``, ``ln`` read with their own grammar (``-vt DIR``,
    ``--target-directory DIR``, ``-t/d``, ``--``), under every reading getopt may give them;
    words the grammar cannot read make every word a source and a destination. None for
    another program."""
    grammar = _COPIERS.get(name)
    if grammar is None:
        return None
    sources: list[str] = []
    destinations: list[str] = []
    for permute in (True, False):
        parsed = parse_words(grammar, words, permute=permute)
        if parsed.unknown:
            every = _every_value(words)
            sources += every
            destinations += every
            continue
        into = [v for o, v in parsed.options
                if o in ("-t", "--target-directory") and v is not None]
        if into:
            sources += parsed.operands
            destinations += into
        else:
            sources += parsed.operands[:-1]
            destinations += parsed.operands[-1:]
    return Copied(tuple(dict.fromkeys(w for w in sources if w)),
                  tuple(dict.fromkeys(w for w in destinations if w)))


@dataclass
class Parsed:
    """The options (name, value or None) and operands of one reading of a command's words;
    ``unknown``: a word the grammar does not know, so the operands cannot be placed."""

    options: list[tuple[str, str | None]] = field(default_factory=list)
    operands: list[str] = field(default_factory=list)
    unknown: bool = False


@dataclass(frozen=True)
class Outputs:
    """What a writer writes: ``files`` by name, ``prefixes`` of pieces (``split``, ``csplit``:
    every name that starts so), and ``anywhere``: where the gateway cannot see."""

    files: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    anywhere: bool = False

    def __bool__(self) -> bool:
        return bool(self.files or self.prefixes or self.anywhere)


def parse_words(grammar: Grammar, words: tuple[str, ...], *, permute: bool) -> Parsed:
    """``words`` read as getopt reads them with ``grammar`` (``permute``: options may follow
    operands)."""
    out = Parsed()
    longs = grammar.long_value + grammar.long_optional + grammar.long_flags
    ended = False
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if ended or word == "-" or not word.startswith("-") or (
                not permute and out.operands):
            out.operands.append(word)
            if not permute:
                ended = True
            continue
        if word == "--":
            ended = True
            continue
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            matches = [o for o in longs if o == name] or [o for o in longs if o.startswith(name)]
            if len(matches) != 1:
                out.unknown = True
                continue
            option = matches[0]
            if option in grammar.long_value:
                if not eq:
                    if i >= len(words):
                        out.unknown = True
                        continue
                    value = words[i]
                    i += 1
                out.options.append((option, value))
            elif option in grammar.long_optional:
                out.options.append((option, value if eq else None))
            elif eq:
                out.unknown = True  # a flag given a value: the program refuses it
            else:
                out.options.append((option, None))
            continue
        if not grammar.clusters and word in grammar.long_value + grammar.long_flags:
            if word in grammar.long_flags:
                out.options.append((word, None))
            elif i < len(words):
                out.options.append((word, words[i]))
                i += 1
            else:
                out.unknown = True
            continue
        if not grammar.clusters and len(word) > 2 and not (
                word[1] in grammar.value and _NUMBER.fullmatch(word[2:])):
            out.unknown = True  # ``xxd -cols 8``: its own long forms
            continue
        for j, letter in enumerate(word[1:], start=1):
            if letter in grammar.value:
                value = word[j + 1:]
                if not value:
                    if i >= len(words):
                        out.unknown = True
                        break
                    value = words[i]
                    i += 1
                out.options.append(("-" + letter, value))
                break
            if letter in grammar.optional:
                out.options.append(("-" + letter, word[j + 1:] or None))
                break
            if letter in grammar.flags:
                out.options.append(("-" + letter, None))
                continue
            out.unknown = True
            break
    return out


def outputs(name: str, words: tuple[str, ...]) -> Outputs | None:
    """What ``name`` run with ``words`` writes, under every reading getopt may give it; None
    for a program whose grammar is not here."""
    grammar = _GRAMMARS.get(name)
    if grammar is None:
        return None
    files: list[str] = []
    prefixes: list[str] = []
    anywhere = False
    for permute in ((True, False) if grammar.permutes else (False,)):
        parsed = parse_words(grammar, words, permute=permute)
        if parsed.unknown:
            guessed = _every_value(words)
            files += guessed
            if name in ("split", "csplit"):
                prefixes += [*guessed, "x"]
            continue
        found = _written(name, parsed)
        if found is None:
            anywhere = True
            continue
        files += found[0]
        prefixes += found[1]
    return Outputs(tuple(dict.fromkeys(w for w in files if w)),
                   tuple(dict.fromkeys(prefixes)), anywhere)


def _written(name: str, parsed: Parsed) -> tuple[list[str], list[str]] | None:
    """Files and prefixes one reading writes; None when a command it runs writes them."""
    values = {option: value for option, value in parsed.options}
    operands = parsed.operands
    if name in ("sort", "shuf", "iconv"):
        files = [v for o, v in parsed.options if o in ("-o", "--output") and v is not None]
        if name == "sort" and "--compress-program" in values:
            return None  # a program of the user's choice writes its temporary files
        return files, []
    if name == "uniq":
        return [w for w in operands[1:2] if w != "-"], []
    if name == "xxd":
        return [w for w in operands[1:2] if w != "-"], []
    if name == "tee":
        return list(operands), []  # GNU tee writes a file named ``-`` too
    if name == "sed":
        if not any(o in ("-i", "--in-place") for o, _ in parsed.options):
            return [], []
        scripted = any(o in ("-e", "-f", "--expression", "--file") for o, _ in parsed.options)
        return list(operands if scripted else operands[1:]), []  # the files after the script
    if name == "split":
        if "--filter" in values:
            return None
        prefix = operands[1] if len(operands) > 1 else "x"
        return [], [prefix]
    # csplit
    prefix = next((v for o, v in reversed(parsed.options)
                   if o in ("-f", "--prefix") and v is not None), "xx")
    return [], [prefix]


def _every_value(words: tuple[str, ...]) -> list[str]:
    """Every word that may be an operand or an option's value when the options cannot be
    read: each word, each value after ``=``, and each tail of a short option cluster."""
    out: list[str] = []
    for word in words:
        if word == "--":
            continue
        if word.startswith("--"):
            out.append(word.partition("=")[2] if "=" in word else word)
        elif word.startswith("-") and len(word) > 1:
            out += [word, *(word[k:] for k in range(2, len(word)))]
        else:
            out.append(word)
    return [w for w in out if w]


def prefix_glob(prefix: str) -> str:
    """Every name that starts with ``prefix`` (its own glob characters taken as themselves)."""
    return re.sub(r"([*?\[])", r"[\1]", prefix) + "*"
