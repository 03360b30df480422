"""A write-ahead spool: fsynced, length- and checksum-framed records in segment files.

The exporter appends each batch here before acknowledging it and a background inserter
moves records into ClickHouse in order. The spool remembers, durably:

- every appended record until it is committed (``append`` returns only after fsync);
- the committed position: records up to it are in ClickHouse and their segments go away;
- the in-flight range (``begin``): the records an insert is about to carry, so that after
  a crash the same records are inserted again as the same block with the same token.

A record whose header, payload or checksum is incomplete at the end of a segment is a
torn write from a crash; it was never acknowledged, so it is cut off when the spool opens.

One process owns a spool directory: ``Spool`` takes an exclusive ``flock`` on its ``lock``
file for as long as it is open (the kernel drops it when the process dies, even by
``kill -9``), and a second process is refused with :class:`SpoolLocked` naming the owner's
pid. Without it, the second one's recovery would take the first's records being written
for torn writes and cut them off.

A full disk stops appends (``OSError``, the partial record cut off again so it takes no
space) but never the drain: the state is two fixed checksummed slots in one file,
rewritten in place and alternately, so recording progress needs no new disk blocks, and
``commit`` deletes finished segments before it records the new position. A state write
that fails anyway is kept pending and retried by the next ``begin``/``commit``/``flush``;
no insert begins before its range is durably noted.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import struct
import threading
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<QIII")  # seq, items, payload length, crc32(seq..length + payload)
_SEGMENT_SUFFIX = ".seg"
_STATE_FILE = "state"
_LEGACY_STATE_FILE = "state.json"  # written by earlier versions; read once, then replaced
_LOCK_FILE = "lock"
# magic, generation, id, committed, inflight first, inflight last (0, 0: none), crc32
_SLOT = struct.Struct("<4sQ16sQQQI")
_SLOT_MAGIC = b"SLS1"
_SLOT_BYTES = 512  # each slot in its own sector: a torn write spoils at most the one written


class SpoolFull(Exception):
    """The spool holds ``max_bytes`` already; nothing more can be made durable until it drains."""


class SpoolLocked(OSError):
    """Another live process has the spool directory open."""


def _unpack_slot(raw: bytes) -> tuple[int, str, int, tuple[int, int] | None] | None:
    """(generation, id, committed, inflight) of one state slot, or None if it is not whole."""
    if len(raw) < _SLOT.size:
        return None
    magic, generation, raw_id, committed, first, last, crc = _SLOT.unpack_from(raw)
    if magic != _SLOT_MAGIC or zlib.crc32(raw[: _SLOT.size - 4]) != crc:
        return None
    return generation, raw_id.hex(), committed, (first, last) if first else None


def disk_full(exc: OSError) -> bool:
    """True when ``exc`` says the filesystem (or the user's quota) has no room left."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True, slots=True)
class _Entry:
    segment: int  # first seq of the segment file holding the record
    offset: int  # of the record's header in that file
    length: int  # of the payload
    items: int


class Spool:
    """Durable FIFO of byte records, each with a sequence number and an item count.

    ``append`` may be called from any thread; ``read``, ``begin`` and ``commit`` belong to
    the one consumer. Sequence numbers start at 1 and never repeat within one spool
    directory; ``id`` tells spool directories apart (a deleted spool starts a new id).
    """

    def __init__(self, directory: str, max_bytes: int, segment_bytes: int | None = None) -> None:
        if max_bytes <= 0:
            raise ValueError(f"spool max size must be positive, got {max_bytes} bytes")
        self.directory = os.path.abspath(directory)
        self.max_bytes = max_bytes
        # Disk use is uncommitted records plus at most one partly committed segment;
        # a segment whose records are all committed is deleted.
        self.segment_bytes = segment_bytes or max(64 << 10, min(64 << 20, max_bytes // 16))
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}  # uncommitted records by seq
        self._segments: dict[int, int] = {}  # first seq -> file size
        self._readers: dict[int, int] = {}  # first seq -> read fd (consumer thread only)
        self._writer: int | None = None
        self._writer_segment = 0
        self._state_fd: int | None = None
        self._generation = 0
        self._state_dirty = False  # the state on disk is behind the one in memory
        os.makedirs(self.directory, exist_ok=True)
        self._lock_fd = self._take_lock()
        try:
            self._open_state()
            self._recover()
        except BaseException:
            self._release()
            raise

    # --- ownership ---------------------------------------------------------------------

    def _take_lock(self) -> int:
        path = os.path.join(self.directory, _LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise SpoolLocked(
                errno.EBUSY,
                f"spool directory {self.directory} is in use by another collector (pid {owner}); "
                "stop that one, or give this collector a spool directory of its own "
                "(exporters.clickhouse.spool.directory)",
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Who holds it, for the message above; the lock itself is the flock, not this text.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    # --- state -----------------------------------------------------------------------

    def _open_state(self) -> None:
        path = os.path.join(self.directory, _STATE_FILE)
        try:
            self._state_fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            self._create_state(path)
            return
        slots = [_unpack_slot(os.pread(self._state_fd, _SLOT_BYTES, i * _SLOT_BYTES)) for i in (0, 1)]
        valid = [slot for slot in slots if slot is not None]
        if not valid:
            raise OSError(
                f"spool state {path} is unreadable (no valid slot); "
                "move the spool directory aside to start afresh"
            )
        self._generation, self.id, self.committed, self.inflight = max(valid)

    def _create_state(self, path: str) -> None:
        """A new state file, made whole under a temporary name and renamed into place."""
        legacy = os.path.join(self.directory, _LEGACY_STATE_FILE)
        try:
            with open(legacy, encoding="utf-8") as f:
                state = json.load(f)
            self.id = state["id"]
            self.committed = int(state["committed"])
            inflight = state.get("inflight")
            self.inflight = (int(inflight[0]), int(inflight[1])) if inflight else None
        except FileNotFoundError:
            if any(name.endswith(_SEGMENT_SUFFIX) for name in os.listdir(self.directory)):
                log.warning("spool %s has segments but no %s: replaying all of them", self.directory, _STATE_FILE)
            self.id, self.committed, self.inflight = uuid.uuid4().hex, 0, None
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise OSError(
                f"spool state {legacy} is unreadable ({exc}); move the spool directory aside to start afresh"
            ) from exc
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            # Both slots exist from the start, so later writes overwrite blocks already held.
            os.pwrite(fd, self._slot(0) + self._slot(0, valid=False), 0)
            os.fsync(fd)
            os.replace(tmp, path)
        except BaseException:
            os.close(fd)
            raise
        self._state_fd = fd
        self._sync_directory()
        try:
            os.remove(legacy)
        except FileNotFoundError:
            pass

    def _slot(self, generation: int, valid: bool = True) -> bytes:
        first, last = self.inflight or (0, 0)
        body = _SLOT.pack(_SLOT_MAGIC, generation, bytes.fromhex(self.id), self.committed, first, last, 0)
        crc = zlib.crc32(body[: -4]) if valid else zlib.crc32(body[: -4]) ^ 1
        return (body[:-4] + struct.pack("<I", crc)).ljust(_SLOT_BYTES, b"\0")

    def _write_state(self) -> None:
        """Record the in-memory state durably, in the slot not holding the newest one."""
        generation = self._generation + 1
        os.pwrite(self._state_fd, self._slot(generation), (generation % 2) * _SLOT_BYTES)
        os.fdatasync(self._state_fd)
        self._generation = generation

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # --- recovery --------------------------------------------------------------------

    def _recover(self) -> None:
        firsts = sorted(
            int(name[: -len(_SEGMENT_SUFFIX)])
            for name in os.listdir(self.directory)
            if name.endswith(_SEGMENT_SUFFIX) and name[: -len(_SEGMENT_SUFFIX)].isdigit()
        )
        next_seq = self.committed + 1
        for first in firsts:
            last = self._scan_segment(first)
            if last is not None:
                next_seq = max(next_seq, last + 1)
        # Any torn records are cut off; new appends go to a fresh segment.
        self._next_seq = next_seq
        if self.inflight and self.inflight[0] not in self._entries:
            # Its first record's segment is gone, so the block was inserted and committed
            # (commit deletes segments before it records the position): all of it is stored.
            self.committed = max(self.committed, self.inflight[1])
            for seq in [s for s in self._entries if s <= self.committed]:
                del self._entries[seq]
            self.inflight = None
        for first in list(self._segments):
            self._drop_if_committed(first)

    def _scan_segment(self, first: int) -> int | None:
        """Index the uncommitted records of one segment; return its last valid seq."""
        path = self._path(first)
        size = os.path.getsize(path)
        last = None
        expected = first
        with open(path, "rb") as f:
            offset = 0
            while True:
                header = f.read(_HEADER.size)
                if not header:
                    break
                if len(header) < _HEADER.size:
                    break
                seq, items, length, crc = _HEADER.unpack(header)
                payload = f.read(length)
                if (
                    seq != expected
                    or len(payload) < length
                    or zlib.crc32(payload, zlib.crc32(header[:16])) != crc
                ):
                    break
                if seq > self.committed:
                    self._entries[seq] = _Entry(first, offset, length, items)
                last, expected = seq, seq + 1
                offset += _HEADER.size + length
        if offset < size:
            log.warning(
                "spool segment %s: discarding %d bytes after the last whole record (a write cut short by a crash)",
                path, size - offset,
            )
            with open(path, "r+b") as f:
                f.truncate(offset)
                os.fsync(f.fileno())
        self._segments[first] = offset
        return last

    # --- producer --------------------------------------------------------------------

    def append(self, payload: bytes, items: int) -> int:
        """Write one record and fsync it; return its sequence number.

        Raises :class:`SpoolFull` when it would take the spool past ``max_bytes``.
        """
        record = _HEADER.size + len(payload)
        with self._lock:
            if self.size_bytes + record > self.max_bytes:
                raise SpoolFull(
                    f"spool {self.directory} is full ({self.size_bytes} of {self.max_bytes} bytes "
                    "waiting for ClickHouse)"
                )
            if self._writer is None or self._segments[self._writer_segment] >= self.segment_bytes:
                self._rotate()
            seq = self._next_seq
            head = struct.pack("<QII", seq, items, len(payload))
            header = head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head)))
            offset = self._segments[self._writer_segment]
            try:
                written = os.writev(self._writer, [header, payload])
                if written != record:
                    # A regular file takes less than asked only when the disk (or quota) is full.
                    raise OSError(errno.ENOSPC, f"No space left: short write to spool ({written} of {record} bytes)")
                os.fdatasync(self._writer)
            except OSError:
                # The file may end in a partial record: cut it off, so a full disk gets its
                # space back, and start a new segment so the next record does not follow it
                # (if the cut fails too, recovery cuts the partial one off).
                try:
                    os.ftruncate(self._writer, offset)
                except OSError:
                    pass
                self._close_writer()
                raise
            self._segments[self._writer_segment] = offset + record
            self._entries[seq] = _Entry(self._writer_segment, offset, len(payload), items)
            self._next_seq = seq + 1
            return seq

    def _rotate(self) -> None:
        self._close_writer()
        first = self._next_seq
        fd = os.open(self._path(first), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self._sync_directory()  # the new file's name must survive a crash too
        except BaseException:
            os.close(fd)  # the empty file is forgotten by the next recovery
            raise
        self._writer, self._writer_segment = fd, first
        self._segments.setdefault(first, os.fstat(fd).st_size)

    def _close_writer(self) -> None:
        if self._writer is not None:
            os.close(self._writer)
            self._writer = None
            # A closed, empty segment holds nothing: forget it.
            if self._segments.get(self._writer_segment) == 0:
                self._remove_segment(self._writer_segment)

    # --- consumer --------------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        """Bytes of segment files on disk."""
        return sum(self._segments.values())

    def pending(self, max_items: int | None = None) -> list[tuple[int, int]]:
        """``(seq, items)`` of the oldest uncommitted records, oldest first.

        With ``max_items``, only as many records as fit in that many items (at least one).
        """
        out: list[tuple[int, int]] = []
        total = 0
        with self._lock:
            for seq, entry in self._entries.items():
                if max_items is not None and out and total + entry.items > max_items:
                    break
                out.append((seq, entry.items))
                total += entry.items
        return out

    def read(self, seq: int) -> bytes:
        """The payload of an uncommitted record."""
        with self._lock:
            entry = self._entries[seq]
        fd = self._readers.get(entry.segment)
        if fd is None:
            fd = self._readers[entry.segment] = os.open(self._path(entry.segment), os.O_RDONLY)
        return os.pread(fd, entry.length, entry.offset + _HEADER.size)

    def scan(self) -> Iterator[bytes]:
        """The payloads of the uncommitted records, oldest first, from any thread.

        It reads with files of its own; a record committed (and its segment deleted) while
        the scan runs is skipped: it is in ClickHouse by then.
        """
        with self._lock:
            entries = list(self._entries.values())
        fds: dict[int, int] = {}
        try:
            for entry in entries:
                fd = fds.get(entry.segment)
                if fd is None:
                    try:
                        fd = fds[entry.segment] = os.open(self._path(entry.segment), os.O_RDONLY)
                    except FileNotFoundError:
                        continue
                yield os.pread(fd, entry.length, entry.offset + _HEADER.size)
        finally:
            for fd in fds.values():
                os.close(fd)

    def begin(self, first: int, last: int) -> None:
        """Durably note that records ``first..last`` are about to be inserted as one block.

        Raises ``OSError`` when that cannot be written; ``inflight`` is then unchanged, so
        the caller retries ``begin`` before inserting anything.
        """
        with self._lock:
            previous, self.inflight = self.inflight, (first, last)
            try:
                self._write_state()
            except BaseException:
                self.inflight = previous
                raise
            self._state_dirty = False

    def commit(self, last: int) -> None:
        """Mark every record up to ``last`` as stored, delete segments no longer needed, and
        record the new position.

        Never raises for a full or failing disk: segments are deleted first (which is what
        frees a full disk), and a position that cannot be written now stays pending for the
        next ``begin``, ``commit`` or ``flush`` (until then a restart repeats the last block
        under its deduplication token, or sees its segments gone and counts it stored).
        """
        with self._lock:
            self.committed = max(self.committed, last)
            self.inflight = None
            for seq in [s for s in self._entries if s <= last]:
                del self._entries[seq]
            if not self._entries:
                self._close_writer()  # all written is stored: the next append starts a new segment
            for first in list(self._segments):
                self._drop_if_committed(first)
            self._state_dirty = True
            self._try_write_state()

    @property
    def state_behind(self) -> bool:
        """True while the position on disk lags the one in memory (a state write failed)."""
        return self._state_dirty

    def flush(self) -> bool:
        """Retry a state write that failed, and deletions of finished segments; True when
        nothing is left pending."""
        with self._lock:
            for first in list(self._segments):
                self._drop_if_committed(first)
            return self._try_write_state() if self._state_dirty else True

    def _try_write_state(self) -> bool:
        try:
            self._write_state()
            self._state_dirty = False
            return True
        except OSError as exc:
            log.warning("spool %s: cannot record its position (%s); retrying", self.directory, exc)
            return False

    def _drop_if_committed(self, first: int) -> None:
        if self._writer is not None and first == self._writer_segment:
            return
        later = [f for f in self._segments if f > first]
        end = min(later) - 1 if later else self._next_seq - 1
        if end <= self.committed:
            self._remove_segment(first)

    def _remove_segment(self, first: int) -> None:
        fd = self._readers.pop(first, None)
        if fd is not None:
            os.close(fd)
        try:
            os.remove(self._path(first))
        except FileNotFoundError:
            pass
        except OSError as exc:  # kept in _segments: the next commit or flush tries again
            log.warning("spool %s: cannot delete a finished segment (%s); retrying", self.directory, exc)
            return
        self._segments.pop(first, None)

    def _path(self, first: int) -> str:
        return os.path.join(self.directory, f"{first:020d}{_SEGMENT_SUFFIX}")

    def close(self) -> None:
        """Close the files and give up the directory; what is uncommitted stays for the next process."""
        with self._lock:
            self._close_writer()
            for fd in self._readers.values():
                os.close(fd)
            self._readers.clear()
            if self._state_dirty:
                self._try_write_state()
            self._release()

    def _release(self) -> None:
        if self._state_fd is not None:
            os.close(self._state_fd)
            self._state_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # drops the flock
            self._lock_fd = None
