"""The file follower across logrotate's create and copytruncate modes, with gzip."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

from portradar.watch.file_follower import FileFollower, FilePosition


def _drain(f: FileFollower, got: list[bytes], rounds: int = 20) -> None:
    for _ in range(rounds):  # bounded
        data, pos = f.read()
        if not data:
            return
        got.extend(data.splitlines())
        f.commit(pos)


def _write(path: Path, lines: range) -> None:
    with open(path, "a") as fh:
        fh.writelines(f"line {i}\n" for i in lines)


def test_create_rotation_drains_old_file(tmp_path: Path) -> None:
    p = tmp_path / "fw.log"
    _write(p, range(0, 100))
    f = FileFollower(str(p))
    got: list[bytes] = []
    _drain(f, got)
    _write(p, range(100, 150))  # written before the rename, not yet read
    os.rename(p, tmp_path / "fw.log.1")
    _write(p, range(150, 200))
    _drain(f, got)
    assert got == [f"line {i}".encode() for i in range(200)]


def test_copytruncate_reads_the_copy_past_the_offset(tmp_path: Path) -> None:
    p = tmp_path / "fw.log"
    _write(p, range(0, 100))
    f = FileFollower(str(p))
    got: list[bytes] = []
    _drain(f, got)
    _write(p, range(100, 130))
    shutil.copy(p, tmp_path / "fw.log.1")
    os.truncate(p, 0)
    _write(p, range(130, 160))
    _drain(f, got)
    assert got == [f"line {i}".encode() for i in range(160)]


def test_restart_after_rotation_and_gzip(tmp_path: Path) -> None:
    p = tmp_path / "fw.log"
    _write(p, range(0, 100))
    f = FileFollower(str(p))
    got: list[bytes] = []
    _drain(f, got)
    saved = f.position
    f.close()
    _write(p, range(100, 140))  # written while the follower is down
    os.rename(p, tmp_path / "fw.log.1")
    with open(tmp_path / "fw.log.1", "rb") as src, gzip.open(tmp_path / "fw.log.1.gz",
                                                              "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.remove(tmp_path / "fw.log.1")
    _write(p, range(140, 170))
    g = FileFollower(str(p), saved)
    _drain(g, got)
    assert got == [f"line {i}".encode() for i in range(170)]
    assert g.recovered and g.recovered[0].endswith(".gz")


def test_partial_line_waits(tmp_path: Path) -> None:
    p = tmp_path / "fw.log"
    p.write_bytes(b"a\nb")
    f = FileFollower(str(p))
    got: list[bytes] = []
    _drain(f, got)
    assert got == [b"a"]
    with open(p, "ab") as fh:
        fh.write(b"c\n")
    _drain(f, got)
    assert got == [b"a", b"bc"]


def test_copytruncate_then_more_than_was_read_before_the_next_poll(tmp_path: Path) -> None:
    # the truncated file grew past the old offset before the follower looked again: the
    # size says nothing, the head does (found by the watch end-to-end test)
    p = tmp_path / "fw.log"
    _write(p, range(0, 10))
    f = FileFollower(str(p))
    got: list[bytes] = []
    _drain(f, got)
    _write(p, range(10, 20))
    shutil.copy(p, tmp_path / "fw.log.1")
    with gzip.open(tmp_path / "fw.log.1.gz", "wb") as gz, open(tmp_path / "fw.log.1", "rb") as c:
        gz.write(c.read())
    os.unlink(tmp_path / "fw.log.1")
    os.truncate(p, 0)
    _write(p, range(1000, 1100))  # far more bytes than the 10 lines read before
    _drain(f, got)
    assert got == [f"line {i}".encode() for i in [*range(20), *range(1000, 1100)]]
    assert f.recovered == [str(tmp_path / "fw.log.1.gz")]


def _restored(pos: FilePosition | None) -> FilePosition:
    """A position returned by ``read``, as the service stores and loads it (JSON)."""
    assert pos is not None
    return FilePosition(*json.loads(json.dumps(pos.as_tuple())))


def test_two_rotations_while_down_read_the_middle_file_too(tmp_path: Path) -> None:
    p = tmp_path / "fw.log"
    with gzip.open(tmp_path / "fw.log.9.gz", "wt") as old:  # there before the first start
        old.write("line -1\n")
    _write(p, range(0, 10))
    f = FileFollower(str(p))
    got: list[bytes] = []
    _drain(f, got)
    saved = _restored(f.position)
    f.close()  # the service is down from here
    _write(p, range(10, 20))
    os.rename(p, tmp_path / "fw.log.1")
    _write(p, range(20, 30))
    with open(tmp_path / "fw.log.1", "rb") as src, gzip.open(tmp_path / "fw.log.2.gz", "wb") as gz:
        gz.write(src.read())
    os.unlink(tmp_path / "fw.log.1")
    os.rename(p, tmp_path / "fw.log.1")
    _write(p, range(30, 40))
    # restart; killed once more after two small reads of the recovery
    f = FileFollower(str(p), saved, max_bytes=24)
    for _ in range(2):
        data, pos = f.read()
        got.extend(data.splitlines())
        f.commit(pos)
    saved = _restored(pos)
    f.close()
    f = FileFollower(str(p), saved)
    last = None
    for _ in range(20):  # bounded
        data, pos = f.read()
        if not data:
            break
        got.extend(data.splitlines())
        f.commit(pos)
        last = pos
    assert got == [f"line {i}".encode() for i in range(40)]
    # a later restart from the last stored position reads nothing again
    saved = _restored(last)
    f.close()
    again: list[bytes] = []
    f = FileFollower(str(p), saved)
    _drain(f, again)
    assert again == [] and f.gaps == 0
