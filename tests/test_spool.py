import errno
import json
import os
import subprocess
import sys

import pytest

from sessionlens.collector.spool import Spool, SpoolFull, SpoolLocked


def segments(directory) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".seg"))


def crash(directory, *statements: str, segment_bytes: int | None = None) -> None:
    """Run ``statements`` on a Spool of ``directory`` in a process that then dies at once."""
    code = "\n".join([
        "import os, sys",
        "from sessionlens.collector.spool import Spool",
        f"spool = Spool(sys.argv[1], max_bytes=1 << 20, segment_bytes={segment_bytes!r})",
        *statements,
        "os._exit(0)",  # no close(): as after kill -9
    ])
    subprocess.run([sys.executable, "-c", code, str(directory)], check=True, timeout=60)


def test_records_survive_a_reopen_in_order(tmp_path):
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    seqs = [spool.append(f"record {i}".encode(), items=i + 1) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    spool.close()

    again = Spool(str(tmp_path), max_bytes=1 << 20)
    assert again.id == spool.id
    assert again.pending() == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
    assert [again.read(seq) for seq in range(1, 6)] == [f"record {i}".encode() for i in range(5)]
    assert again.append(b"next", items=1) == 6  # sequence numbers never repeat


def test_pending_is_limited_by_items_but_never_empty(tmp_path):
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    spool.append(b"a", items=500)
    spool.append(b"b", items=400)
    spool.append(b"c", items=300)
    assert spool.pending(max_items=1000) == [(1, 500), (2, 400)]
    assert spool.pending(max_items=10) == [(1, 500)]


def test_commit_forgets_records_and_deletes_finished_segments(tmp_path):
    spool = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=100)
    for _ in range(6):
        spool.append(bytes(80), items=1)  # one record per segment
    assert len(segments(tmp_path)) == 6
    spool.commit(4)
    assert [seq for seq, _ in spool.pending()] == [5, 6]
    assert len(segments(tmp_path)) == 2
    spool.close()
    again = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=100)
    assert [seq for seq, _ in again.pending()] == [5, 6]
    again.commit(6)
    assert segments(tmp_path) == [] and again.size_bytes == 0  # caught up: nothing left on disk
    assert again.append(b"more", items=1) == 7


def test_full_spool_refuses_until_commit_frees_space(tmp_path):
    spool = Spool(str(tmp_path), max_bytes=1000, segment_bytes=200)
    appended = 0
    with pytest.raises(SpoolFull, match="full"):
        while True:
            spool.append(bytes(150), items=1)
            appended += 1
    assert appended == 5  # 5 x (150 + 20-byte header) fit in 1000 bytes, a 6th does not
    assert spool.size_bytes <= 1000
    spool.commit(appended)
    assert spool.append(bytes(150), items=1) == appended + 1


@pytest.mark.parametrize("cut", [5, 20, 25, 169])
def test_torn_tail_is_discarded(tmp_path, cut):
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    spool.append(b"first", items=1)
    spool.append(b"second", items=1)
    spool.append(bytes(150), items=1)
    spool.close()
    (name,) = segments(tmp_path)
    path = tmp_path / name
    size = path.stat().st_size
    os.truncate(path, size - 170 + cut)  # cut inside the third record (170 bytes)

    again = Spool(str(tmp_path), max_bytes=1 << 20)
    assert again.pending() == [(1, 1), (2, 1)]
    assert path.stat().st_size == size - 170  # the torn bytes are gone
    assert again.append(b"third", items=1) == 3
    again.close()
    last = Spool(str(tmp_path), max_bytes=1 << 20)
    assert [last.read(seq) for seq, _ in last.pending()] == [b"first", b"second", b"third"]


def test_corrupt_last_record_is_discarded(tmp_path):
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    spool.append(b"good", items=1)
    spool.append(b"flipped", items=1)
    spool.close()
    (name,) = segments(tmp_path)
    data = bytearray((tmp_path / name).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / name).write_bytes(bytes(data))
    assert Spool(str(tmp_path), max_bytes=1 << 20).pending() == [(1, 1)]


def test_inflight_range_survives_a_crash_until_committed(tmp_path):
    crash(tmp_path, "for _ in range(3): spool.append(b'x', items=1)", "spool.begin(1, 2)")
    again = Spool(str(tmp_path), max_bytes=1 << 20)
    assert again.inflight == (1, 2)
    again.commit(2)
    again.close()
    assert Spool(str(tmp_path), max_bytes=1 << 20).inflight is None


@pytest.mark.parametrize("slot", [0, 1])
def test_a_torn_state_write_falls_back_to_the_other_slot(tmp_path, slot):
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    for _ in range(4):
        spool.append(b"x", items=1)
    spool.begin(1, 2)
    spool.commit(2)  # generation 2, in slot 0; generation 1 (begin) in slot 1
    spool.close()
    state = tmp_path / "state"
    data = bytearray(state.read_bytes())
    data[slot * 512 + 20] ^= 0xFF  # a write of this slot was cut short
    state.write_bytes(bytes(data))
    again = Spool(str(tmp_path), max_bytes=1 << 20)
    if slot == 0:  # the newest slot is spoiled: the begin before it stands, repeated exactly
        assert (again.committed, again.inflight) == (0, (1, 2))
    else:
        assert (again.committed, again.inflight) == (2, None)
    assert [seq for seq, _ in again.pending()] == ([1, 2, 3, 4] if slot == 0 else [3, 4])


def test_unreadable_state_says_what_to_do(tmp_path):
    Spool(str(tmp_path), max_bytes=1 << 20).close()
    (tmp_path / "state").write_bytes(b"\xff" * 1024)
    with pytest.raises(OSError, match="move the spool directory aside"):
        Spool(str(tmp_path), max_bytes=1 << 20)


def test_a_state_json_of_an_earlier_version_is_taken_over(tmp_path):
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    for _ in range(3):
        spool.append(b"x", items=1)
    spool.close()
    (tmp_path / "state").unlink()
    (tmp_path / "state.json").write_text(json.dumps({"id": "ab" * 16, "committed": 1, "inflight": [2, 2]}))
    again = Spool(str(tmp_path), max_bytes=1 << 20)
    assert (again.id, again.committed, again.inflight) == ("ab" * 16, 1, (2, 2))
    assert [seq for seq, _ in again.pending()] == [2, 3]
    assert not (tmp_path / "state.json").exists()


def test_a_new_spool_directory_gets_a_new_id(tmp_path):
    first = Spool(str(tmp_path / "a"), max_bytes=1 << 20)
    second = Spool(str(tmp_path / "b"), max_bytes=1 << 20)
    assert first.id != second.id
    first.close()
    assert Spool(str(tmp_path / "a"), max_bytes=1 << 20).id == first.id


def test_bad_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="positive"):
        Spool(str(tmp_path), max_bytes=0)


# --- one owner per directory ---------------------------------------------------------


def test_a_second_open_of_a_spool_in_use_is_refused_naming_the_owner(tmp_path):
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    spool.append(b"mine", items=1)
    with pytest.raises(SpoolLocked, match=rf"in use by another collector \(pid {os.getpid()}\)"):
        Spool(str(tmp_path), max_bytes=1 << 20)
    assert spool.append(b"still mine", items=1) == 2  # the refused opener touched nothing
    spool.close()
    again = Spool(str(tmp_path), max_bytes=1 << 20)  # closing gave it up
    assert [again.read(seq) for seq, _ in again.pending()] == [b"mine", b"still mine"]


def test_the_lock_of_a_dead_process_is_gone_with_it(tmp_path):
    crash(tmp_path, "spool.append(b'x', items=1)")
    assert Spool(str(tmp_path), max_bytes=1 << 20).pending() == [(1, 1)]


# --- failing and full disks ------------------------------------------------------------


def _no_space() -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_state_write_that_fails_in_commit_is_retried(tmp_path, monkeypatch):
    spool = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=100)
    for _ in range(4):
        spool.append(bytes(80), items=1)  # one record per segment
    spool.begin(1, 2)
    monkeypatch.setattr(spool, "_write_state", _no_space)
    spool.commit(2)  # the insert happened: this must not raise
    assert spool.state_behind and len(segments(tmp_path)) == 2  # finished segments deleted anyway
    assert not spool.flush()
    with pytest.raises(OSError):
        spool.begin(3, 4)  # no insert may start before its range is recorded
    assert spool.inflight is None
    monkeypatch.undo()
    assert spool.flush() and not spool.state_behind
    spool.close()
    again = Spool(str(tmp_path), max_bytes=1 << 20)
    assert (again.committed, again.inflight, [seq for seq, _ in again.pending()]) == (2, None, [3, 4])


@pytest.mark.parametrize("segment_bytes", [100, 1 << 20])
def test_a_crash_while_the_position_is_unrecorded_neither_loses_nor_repeats(tmp_path, segment_bytes):
    crash(
        tmp_path,
        "for _ in range(4): spool.append(bytes(80), items=1)",
        "spool.begin(1, 2)",
        "def fail(): raise OSError(28, 'No space left on device')",
        "spool._write_state = fail",
        "spool.commit(2)",
        segment_bytes=segment_bytes,
    )
    again = Spool(str(tmp_path), max_bytes=1 << 20)
    if segment_bytes == 100:  # records 1 and 2 deleted with their segments: the block is stored
        assert (again.committed, again.inflight) == (2, None)
        assert [seq for seq, _ in again.pending()] == [3, 4]
    else:  # still on disk: the same block is inserted again, under its deduplication token
        assert again.inflight == (1, 2)
        assert [seq for seq, _ in again.pending()] == [1, 2, 3, 4]


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB tmpfs of the test's own (the tests run as root, as CI does)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_stops_appends_but_not_the_drain(tiny_fs):
    spool = Spool(str(tiny_fs / "spool"), max_bytes=1 << 30, segment_bytes=64 << 10)
    payload = os.urandom(20_000)
    appended = 0
    with pytest.raises(OSError) as info:
        while True:
            spool.append(payload, items=1)
            appended += 1
    assert info.value.errno == errno.ENOSPC and appended >= 40
    # The failed record was cut off again: what is on disk is the acknowledged records.
    on_disk = sum(os.path.getsize(tiny_fs / "spool" / name) for name in segments(tiny_fs / "spool"))
    assert on_disk == spool.size_bytes == appended * (20_000 + 20)

    # The disk is full, yet the drain records its progress and frees the space.
    for first, last in [(1, appended // 2), (appended // 2 + 1, appended)]:
        spool.begin(first, last)
        assert [spool.read(seq) for seq in range(first, last + 1)] == [payload] * (last - first + 1)
        spool.commit(last)
    assert not spool.state_behind and spool.pending() == [] and segments(tiny_fs / "spool") == []
    assert spool.append(payload, items=1) == appended + 1  # room again: accepted
    spool.close()
    assert Spool(str(tiny_fs / "spool"), max_bytes=1 << 30).pending() == [(appended + 1, 1)]


def test_a_scan_from_another_thread_skips_what_is_committed_meanwhile(tmp_path):
    spool = Spool(str(tmp_path), max_bytes=1 << 20, segment_bytes=100)
    for i in range(4):
        spool.append(bytes([i]) * 80, items=1)  # one record per segment
    scan = spool.scan()
    assert next(scan) == bytes([0]) * 80
    spool.begin(1, 3)
    spool.commit(3)  # the inserter stored three records and deleted their segments
    assert list(scan) == [bytes([3]) * 80]
    assert list(spool.scan()) == [bytes([3]) * 80]
