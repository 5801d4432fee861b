"""Follow a growing log file across rotation, truncation and compression of the old file.

The position of a followed file is ``(inode, offset, head)``: the inode of the file
being read, how far it has been read (always at a line boundary), and the SHA-256 of
its first bytes (up to :data:`HEAD_BYTES`), which identifies the file's *content* once
its inode is gone (a rotated file that was compressed is a new inode).  The position is
returned with every block of lines and the caller stores it in the same transaction as
the events parsed from those lines (:mod:`portradar.watch.service`), so a restart, even
after ``kill -9``, goes on exactly after the last stored line.

What logrotate does and what the follower does about it:

* **create** (the default): the log is renamed (``fw.log`` → ``fw.log.1``) and a new
  ``fw.log`` is created.  The path's inode changes; the follower first *drains* the old
  file through the descriptor it still holds (lines written between the last poll and
  the rename are there), then reads the new file from 0.
* **copytruncate**: the log is copied to ``fw.log.1`` and truncated in place.  Same
  inode, and either the size is below the offset or, when more was written after the
  truncation than had been read before it, the file's head is no longer the head we
  know (checked on every poll).  Lines written after the last poll and before the copy
  are in the copy, past the offset: the follower finds the copy (same head) among the
  rotated files and reads it from the offset before reading the truncated file from 0.
  Lines written between the copy and the truncation are lost; that is logrotate's own
  caveat for copytruncate (``man logrotate``), no reader can avoid it.  So are lines
  of a file the follower had read nothing of yet (its head unknown, e.g. a file created
  empty by the previous rotation) that were copied away before the next poll.
* **compress** (``fw.log.1`` → ``fw.log.1.gz``, or ``delaycompress``): when the
  follower was not running (or slower than the rotation), the old inode is gone; the
  rotated candidates (``fw.log.1``, ``fw.log.1.gz``, ``fw.log-20261126``...) are opened
  (decompressing) and the one whose head matches is read from the stored offset.
* **several rotations while down**: the position remembers the heads of the rotated
  files already read (and of those already there at the first start), the newest
  :data:`MAX_KNOWN`; after the checkpointed file, every rotated file with an unknown
  head is read in full, oldest first, then the current file.

The same head+tail fingerprint idea as Vector's ``checksum`` fingerprint and Filebeat's
``fingerprint`` file identity (see :mod:`portradar.store.ledger`).

>>> import os, tempfile
>>> d = tempfile.mkdtemp(); p = os.path.join(d, "fw.log")
>>> _ = open(p, "w").write("one\\ntwo\\npartial")
>>> f = FileFollower(p)
>>> data, pos = f.read()
>>> data, pos.offset
(b'one\\ntwo\\n', 8)
>>> os.rename(p, p + ".1"); _ = open(p + ".1", "a").write(" line\\n")
>>> _ = open(p, "w").write("three\\n")
>>> f.commit(pos); data, pos = f.read(); data
b'partial line\\n'
>>> f.commit(pos); data, pos = f.read(); data
b'three\\n'
>>> f.close()
"""

from __future__ import annotations

import bz2
import contextlib
import glob
import gzip
import hashlib
import lzma
import os
from dataclasses import dataclass
from typing import BinaryIO

#: Bytes of a file's start that identify it (the ingest ledger uses the same length).
HEAD_BYTES = 4096
#: Most bytes returned by one :meth:`FileFollower.read` (one micro-batch of one input:
#: 8 MiB is ~40,000 iptables lines, a few tens of ms of parsing).
MAX_READ_BYTES = 8 << 20

#: Rotated files remembered as read (``FilePosition.known``): logrotate keeps 4 to 52
#: old files in common configurations (weekly × 4 by default, daily × 52 at most in
#: Debian's own); 64 covers them all and is 5 KB of JSON in the checkpoint.
MAX_KNOWN = 64

_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".zst": None}


@dataclass(frozen=True)
class FilePosition:
    """Where a followed file has been read up to (what is checkpointed).

    ``known``: (head length, head SHA-256) of the rotated files already read, or
    already there when the follower first started; a rotated file not among them was
    rotated away while the service was down and is read in full on restart.
    """

    inode: int
    offset: int
    head_len: int
    head_sha: str
    known: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:  # JSON gives lists
        object.__setattr__(self, "known", tuple((int(n), str(h)) for n, h in self.known))

    def as_tuple(self) -> tuple[int, int, int, str, list[list[object]]]:
        return (self.inode, self.offset, self.head_len, self.head_sha,
                [[n, h] for n, h in self.known])

    def at(self, offset: int) -> FilePosition:
        return FilePosition(self.inode, offset, self.head_len, self.head_sha, self.known)

    def knowing(self, head_len: int, head_sha: str) -> FilePosition:
        """The same position, with one more rotated file known (the newest kept)."""
        if head_len == 0 or (head_len, head_sha) in self.known:
            return self
        known = (*self.known, (head_len, head_sha))[-MAX_KNOWN:]
        return FilePosition(self.inode, self.offset, self.head_len, self.head_sha, known)


def _head_of(stream: BinaryIO, length: int = HEAD_BYTES) -> bytes:
    stream.seek(0)
    return stream.read(length)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _open_any(path: str) -> BinaryIO | None:
    """Open a rotated file, decompressing by extension; None when it cannot be read."""
    ext = os.path.splitext(path)[1]
    try:
        if ext in _OPENERS:
            opener = _OPENERS[ext]
            if opener is None:
                return None  # zstd needs a package; such a copy is reported as a gap
            return opener(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")
    except OSError:
        return None


class FileFollower:
    """Read new whole lines of ``path``; survive rotation in create or copytruncate mode.

    Call :meth:`read` to get the next block of whole lines and the position after it,
    store both, then :meth:`commit` the position.  ``position`` restores a checkpoint.
    """

    def __init__(self, path: str, position: FilePosition | None = None, *,
                 max_bytes: int = MAX_READ_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._fh: BinaryIO | None = None
        self._pos = position
        #: Rotated copies that were read from a saved offset (recovery after downtime).
        self.recovered: list[str] = []
        #: Bytes known to be lost (a rotated copy gone or unreadable), for the metrics.
        self.gaps = 0
        #: Rotated files to drain before the current one: the file being read when it
        #: was rotated, then files rotated away while the service was down.
        self._old: list[tuple[BinaryIO, FilePosition]] = []
        self._old_returned: FilePosition | None = None
        self._resume()

    # -- state --------------------------------------------------------------------------
    @property
    def position(self) -> FilePosition | None:
        return self._pos

    def commit(self, position: FilePosition | None) -> None:
        """The caller stored everything up to ``position`` (as returned by :meth:`read`)."""
        if position is None:
            return
        if self._old and position is self._old_returned:
            self._old[0] = (self._old[0][0], position)
            return
        self._pos = position

    def close(self) -> None:
        for fh in (self._fh, *(f for f, _ in self._old)):
            if fh is not None:
                with contextlib.suppress(OSError):
                    fh.close()
        self._fh = None
        self._old = []

    def lag_bytes(self) -> int:
        """Bytes written to the file that were not read yet."""
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return 0
        return max(0, size - (self._pos.offset if self._pos else 0))

    # -- opening and recovery -----------------------------------------------------------
    def _open_current(self) -> bool:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - held open across reads
        except OSError:
            return False
        self._fh = fh
        return True

    def _identify(self, fh: BinaryIO, known: tuple[tuple[int, str], ...] = ()) -> FilePosition:
        head = _head_of(fh)
        return FilePosition(os.fstat(fh.fileno()).st_ino, 0, len(head), _sha(head), known)

    def _unread(self, known: tuple[tuple[int, str], ...], skip: list[tuple[int, str]],
                ) -> list[tuple[BinaryIO, FilePosition]]:
        """Rotated files whose head is neither ``known`` nor in ``skip``, oldest first,
        opened at 0 (decompressing): rotated away while the service was down."""
        out = []
        seen = [(n, h) for n, h in (*known, *skip) if n > 0]  # an empty head matches all
        for cand in reversed(self._rotated_candidates()):
            fh = _open_any(cand)
            if fh is None:
                continue
            try:
                head = fh.read(HEAD_BYTES)
                fh.seek(0)
            except (OSError, EOFError, lzma.LZMAError):
                head = b""
            if head and not any(len(head) >= n and _sha(head[:n]) == h for n, h in seen):
                out.append((fh, FilePosition(0, 0, len(head), _sha(head))))
                seen.append((len(head), _sha(head)))
                self.recovered.append(cand)
                continue
            with contextlib.suppress(OSError):
                fh.close()
        return out

    def _known_heads(self) -> tuple[tuple[int, str], ...]:
        """Heads of the rotated files there now (a first start leaves them unread)."""
        found = self._unread((), [])
        for fh, _ in found:
            with contextlib.suppress(OSError):
                fh.close()
        self.recovered = []
        return tuple((p.head_len, p.head_sha) for _, p in found)[-MAX_KNOWN:]

    def _rotated_candidates(self) -> list[str]:
        found = set(glob.glob(glob.escape(self.path) + ".*"))
        found |= set(glob.glob(glob.escape(self.path) + "-*"))
        # most recent first: the copy just made is the one we want
        return sorted(found, key=lambda p: os.stat(p).st_mtime if os.path.exists(p) else 0,
                      reverse=True)

    def _find_copy(self, pos: FilePosition) -> BinaryIO | None:
        """A rotated file whose head matches ``pos``, positioned at its offset."""
        for cand in self._rotated_candidates():
            fh = _open_any(cand)
            if fh is None:
                continue
            try:
                head = fh.read(pos.head_len)
                if len(head) == pos.head_len and _sha(head) == pos.head_sha:
                    fh.seek(pos.offset)
                    self.recovered.append(cand)
                    return fh
            except (OSError, EOFError, lzma.LZMAError):
                pass
            with contextlib.suppress(OSError):
                fh.close()
        return None

    def _matches(self, fh: BinaryIO, pos: FilePosition) -> bool:
        st = os.fstat(fh.fileno())
        if st.st_ino != pos.inode or st.st_size < pos.offset:
            return False
        head = _head_of(fh, pos.head_len)
        return len(head) == pos.head_len and _sha(head) == pos.head_sha

    def _same_head(self, pos: FilePosition) -> bool:
        assert self._fh is not None
        return _sha(_head_of(self._fh, pos.head_len)) == pos.head_sha

    def _resume(self) -> None:
        if not self._open_current():
            return
        assert self._fh is not None
        pos = self._pos
        if pos is None:
            self._pos = self._identify(self._fh, self._known_heads())
            return
        if self._matches(self._fh, pos):
            return
        # the checkpointed file was rotated (and maybe compressed) while we were away,
        # and maybe more files after it: read it from the offset, then those in full
        current = self._identify(self._fh, pos.known)
        copy = self._find_copy(pos)
        if copy is not None:
            self._old.append((copy, pos))
        else:
            self.gaps += 1
        self._old += self._unread(pos.known, [(pos.head_len, pos.head_sha),
                                              (current.head_len, current.head_sha)])
        self._pos = current if copy is not None else current.knowing(pos.head_len,
                                                                      pos.head_sha)

    # -- reading ------------------------------------------------------------------------
    def _read_lines(self, fh: BinaryIO, offset: int, final: bool) -> tuple[bytes, int]:
        """Whole lines from ``offset`` (all the rest when ``final``)."""
        fh.seek(offset)
        data = fh.read(self.max_bytes)
        if not data:
            return b"", offset
        if len(data) == self.max_bytes or not final:
            cut = data.rfind(b"\n") + 1
            if cut == 0 and not final:
                return b"", offset
            if cut:
                data = data[:cut]
        elif not data.endswith(b"\n"):
            data += b"\n"  # the last line of a rotated file is complete by now
            return data, offset + len(data) - 1
        return data, offset + len(data)

    def read(self) -> tuple[bytes, FilePosition | None]:
        """The next block of whole lines and the position after it (``b""`` when none).

        Nothing changes until :meth:`commit` is called with the returned position, so a
        failed store simply reads the same lines again.
        """
        while self._old:
            fh, pos = self._old[0]
            data, end = self._read_lines(fh, pos.offset, final=True)
            if data:
                # checkpointing the old file's position is right: a restart finds the
                # copy by its head, finishes it, then the files after it, then the
                # current file from 0 (the known heads say which files are done)
                assert self._pos is not None
                new = FilePosition(pos.inode, end, pos.head_len, pos.head_sha,
                                   self._pos.known)
                self._old_returned = new
                return data, new
            with contextlib.suppress(OSError):
                fh.close()
            self._old.pop(0)
            if self._pos is not None:
                self._pos = self._pos.knowing(pos.head_len, pos.head_sha)
        if self._fh is None and not self._open_current():
            return b"", self._pos
        if self._fh is None:
            return b"", self._pos
        if self._pos is None or self._pos.head_len == 0:
            known = self._pos.known if self._pos else ()
            fresh = self._identify(self._fh, known)
            if self._pos is None or fresh.inode == self._pos.inode:
                self._pos = fresh.at(self._pos.offset if self._pos else 0)
        pos = self._pos
        assert pos is not None
        try:
            st_path = os.stat(self.path)
        except OSError:
            st_path = None
        size = os.fstat(self._fh.fileno()).st_size
        if size < pos.offset or (pos.head_len and not self._same_head(pos)):
            # truncated, and maybe written past our offset again before this poll: the
            # head tells (one read of at most HEAD_BYTES per poll)
            return self._truncated(pos)
        rotated = st_path is not None and st_path.st_ino != pos.inode
        data, end = self._read_lines(self._fh, pos.offset, final=rotated)
        if data:
            return data, pos.at(end)
        if rotated:
            # create mode: the old file is drained, switch to the new one
            self._fh.close()
            self._fh = None
            if not self._open_current():
                return b"", self._pos
            assert self._fh is not None
            self._pos = self._identify(self._fh, pos.known).knowing(pos.head_len, pos.head_sha)
            return self.read()
        if pos.head_len < HEAD_BYTES and size > pos.head_len:
            # the head grew: re-identify (same content start, longer head)
            head = _head_of(self._fh)
            if _sha(head[: pos.head_len]) == pos.head_sha:
                self._pos = FilePosition(pos.inode, pos.offset, len(head), _sha(head),
                                         pos.known)
        return b"", self._pos

    def _truncated(self, pos: FilePosition) -> tuple[bytes, FilePosition | None]:
        """copytruncate: read the copy past our offset, then the file from 0."""
        copy = self._find_copy(pos)
        assert self._fh is not None
        self._pos = self._identify(self._fh, pos.known)
        if copy is not None:
            self._old.append((copy, pos))
        else:
            self.gaps += 1
            self._pos = self._pos.knowing(pos.head_len, pos.head_sha)
        return self.read()

