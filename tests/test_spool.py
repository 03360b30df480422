import json
import os

import pytest

from sessionlens.collector.spool import Spool, SpoolFull


def segments(directory) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".seg"))


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
    for i in range(6):
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
    spool = Spool(str(tmp_path), max_bytes=1 << 20)
    for _ in range(3):
        spool.append(b"x", items=1)
    spool.begin(1, 2)
    # no commit: the process dies here
    again = Spool(str(tmp_path), max_bytes=1 << 20)
    assert again.inflight == (1, 2)
    again.commit(2)
    assert Spool(str(tmp_path), max_bytes=1 << 20).inflight is None


def test_unreadable_state_says_what_to_do(tmp_path):
    Spool(str(tmp_path), max_bytes=1 << 20).close()
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(OSError, match="move the spool directory aside"):
        Spool(str(tmp_path), max_bytes=1 << 20)


def test_a_new_spool_directory_gets_a_new_id(tmp_path):
    first = Spool(str(tmp_path / "a"), max_bytes=1 << 20)
    second = Spool(str(tmp_path / "b"), max_bytes=1 << 20)
    assert first.id != second.id
    assert json.loads((tmp_path / "a" / "state.json").read_text())["id"] == first.id


def test_bad_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="positive"):
        Spool(str(tmp_path), max_bytes=0)
