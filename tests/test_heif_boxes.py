"""sbsconvert.formats.heif on hand-made byte vectors: the box tree, iloc/ipma/iinf/grpl fields, the camera
properties, and a whole meta-box edit that must keep every item's data where iloc says it is."""

import struct

import pytest

from sbsconvert.formats.heif.camera import (
    Intrinsics,
    cmex_bytes,
    cmin_bytes,
    disparity_adjustment_bytes,
    item_camera,
    parse_cmex,
    parse_cmin,
)
from sbsconvert.formats.heif.items import (
    ItemLocations,
    PropertyAssociations,
    add_entity_group,
    add_item_properties,
    edit_meta,
    entity_group_bytes,
    entity_groups,
    find_meta,
    item_properties,
    master_images,
    primary_item,
    unused_id,
)
from sbsconvert.formats.isobmff.boxes import Box, box, full_box, parse_boxes, split_full_box, top_level_headers


def test_box_and_full_box_headers():
    assert box(b"free", b"ab") == b"\x00\x00\x00\x0afreeab"
    assert full_box(b"pitm", 0, 0, b"\x00\x01") == b"\x00\x00\x00\x0epitm\x00\x00\x00\x00\x00\x01"
    assert split_full_box(b"\x01\x00\x00\x03rest") == (1, 3, b"rest")
    with pytest.raises(ValueError):
        box(b"toolong", b"")


def test_parse_tree_round_trips_and_reads_64_bit_sizes():
    leaf = box(b"hdlr", b"\x00" * 12)
    meta = box(b"meta", b"\x00\x00\x00\x00" + leaf + box(b"iprp", box(b"ipco", b"")))
    large = struct.pack(">I4sQ", 1, b"mdat", 16 + 3) + b"xyz"
    data = box(b"ftyp", b"heic") + meta + large
    top = parse_boxes(data)
    assert [box.kind for box in top] == [b"ftyp", b"meta", b"mdat"]
    assert [child.kind for child in top[1].children] == [b"hdlr", b"iprp"]
    assert top[1].child(b"iprp").child(b"ipco").children == []
    assert top[2].payload == b"xyz" and top[2].source_size == 19 and top[2].start == 12 + len(meta)
    assert b"".join(box.to_bytes() for box in top[:2]) == data[: 12 + len(meta)]
    assert top[2].to_bytes() == box(b"mdat", b"xyz")  # written back with the short header
    with pytest.raises(ValueError, match="malformed"):
        parse_boxes(data[:-1])


def test_top_level_headers_read_only_headers(tmp_path):
    path = tmp_path / "file.heic"
    path.write_bytes(box(b"ftyp", b"heic") + box(b"meta", b"\x00" * 4) + struct.pack(">I4s", 0, b"mdat") + b"data")
    with open(path, "rb") as handle:
        headers = top_level_headers(handle)
    assert [(h.kind, h.start, h.size) for h in headers] == [(b"ftyp", 0, 12), (b"meta", 12, 12), (b"mdat", 24, 12)]
    path.write_bytes(struct.pack(">I4sI", 1, b"mdat", 0))  # a 64-bit size cut off
    with open(path, "rb") as handle, pytest.raises(ValueError, match="truncated"):
        top_level_headers(handle)


def iloc_v1():
    """iloc version 1: offset 4, length 4, base offset 4, index 0 bytes; two items."""
    body = bytes([0x44, 0x40]) + struct.pack(">H", 2)
    body += struct.pack(">HHHIH", 1, 0, 0, 1000, 1) + struct.pack(">II", 0, 50)  # base offset, one extent
    body += struct.pack(">HHHIH", 2, 0, 0, 0, 2) + struct.pack(">IIII", 1100, 30, 20, 5)  # absolute extents
    return b"\x01\x00\x00\x00" + body


def test_iloc_fields_round_trip_and_shift_only_what_lies_behind():
    locations = ItemLocations.parse(iloc_v1())
    assert (locations.version, locations.offset_size, locations.length_size, locations.base_offset_size) == (1, 4, 4, 4)
    first, second = locations.items
    assert (first.item_id, first.base_offset, [(e.offset, e.length) for e in first.extents]) == (1, 1000, [(0, 50)])
    assert [(e.offset, e.length) for e in second.extents] == [(1100, 30), (20, 5)]
    assert locations.to_payload() == iloc_v1()
    locations.shift_file_offsets(after=500, delta=24)
    assert first.base_offset == 1024 and first.extents[0].offset == 0  # the base moves, not the extent
    assert [e.offset for e in second.extents] == [1124, 20]  # only the extent behind byte 500 moves
    reparsed = ItemLocations.parse(locations.to_payload())
    assert reparsed.items[0].base_offset == 1024 and reparsed.items[1].extents[0].offset == 1124


def test_iloc_version_0_and_2_layouts():
    v0 = b"\x00\x00\x00\x00" + bytes([0x44, 0x00]) + struct.pack(">HHHHII", 1, 7, 0, 1, 300, 9)
    parsed = ItemLocations.parse(v0)
    assert parsed.items[0].item_id == 7 and parsed.items[0].extents[0].offset == 300
    assert parsed.base_offset_size == 0 and parsed.to_payload() == v0
    # offsets 8 bytes, lengths 4, no base offset, extent indices 4; 32-bit item ids and count
    v2 = b"\x02\x00\x00\x00" + bytes([0x84, 0x04]) + struct.pack(">IIHHH", 1, 70000, 1, 0, 1)
    v2 += struct.pack(">IQI", 3, 400, 16)
    parsed = ItemLocations.parse(v2)
    item = parsed.items[0]
    assert (item.item_id, item.construction_method, item.extents[0].index, item.extents[0].offset) == (70000, 1, 3, 400)
    assert parsed.to_payload() == v2
    parsed.shift_file_offsets(0, 10)
    assert item.extents[0].offset == 400  # construction method 1 (idat): not a file offset


def test_ipma_narrow_and_wide_indices():
    payload = b"\x00\x00\x00\x00" + struct.pack(">I", 2) + bytes([0, 1, 3, 0x81, 0x02, 0x84, 0, 2, 1, 0x81])
    associations = PropertyAssociations.parse(payload)
    assert associations.entries == {1: [(True, 1), (False, 2), (True, 4)], 2: [(True, 1)]}
    assert associations.to_payload() == payload
    associations.entries[2].append((False, 200))  # needs 15-bit indices: flags bit 0
    wide = associations.to_payload()
    assert wide[:4] == b"\x00\x00\x00\x01"
    assert PropertyAssociations.parse(wide).entries == associations.entries
    assert wide[-2:] == struct.pack(">H", 200)


def infe(item_id, kind, hidden=False):
    return full_box(b"infe", 2, 1 if hidden else 0, struct.pack(">HH4s", item_id, 0, kind) + b"\x00")


def small_heif(data_first=False):
    """ftyp, meta (two image items, one hidden tile-like item, an alpha plane), mdat holding each
    item's bytes. With data_first the mdat precedes meta (offsets before meta must not move)."""
    payloads = {1: b"LEFT-DATA", 2: b"RIGHT-DATA", 3: b"ALPHA", 4: b"TILE"}
    ftyp = box(b"ftyp", b"heic\x00\x00\x00\x00mif1heic")
    properties = box(b"hvcC", b"\x01" * 5) + box(b"ispe", b"\x00" * 12) + box(b"clap", b"\x00" * 32)
    ipma = b"\x00\x00\x00\x00" + struct.pack(">I", 4) + bytes([0, 1, 3, 0x81, 2, 0x83, 0, 2, 3, 0x81, 2, 0x83,
                                                             0, 3, 1, 0x81, 0, 4, 1, 0x81])
    iinf = full_box(b"iinf", 0, 0, struct.pack(">H", 4) + infe(1, b"hvc1") + infe(2, b"hvc1") + infe(3, b"hvc1")
                          + infe(4, b"hvc1", hidden=True))
    iref = full_box(b"iref", 0, 0, box(b"auxl", struct.pack(">HHH", 3, 1, 1)))

    def build(data_at):
        body = bytes([0x44, 0x00]) + struct.pack(">H", 4)
        position = data_at
        for item_id, data in payloads.items():
            body += struct.pack(">HHHII", item_id, 0, 1, position, len(data))
            position += len(data)
        children = [box(b"hdlr", b"\x00" * 8 + b"pict" + b"\x00" * 13), full_box(b"pitm", 0, 0, b"\x00\x01"),
                    full_box(b"iloc", 0, 0, body), iinf, iref,
                    box(b"iprp", box(b"ipco", properties) + box(b"ipma", ipma))]
        return box(b"meta", b"\x00" * 4 + b"".join(children))

    mdat = box(b"mdat", b"".join(payloads.values()))
    if data_first:
        return ftyp + mdat + build(len(ftyp) + 8), payloads
    meta_size = len(build(0))
    return ftyp + build(len(ftyp) + meta_size + 8) + mdat, payloads


def item_data(data):
    locations = ItemLocations.parse(find_meta(data).child(b"iloc").payload)
    return {item.item_id: b"".join(data[item.base_offset + e.offset : item.base_offset + e.offset + e.length]
                                   for e in item.extents) for item in locations.items}


@pytest.mark.parametrize("data_first", [False, True])
def test_growing_meta_keeps_every_item_data_in_place(data_first):
    data, payloads = small_heif(data_first)
    assert item_data(data) == payloads
    meta = find_meta(data)
    assert primary_item(meta) == 1 and master_images(meta) == [1, 2]  # not the alpha plane, not the hidden tile
    cmin = cmin_bytes(Intrinsics(1.0))

    def edit(meta):
        add_item_properties(meta, {1: [cmin, cmex_bytes((0, 0, 0))], 2: [cmin, cmex_bytes((64000, 0, 0))]})
        add_entity_group(meta, entity_group_bytes(b"ster", unused_id(meta), [1, 2]))

    edited = edit_meta(data, edit)
    assert len(edited) > len(data)
    assert item_data(edited) == payloads
    meta = find_meta(edited)
    assert entity_groups(meta) == [(b"ster", 5, [1, 2])]  # ids 1-4 are items
    # cmin is stored once and shared; the new properties come before the transformative clap.
    assert [box.kind for box in item_properties(meta, 1)] == [b"hvcC", b"ispe", b"cmin", b"cmex", b"clap"]
    assert [box.kind for box in item_properties(meta, 2)] == [b"hvcC", b"ispe", b"cmin", b"cmex", b"clap"]
    assert [box.kind for box in meta.child(b"iprp").child(b"ipco").children] == [b"hvcC", b"ispe", b"clap", b"cmin",
                                                                                b"cmex", b"cmex"]
    assert [box.kind for box in item_properties(meta, 3)] == [b"hvcC"]
    assert edited[:24] == data[:24]  # ftyp untouched


def test_ster_entity_group_bytes():
    expected = bytes.fromhex("0000001c 73746572 00000000 00000003 00000002 00000001 00000002".replace(" ", ""))
    assert entity_group_bytes(b"ster", 3, [1, 2]) == expected
    meta = Box(b"meta", b"\x00" * 4, [])
    add_entity_group(meta, expected)
    assert entity_groups(meta) == [(b"ster", 3, [1, 2])]


def test_cmin_reads_apples_vector_and_writes_fixed_point():
    # cmin of a spatial photo Apple's visionOS made from a 1280x720 image (bytes published in libheif
    # issue 1191): denominator 2**28 in flags bits 8-12, focal length 0x24926E7E (2925.76 pixels:
    # a fraction of the width), principal point 0x08000000 (one half) twice.
    apple = bytes.fromhex("00001c00 24926e7e 08000000 08000000".replace(" ", ""))
    intrinsics, focal_y, skew = parse_cmin(apple)
    assert intrinsics.focal_x * 1280 == pytest.approx(2925.76, abs=0.01)
    assert (intrinsics.principal_x, intrinsics.principal_y, focal_y, skew) == (0.5, 0.5, None, None)
    written = cmin_bytes(Intrinsics(0x24926E7E / 2**28))
    assert written[:8] == b"\x00\x00\x00\x18cmin" and parse_cmin(written[8:])[0] == intrinsics
    # flags: bit 0 (vertical focal length and skew follow), denominator 2**8, skew denominator 2**4
    anisotropic = bytes.fromhex("00040801 00000100 00000080 00000080 00000200 00000001".replace(" ", ""))
    intrinsics, focal_y, skew = parse_cmin(anisotropic)
    assert (intrinsics.focal_x, focal_y, skew) == (1.0, 2.0, 1 / 16)


@pytest.mark.parametrize("hfov", [10.0, 65.0, 120.0, 179.0])
def test_field_of_view_survives_the_fixed_point(hfov):
    intrinsics = Intrinsics.from_field_of_view(hfov)
    assert intrinsics.hfov_degrees == pytest.approx(hfov)
    read_back, _, _ = parse_cmin(cmin_bytes(intrinsics)[8:])
    assert read_back.hfov_degrees == pytest.approx(hfov, abs=1e-6)
    assert (read_back.principal_x, read_back.principal_y) == (0.5, 0.5)
    with pytest.raises(ValueError):
        Intrinsics.from_field_of_view(180.0)


def test_cmex_position_flags():
    assert cmex_bytes((0, 0, 0)) == bytes.fromhex("0000000c 636d6578 00000000".replace(" ", ""))
    assert cmex_bytes((64000, 0, 0)) == bytes.fromhex("00000010 636d6578 00000001 0000fa00".replace(" ", ""))
    # MPEG conformance file by Apple: position 0.01 m on x in world coordinate system 1 = flags 33, [10000, 1].
    assert parse_cmex(bytes([0, 0, 0, 33]) + struct.pack(">iI", 10000, 1)) == ((10000, 0, 0), None, 1)
    assert parse_cmex(bytes([0, 0, 0, 36]) + struct.pack(">iI", -40000, 1)) == ((0, 0, -40000), None, 1)
    quaternion = parse_cmex(bytes([0, 0, 0, 8]) + struct.pack(">3h", 1 << 13, 0, 0))
    assert quaternion == ((0, 0, 0), (0.5, 0.0, 0.0), 0)


# The camera uuid properties of a spatial photo an Apple Vision Pro made under visionOS 1 (byte for
# byte, after the 'uuid' box header): the intrinsics both eyes share, each eye's extrinsics and the
# disparity adjustment both share.
VISIONOS1_INTRINSICS = bytes.fromhex("22cc04c7d6d94e079d904eb6ecbaf3a3" "00001e00 2622d86e 20000000 20000000".replace(" ", ""))
VISIONOS1_LEFT = bytes.fromhex("4363e9145b7d4aab97aebea69803b434" "00000000")
VISIONOS1_RIGHT = bytes.fromhex("4363e9145b7d4aab97aebea69803b434" "00000001 0000f91e".replace(" ", ""))
VISIONOS1_DISPARITY = bytes.fromhex("de22508536cb436587432f8705e7c78a" "00000125")


def test_visionos1_uuid_camera_properties():
    """The same fields as cmin and cmex: 80.0 degrees wide (focal 0.5959 of the width, denominator
    2**30), the right eye 63.774 mm to the right; and +2.93 % of the width of disparity adjustment."""
    left = item_camera([Box(b"uuid", VISIONOS1_INTRINSICS), Box(b"uuid", VISIONOS1_LEFT), Box(b"uuid", VISIONOS1_DISPARITY)])
    right = item_camera([Box(b"uuid", VISIONOS1_RIGHT), Box(b"uuid", VISIONOS1_INTRINSICS), Box(b"uuid", VISIONOS1_DISPARITY)])
    assert left.intrinsics.hfov_degrees == pytest.approx(80.0, abs=1e-6)
    assert (left.intrinsics.principal_x, left.intrinsics.principal_y) == (0.5, 0.5)
    assert (left.position_um, right.position_um) == ((0, 0, 0), (63774, 0, 0))
    assert left.disparity_adjustment == right.disparity_adjustment == 293
    assert disparity_adjustment_bytes(293) == box(b"uuid", VISIONOS1_DISPARITY)
    assert disparity_adjustment_bytes(-150)[-4:] == struct.pack(">i", -150)
    # cmin/cmex, the standard properties, win over the uuid ones; nothing known: nothing said
    standard = item_camera([Box(b"uuid", VISIONOS1_INTRINSICS), *parse_boxes(cmin_bytes(Intrinsics.from_field_of_view(60)))])
    assert standard.intrinsics.hfov_degrees == pytest.approx(60) and standard.position_um is None
    assert item_camera([Box(b"uuid", bytes(16) + b"other"), Box(b"colr", b"nclx")]) == item_camera([])
