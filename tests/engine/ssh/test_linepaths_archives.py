"""Found by the outside attack on the SSH written-files memory (issue 14): archives and
compressed files written by a masked connection were not remembered (a later ``cat x.tgz``,
or an scp of it, carried the secrets out compressed), and ``/proc/PID/root`` and ``/cwd`` led to
a remembered file under a name the memory did not know."""

from __future__ import annotations

import pytest

from engine.ssh.linepaths import Place, reads, same, transforms, writes

HOME = frozenset({"/home/alice"})


def written(line: str) -> list[Place]:
    return [w.place for w in writes(line, HOME) if w.place is not None]


def marked(path: str) -> Place:
    return Place(tuple(path.strip("/").split("/")), True, False)


@pytest.mark.parametrize(("line", "path"), [
    ("tar czf /tmp/a.tgz .env", "/tmp/a.tgz"),
    ("tar -czf /tmp/a.tgz .env", "/tmp/a.tgz"),
    ("tar -cz -f /tmp/a.tgz .env", "/tmp/a.tgz"),
    ("tar --create --gzip --file=/tmp/a.tgz .env", "/tmp/a.tgz"),
    ("tar --create --file /tmp/a.tar .env", "/tmp/a.tar"),
    ("gzip /tmp/copy", "/tmp/copy.gz"),
    ("bzip2 -k /tmp/copy", "/tmp/copy.bz2"),
    ("xz /tmp/copy", "/tmp/copy.xz"),
    ("zstd /tmp/copy", "/tmp/copy.zst"),
    ("zip /tmp/a.zip .env", "/tmp/a.zip"),
    ("zip /tmp/a .env", "/tmp/a.zip"),
    ("7z a /tmp/a.7z .env", "/tmp/a.7z"),
])
def test_an_archive_or_compressed_file_written_is_remembered(line: str, path: str) -> None:
    assert transforms(line)
    assert any(same(p, marked(path)) for p in written(line)), written(line)


def test_a_compressor_writing_its_standard_output_writes_only_the_redirection() -> None:
    assert [p.parts for p in written("gzip -c .env > /tmp/out")] == [("tmp", "out")]


@pytest.mark.parametrize("line", [
    "cat /proc/self/root/tmp/gwh",
    "cat /proc/1/root/tmp/gwh",
    "cat //proc/self/root//tmp/gwh",
    "head /proc/self/root/proc/self/root/tmp/gwh",
    "cd /tmp && cat /proc/self/cwd/gwh",
    "cat /proc/self/fd/3",
    "cat /proc/42/map_files/7f00-7f01",
])
def test_another_process_s_view_of_the_file_system_reads_the_file_it_leads_to(
        line: str) -> None:
    found = reads(line, HOME).files
    assert any(same(p, marked("/tmp/gwh")) for p in found), found


def test_an_ordinary_proc_file_is_only_itself() -> None:
    found = reads("cat /proc/cpuinfo", HOME).files
    assert not any(same(p, marked("/tmp/gwh")) for p in found)
