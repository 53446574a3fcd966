"""The spool's files on their own: segments, the acknowledged position, adoption by another client."""

from __future__ import annotations

import orjson

from atlas_compliance.client.backlog import SpoolWriter, adopt_orphans


def event(i: int) -> bytes:
    return orjson.dumps({"sql": f"SELECT {i}", "eventId": f"e{i}"})


def drain(reader, batch: int) -> list[int]:
    seen = []
    while chunk := reader.peek(batch, 1 << 20):
        seen += [int(orjson.loads(line)["eventId"][1:]) for line in chunk]
        reader.settle()
    return seen


def test_events_cross_segments_in_order_and_finished_segments_are_removed(tmp_path):
    writer = SpoolWriter(tmp_path, segment_bytes=500)  # about 12 events a segment
    for i in range(100):
        writer.append(event(i))
    assert len(list(writer.directory.glob("*.ndjson"))) >= 8
    assert writer.pending == 100
    assert drain(writer, 7) == list(range(100))
    assert writer.pending == 0 and writer.pending_bytes == 0
    assert len(list(writer.directory.glob("*.ndjson"))) == 1  # only the one being written
    assert writer.close() is True and not writer.directory.exists()


def test_another_client_adopts_what_a_dead_writer_left_from_its_acknowledged_position(tmp_path):
    writer = SpoolWriter(tmp_path, segment_bytes=500)
    for i in range(40):
        writer.append(event(i))
    writer.peek(15, 1 << 20)
    writer.settle()  # the server answered for the first 15
    writer.peek(10, 1 << 20)  # sent, but the process dies before the answer
    assert adopt_orphans(tmp_path, None) == []  # its writer is alive: nobody may touch it
    last = max(writer.directory.glob("*.ndjson"))
    with open(last, "ab") as torn:
        torn.write(b'{"sql": "SELECT half')  # the process died in the middle of a write
    assert writer.close() is False  # not drained: the directory stays, its lock is released
    (orphan,) = adopt_orphans(tmp_path, None)
    assert adopt_orphans(tmp_path, None) == []  # one adopter at a time
    assert drain(orphan, 8) == list(range(15, 40))  # the unanswered batch comes again; the torn line does not
    orphan.remove()
    assert list(tmp_path.iterdir()) == []
