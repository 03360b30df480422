"""A write-ahead spool: fsynced, length- and checksum-framed records in segment files.

The exporter appends each batch here before acknowledging it and a background inserter
moves records into ClickHouse in order. The spool remembers, durably:

- every appended record until it is committed (``append`` returns only after fsync);
- the committed position: records up to it are in ClickHouse and their segments go away;
- the in-flight range (``begin``): the records an insert is about to carry, so that after
  a crash the same records are inserted again as the same block with the same token.

A record whose header, payload or checksum is incomplete at the end of a segment is a
torn write from a crash; it was never acknowledged, so it is cut off when the spool opens.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import uuid
import zlib
from dataclasses import dataclass

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<QIII")  # seq, items, payload length, crc32(seq..length + payload)
_SEGMENT_SUFFIX = ".seg"
_STATE_FILE = "state.json"


class SpoolFull(Exception):
    """The spool holds ``max_bytes`` already; nothing more can be made durable until it drains."""


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
        os.makedirs(self.directory, exist_ok=True)
        self._open_state()
        self._recover()

    # --- state -----------------------------------------------------------------------

    def _open_state(self) -> None:
        path = os.path.join(self.directory, _STATE_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
            self.id: str = state["id"]
            self.committed: int = int(state["committed"])
            inflight = state.get("inflight")
            self.inflight: tuple[int, int] | None = tuple(inflight) if inflight else None
        except FileNotFoundError:
            if any(name.endswith(_SEGMENT_SUFFIX) for name in os.listdir(self.directory)):
                log.warning("spool %s has segments but no %s: replaying all of them", self.directory, _STATE_FILE)
            self.id, self.committed, self.inflight = uuid.uuid4().hex, 0, None
            self._write_state()
        except (ValueError, KeyError, TypeError) as exc:
            raise OSError(
                f"spool state {path} is unreadable ({exc}); move the spool directory aside to start afresh"
            ) from exc

    def _write_state(self) -> None:
        state = {"id": self.id, "committed": self.committed, "inflight": self.inflight}
        path = os.path.join(self.directory, _STATE_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._sync_directory()

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
            self.inflight = None  # its records were committed after all (or never written)
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
                    raise OSError(f"short write to spool ({written} of {record} bytes)")
                os.fdatasync(self._writer)
            except OSError:
                # The file may end in a partial record: start a new segment so the next
                # record does not follow it (recovery cuts the partial one off).
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
        self._sync_directory()  # the new file's name must survive a crash too
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

    def begin(self, first: int, last: int) -> None:
        """Durably note that records ``first..last`` are about to be inserted as one block."""
        self.inflight = (first, last)
        self._write_state()

    def commit(self, last: int) -> None:
        """Durably mark every record up to ``last`` as stored; delete segments no longer needed."""
        with self._lock:
            self.committed = max(self.committed, last)
            self.inflight = None
            for seq in [s for s in self._entries if s <= last]:
                del self._entries[seq]
            self._write_state()
            if not self._entries:
                self._close_writer()  # all written is stored: the next append starts a new segment
            for first in list(self._segments):
                self._drop_if_committed(first)

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
        self._segments.pop(first, None)
        try:
            os.remove(self._path(first))
        except FileNotFoundError:
            pass

    def _path(self, first: int) -> str:
        return os.path.join(self.directory, f"{first:020d}{_SEGMENT_SUFFIX}")

    def close(self) -> None:
        """Close the files; what is uncommitted stays for the next process."""
        with self._lock:
            self._close_writer()
            for fd in self._readers.values():
                os.close(fd)
            self._readers.clear()
