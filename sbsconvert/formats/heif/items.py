"""The item model of a HEIF `meta` box: which items there are (iinf, pitm, iref), where their data
lies (iloc), which properties describe them (ipco + ipma), and entity groups (grpl).

Each box is read into fields and written back from them, so edits never patch bytes in place:
adding properties appends to ipco and re-emits ipma; growing the meta box moves the media data
behind it, and iloc is re-emitted with every file offset that pointed past the old meta box moved
by the same amount.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

from sbsconvert.formats.isobmff.boxes import Box, box, full_box_header, parse_boxes, split_full_box, top_level_headers

# Transformative properties (ISO/IEC 23008-12 6.5): they must follow every descriptive property in
# an item's ipma entry, because they apply in order to the decoded image.
TRANSFORMATIVE = frozenset({b"clap", b"irot", b"imir", b"iscl"})
IMAGE_ITEM_TYPES = frozenset({b"hvc1", b"av01", b"grid", b"iden", b"iovl", b"jpeg", b"avc1", b"unci"})
# References from an item that only serves another image (alpha/depth plane, thumbnail).
SERVING_REFERENCES = frozenset({b"auxl", b"thmb"})
STEREO_GROUP = b"ster"  # the entity group naming a stereo pair (left, then right)


class Reader:
    """Big-endian unsigned fields read in order from a payload; running past its end is an error."""

    def __init__(self, data: bytes):
        self.data = data
        self.position = 0

    def uint(self, size: int) -> int:
        if size == 0:
            return 0
        if self.position + size > len(self.data):
            raise ValueError("box ends in the middle of a field")
        value = int.from_bytes(self.data[self.position : self.position + size], "big")
        self.position += size
        return value

    def fourcc(self) -> bytes:
        return self.uint(4).to_bytes(4, "big")


def uint_bytes(value: int, size: int) -> bytes:
    if size == 0:
        if value:
            raise ValueError(f"{value} does not fit in a field of size 0")
        return b""
    if not 0 <= value < 1 << (8 * size):
        raise ValueError(f"{value} does not fit in {size} bytes")
    return value.to_bytes(size, "big")


@dataclass
class ItemInfo:
    item_id: int
    item_type: bytes
    hidden: bool


def item_infos(meta: Box) -> list[ItemInfo]:
    """The items declared in iinf (infe version 2 or 3, as HEIF requires)."""
    iinf = _required(meta, b"iinf")
    version, _, rest = split_full_box(iinf.payload)
    count_size = 2 if version == 0 else 4
    infos = []
    for infe in parse_boxes(rest, count_size):
        infe_version, flags, body = split_full_box(infe.payload)
        if infe_version < 2:
            raise ValueError(f"item info entry version {infe_version} is not HEIF")
        fields = Reader(body)
        item_id = fields.uint(2 if infe_version == 2 else 4)
        fields.uint(2)  # item_protection_index
        infos.append(ItemInfo(item_id, fields.fourcc(), bool(flags & 1)))
    return infos


def primary_item(meta: Box) -> int:
    version, _, body = split_full_box(_required(meta, b"pitm").payload)
    return Reader(body).uint(2 if version == 0 else 4)


def item_references(meta: Box) -> list[tuple[bytes, int, list[int]]]:
    """(reference type, from item, to items) for each reference in iref."""
    iref = meta.child(b"iref")
    if iref is None:
        return []
    version, _, body = split_full_box(iref.payload)
    id_size = 2 if version == 0 else 4
    references = []
    for reference in parse_boxes(body):
        fields = Reader(reference.payload)
        from_item = fields.uint(id_size)
        references.append((reference.kind, from_item, [fields.uint(id_size) for _ in range(fields.uint(2))]))
    return references


def master_images(meta: Box) -> list[int]:
    """Shown images, in item order: image items that are neither hidden (grid tiles) nor an
    auxiliary plane or thumbnail of another image."""
    serving = {source for kind, source, _ in item_references(meta) if kind in SERVING_REFERENCES}
    return [
        info.item_id
        for info in item_infos(meta)
        if info.item_type in IMAGE_ITEM_TYPES and not info.hidden and info.item_id not in serving
    ]


@dataclass
class Extent:
    offset: int
    length: int
    index: int = 0


@dataclass
class ItemLocation:
    item_id: int
    construction_method: int
    data_reference_index: int
    base_offset: int
    extents: list[Extent] = field(default_factory=list)


@dataclass
class ItemLocations:
    """The iloc box (versions 0, 1 and 2)."""

    version: int
    flags: int
    offset_size: int
    length_size: int
    base_offset_size: int
    index_size: int
    items: list[ItemLocation]

    @classmethod
    def parse(cls, payload: bytes) -> ItemLocations:
        version, flags, body = split_full_box(payload)
        if version > 2:
            raise ValueError(f"iloc version {version} is not supported")
        fields = Reader(body)
        sizes = fields.uint(1)
        offset_size, length_size = sizes >> 4, sizes & 15
        sizes = fields.uint(1)
        base_offset_size = sizes >> 4
        index_size = sizes & 15 if version in (1, 2) else 0
        id_size = 4 if version == 2 else 2
        items = []
        for _ in range(fields.uint(id_size)):
            item_id = fields.uint(id_size)
            construction_method = fields.uint(2) & 15 if version in (1, 2) else 0
            location = ItemLocation(item_id, construction_method, fields.uint(2), fields.uint(base_offset_size))
            for _ in range(fields.uint(2)):
                index = fields.uint(index_size)
                offset = fields.uint(offset_size)
                location.extents.append(Extent(offset, fields.uint(length_size), index))
            items.append(location)
        return cls(version, flags, offset_size, length_size, base_offset_size, index_size, items)

    def to_payload(self) -> bytes:
        id_size = 4 if self.version == 2 else 2
        second = self.base_offset_size << 4 | (self.index_size if self.version in (1, 2) else 0)
        out = [full_box_header(self.version, self.flags), bytes([self.offset_size << 4 | self.length_size, second])]
        out.append(uint_bytes(len(self.items), id_size))
        for item in self.items:
            out.append(uint_bytes(item.item_id, id_size))
            if self.version in (1, 2):
                out.append(uint_bytes(item.construction_method, 2))
            out += [uint_bytes(item.data_reference_index, 2), uint_bytes(item.base_offset, self.base_offset_size)]
            out.append(uint_bytes(len(item.extents), 2))
            for extent in item.extents:
                if self.version in (1, 2):
                    out.append(uint_bytes(extent.index, self.index_size))
                out += [uint_bytes(extent.offset, self.offset_size), uint_bytes(extent.length, self.length_size)]
        return b"".join(out)

    def shift_file_offsets(self, after: int, delta: int) -> None:
        """Move every location in this file (construction method 0, no external data reference) at
        or past byte `after` by `delta` bytes: the data there moved when a box before it grew."""
        for item in self.items:
            if item.construction_method != 0 or item.data_reference_index != 0:
                continue
            if item.base_offset >= after:
                item.base_offset += delta
                continue
            for extent in item.extents:
                if item.base_offset + extent.offset >= after:
                    extent.offset += delta


@dataclass
class PropertyAssociations:
    """The ipma box: for each item, its properties as (essential, 1-based index into ipco)."""

    version: int
    entries: dict[int, list[tuple[bool, int]]]

    @classmethod
    def parse(cls, payload: bytes) -> PropertyAssociations:
        version, flags, body = split_full_box(payload)
        fields = Reader(body)
        wide = bool(flags & 1)
        entries: dict[int, list[tuple[bool, int]]] = {}
        for _ in range(fields.uint(4)):
            item_id = fields.uint(2 if version == 0 else 4)
            associations = []
            for _ in range(fields.uint(1)):
                value = fields.uint(2 if wide else 1)
                top = 1 << (15 if wide else 7)
                associations.append((bool(value & top), value & (top - 1)))
            entries.setdefault(item_id, []).extend(associations)
        return cls(version, entries)

    def to_payload(self) -> bytes:
        largest_index = max((index for associations in self.entries.values() for _, index in associations), default=0)
        wide = largest_index > 0x7F  # 15-bit indices only when 7 bits do not hold them
        largest_item = max(self.entries, default=0)
        version = max(self.version, 1 if largest_item > 0xFFFF else 0)
        out = [full_box_header(version, 1 if wide else 0), uint_bytes(len(self.entries), 4)]
        for item_id, associations in self.entries.items():
            out += [uint_bytes(item_id, 2 if version == 0 else 4), uint_bytes(len(associations), 1)]
            for essential, index in associations:
                out.append(uint_bytes(index | (essential << (15 if wide else 7)), 2 if wide else 1))
        return b"".join(out)


def add_item_properties(meta: Box, properties: dict[int, list[bytes]]) -> None:
    """Append properties (whole boxes) to ipco and associate them, as non-essential, with the
    given items. A property given to several items is stored once. New associations go after the
    item's descriptive properties and before its transformative ones."""
    iprp = _required(meta, b"iprp")
    ipco, ipma_box = _required(iprp, b"ipco"), _required(iprp, b"ipma")
    assert ipco.children is not None
    kinds = [child.kind for child in ipco.children]
    ipma = PropertyAssociations.parse(ipma_box.payload)
    stored: dict[bytes, int] = {}
    for item_id, boxes in properties.items():
        if item_id not in ipma.entries:
            raise ValueError(f"item {item_id} has no property associations")
        associations = ipma.entries[item_id]
        position = next((n for n, (_, index) in enumerate(associations) if kinds[index - 1] in TRANSFORMATIVE),
                        len(associations))
        for data in boxes:
            if data not in stored:
                ipco.children.extend(parse_boxes(data))
                kinds.append(ipco.children[-1].kind)
                stored[data] = len(ipco.children)
            associations.insert(position, (False, stored[data]))
            position += 1
    ipma_box.payload = ipma.to_payload()


def add_entity_group(meta: Box, group: bytes) -> None:
    """Add an entity group box (whole, e.g. `ster`) to grpl, creating grpl when there is none."""
    assert meta.children is not None
    grpl = meta.child(b"grpl")
    if grpl is None:
        grpl = Box(b"grpl", b"", [])
        meta.children.append(grpl)
    assert grpl.children is not None
    grpl.children.extend(parse_boxes(group))


def entity_groups(meta: Box) -> list[tuple[bytes, int, list[int]]]:
    """(grouping type, group id, entity ids) of each group in grpl."""
    grpl = meta.child(b"grpl")
    groups = []
    for group in (grpl.children or []) if grpl else []:
        _, _, body = split_full_box(group.payload)
        fields = Reader(body)
        group_id = fields.uint(4)
        groups.append((group.kind, group_id, [fields.uint(4) for _ in range(fields.uint(4))]))
    return groups


def entity_group_bytes(kind: bytes, group_id: int, entity_ids: list[int]) -> bytes:
    """An EntityToGroupBox (version 0): group id, then the items or tracks it groups, in order."""
    body = struct.pack(f">II{len(entity_ids)}I", group_id, len(entity_ids), *entity_ids)
    return box(kind, full_box_header(0, 0) + body)


def unused_id(meta: Box) -> int:
    """An id no item and no entity group uses (group ids share the item id space)."""
    used = {info.item_id for info in item_infos(meta)} | {group_id for _, group_id, _ in entity_groups(meta)}
    return max(used, default=0) + 1


def item_properties(meta: Box, item_id: int) -> list[Box]:
    """The property boxes associated with an item, in association order."""
    iprp = _required(meta, b"iprp")
    ipco = _required(iprp, b"ipco")
    associations = PropertyAssociations.parse(_required(iprp, b"ipma").payload).entries.get(item_id, [])
    return [(ipco.children or [])[index - 1] for _, index in associations if index > 0]


def edit_meta(data: bytes, edit: Callable[[Box], None]) -> bytes:
    """Rewrite the HEIF file `data` with edit(meta) applied to its top-level meta box. Only the
    meta box is re-emitted; the bytes around it are kept, and the item data locations (iloc) that
    lie behind it move by however much it grew."""
    meta = find_meta(data)
    old_end = meta.start + meta.source_size
    edit(meta)
    iloc = _required(meta, b"iloc")
    locations = ItemLocations.parse(iloc.payload)
    grown = len(meta.to_bytes()) - meta.source_size  # iloc keeps its size: its fields keep their widths
    locations.shift_file_offsets(old_end, grown)
    iloc.payload = locations.to_payload()
    return data[: meta.start] + meta.to_bytes() + data[old_end:]


def find_meta(data: bytes) -> Box:
    meta = next((top for top in parse_boxes(data) if top.kind == b"meta"), None)
    if meta is None:
        raise ValueError("no meta box: not a HEIF file")
    return meta


def read_meta_box(path: Path) -> Box:
    """The meta box of the HEIF file at `path`, read without loading the (large) image data."""
    with open(path, "rb") as handle:
        return meta_box_of(handle)


def meta_box_of(handle: BinaryIO) -> Box:
    """The meta box of the HEIF file open as `handle`, read from the top-level box headers on."""
    meta = next((box for box in top_level_headers(handle) if box.kind == b"meta"), None)
    if meta is None or meta.size > 64 << 20:
        raise ValueError("no meta box of a sane size")
    handle.seek(meta.start)
    return find_meta(handle.read(meta.size))


def stereo_pair_ids(meta: Box) -> tuple[int, int] | None:
    """(left, right) item ids of the stereo group, if any."""
    pair = next((ids for kind, _, ids in entity_groups(meta) if kind == STEREO_GROUP and len(ids) == 2), None)
    return (pair[0], pair[1]) if pair else None


def _required(parent: Box, kind: bytes) -> Box:
    found = parent.child(kind)
    if found is None:
        raise ValueError(f"{parent.kind.decode(errors='replace')} box without {kind.decode(errors='replace')}")
    return found
