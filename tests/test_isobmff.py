"""The ISOBMFF box tools on hand-made files: headers (32/64-bit sizes, size 0), trees, building,
and adding boxes to a video sample entry in place."""

import struct

import pytest

from sbsconvert.formats.isobmff.boxes import (add_to_video_sample_entry, box, full_box, parse_boxes, read_boxes,
                                      video_sample_entry)


def test_box_and_full_box_bytes():
    assert box(b"free") == b"\x00\x00\x00\x08free"
    assert full_box(b"hero", 0, 0, b"\x01") == b"\x00\x00\x00\x0dhero\x00\x00\x00\x00\x01"
    assert full_box(b"test", 1, 0x000203)[8:12] == b"\x01\x00\x02\x03"
    nested = box(b"eyes", b"", full_box(b"stri", 0, 0, b"\x03"))
    assert struct.unpack(">I", nested[:4])[0] == 8 + 13


def test_headers_with_64_bit_and_open_ended_sizes():
    large = struct.pack(">I4sQ", 1, b"mdat", 20) + b"abcd"
    open_ended = struct.pack(">I4s", 0, b"free") + b"xyz"
    data = box(b"ftyp", b"isom") + large + open_ended
    boxes = read_boxes(data, 0, len(data))
    assert [(b.kind, b.header, b.size) for b in boxes] == [(b"ftyp", 8, 12), (b"mdat", 16, 20), (b"free", 8, 11)]
    with pytest.raises(ValueError):
        read_boxes(struct.pack(">I4s", 100, b"moov") + bytes(12), 0, 20)  # claims more than there is


def hand_movie(entry_kind=b"hvc1", extra=b""):
    """ftyp, mdat, then a moov with one video track whose sample entry holds hvcC (and `extra`)."""
    entry = box(entry_kind, bytes(78), box(b"hvcC", b"\x01\x02"), extra)
    stsd = full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry)
    hdlr = full_box(b"hdlr", 0, 0, b"\x00" * 4 + b"vide" + b"\x00" * 13)
    sound = box(b"trak", b"", box(b"mdia", b"", full_box(b"hdlr", 0, 0, b"\x00" * 4 + b"soun" + b"\x00" * 13)))
    video = box(b"trak", b"", box(b"mdia", b"", hdlr, box(b"minf", b"", box(b"stbl", b"", stsd))))
    return box(b"ftyp", b"isom") + box(b"mdat", b"media") + box(b"moov", b"", sound, video)


def test_tree_paths_and_sample_entry_chain():
    data = hand_movie()
    (moov,) = [node for node in parse_boxes(data) if node.kind == b"moov"]
    assert [node.kind for node in moov.children] == [b"trak", b"trak"]
    (entry,) = moov.find_all("hvc1")
    assert entry.find("hvcC").payload == b"\x01\x02"
    assert moov.find("trak/mdia/hdlr") is not None and moov.find("trak/nope") is None
    top = read_boxes(data, 0, len(data))
    chain = video_sample_entry(data, top[2])
    assert [b.kind for b in chain] == [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"hvc1"]


def test_boxes_are_added_to_the_video_sample_entry_once(tmp_path):
    path = tmp_path / "movie.mp4"
    path.write_bytes(hand_movie())
    hero = full_box(b"hero", 0, 0, b"\x01")
    assert add_to_video_sample_entry(path, box(b"vexu", b"", box(b"eyes", b"", hero)), b"vexu")
    data = path.read_bytes()
    assert len(data) == len(hand_movie()) + 8 + 8 + 13
    (moov,) = [node for node in parse_boxes(data) if node.kind == b"moov"]
    (entry,) = moov.find_all("hvc1")
    assert [node.kind for node in entry.children] == [b"hvcC", b"vexu"]
    assert entry.find("vexu/eyes/hero").payload == b"\x00\x00\x00\x00\x01"
    assert not add_to_video_sample_entry(path, box(b"vexu"), b"vexu") and path.read_bytes() == data


def test_a_moov_first_file_is_left_alone(tmp_path):
    data = hand_movie()
    top = read_boxes(data, 0, len(data))
    path = tmp_path / "fast.mp4"
    path.write_bytes(data[: top[1].start] + data[top[2].start :] + data[top[1].start : top[2].start])
    before = path.read_bytes()
    assert not add_to_video_sample_entry(path, box(b"hfov", struct.pack(">I", 1)), b"hfov")
    assert path.read_bytes() == before
