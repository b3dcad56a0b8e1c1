"""Depth maps embedded in portrait photos, as relative disparity (larger = nearer).

Three carriers:
- HEIC/HEIF (iPhone portrait mode): a depth auxiliary image, read through pillow-heif.
- JPEG with Google GDepth XMP: a base64 PNG/JPEG in `GDepth:Data`, usually in the extended
  XMP (split over several APP1 segments and reassembled by offset).
- JPEG with Android Dynamic Depth: the depth image is a container item appended after the
  primary JPEG, described by the XMP `Container:Directory` and `Camera:DepthMap`.

Photos without depth are recognised from their headers and metadata alone; pixels are decoded
only when a depth map is present.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sbsconvert.decode import MAX_PIXELS, apply_exif_orientation
from sbsconvert.disparity import Disparity, disparity_from_array
from sbsconvert.errors import SbsError, first_line
from sbsconvert.formats.source import SourceFile, source_path

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
EXTENDED_XMP_HEADER = b"http://ns.adobe.com/xmp/extension/\x00"
XMP_NOTE_NS = "http://ns.adobe.com/xmp/note/"
GDEPTH_NS = "http://ns.google.com/photos/1.0/depthmap/"
DD_CONTAINER_NS = "http://ns.google.com/photos/dd/1.0/container/"
DD_ITEM_NS = "http://ns.google.com/photos/dd/1.0/item/"
DD_DEPTHMAP_NS = "http://ns.google.com/photos/dd/1.0/depthmap/"
APPLE_PIXEL_INFO_NS = "http://ns.apple.com/pixeldatainfo/1.0/"

HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
# CoreVideo pixel formats Apple names in apdi:NativeFormat: 'hdis'/'fdis' hold disparity,
# 'hdep'/'fdep' hold depth in metres.
APPLE_DISPARITY_FORMATS = frozenset({0x68646973, 0x66646973})
APPLE_DEPTH_FORMATS = frozenset({0x68646570, 0x66646570})
# libheif's heif_depth_representation_type: 0 uniform inverse Z, 1 uniform disparity,
# 2 uniform Z, 3 non-uniform disparity.
HEIF_UNIFORM_Z = 2
RANGE_FORMATS = ("rangelinear", "rangeinverse")
GREY_MODES = ("L", "I;16", "I;16L", "I;16B", "I")
_SOS, _EOI = 0xDA, 0xD9


@dataclass
class EmbeddedDepth:
    disparity: Disparity
    source: str  # where it came from, for messages: "GDepth XMP", "Dynamic Depth", ...


def read_embedded_depth(source: Path | SourceFile) -> EmbeddedDepth | None:
    """The depth map a portrait photo carries, or None for a photo (or file type) without one. A
    path is read whole only when its head names a photo that can carry one (a video's is not)."""
    path = source_path(source)
    try:
        if isinstance(source, SourceFile):
            head = source.data[:12]
        else:
            with open(path, "rb") as handle:
                head = handle.read(12)
        if head.startswith(b"\xff\xd8\xff"):
            return _read_jpeg(path, SourceFile.of(source).data)
        if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
            return _read_heif(SourceFile.of(source))
    except OSError as error:
        raise SbsError(f"{path}: cannot be read ({first_line(error)})") from None
    return None


# --- JPEG: GDepth and Dynamic Depth ------------------------------------------------------------


def _read_jpeg(path: Path, data: bytes) -> EmbeddedDepth | None:
    main, extended = None, []
    for marker, start, end in _jpeg_segments(data):
        if marker == _SOS:
            break  # metadata segments all come before the first scan
        if marker == 0xE1 and data.startswith(XMP_HEADER, start) and main is None:
            main = data[start + len(XMP_HEADER) : end]
        elif marker == 0xE1 and data.startswith(EXTENDED_XMP_HEADER, start):
            extended.append(data[start + len(EXTENDED_XMP_HEADER) : end])
    # The small properties (format, near, far) always sit in the main XMP; only GDepth:Data may
    # move to the extended part, so a main XMP without a depth namespace means no depth.
    if main is None or not any(ns.encode() in main for ns in (GDEPTH_NS, DD_DEPTHMAP_NS)):
        return None
    documents = [_parse_xmp(path, main, "XMP")]
    guid = _merged_properties(documents, XMP_NOTE_NS).get("HasExtendedXMP")
    if guid:
        packet = _reassemble_extended_xmp(path, extended, guid)
        if packet is not None:
            documents.append(_parse_xmp(path, packet, "extended XMP"))

    depth_maps = [props for root in documents for props in _property_sets(root, DD_DEPTHMAP_NS)]
    if depth_maps:
        payload = _dynamic_depth_item(path, data, documents, depth_maps[0])
        values = _decode_depth_image(path, payload, "Dynamic Depth", _exif_orientation(data))
        props = depth_maps[0]
        return EmbeddedDepth(_range_disparity(path, values, props, "Dynamic Depth"), "Dynamic Depth")

    gdepth = _merged_properties(documents, GDEPTH_NS)
    encoded = gdepth.get("Data")
    if not encoded:
        # Editors often drop the extended XMP and keep the main one: the map is gone, not broken.
        return None
    try:
        payload = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SbsError(f"{path}: GDepth:Data is not valid base64") from None
    values = _decode_depth_image(path, payload, "GDepth", _exif_orientation(data))
    return EmbeddedDepth(_range_disparity(path, values, gdepth, "GDepth"), "GDepth XMP")


def _jpeg_segments(data: bytes):
    """Yield (marker, payload start, payload end) for each JPEG segment, EOI last.

    Stops quietly at anything malformed: callers that need the end of the image check that
    they saw EOI.
    """
    pos = 2
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == _EOI:
            yield marker, pos + 2, pos + 2
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        if pos + 4 > len(data):
            return
        (length,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > len(data):
            return
        yield marker, pos + 4, end
        pos = _end_of_scan(data, end) if marker == _SOS else end


def _end_of_scan(data: bytes, pos: int) -> int:
    """Position of the first marker after entropy-coded data (0xFF00 stuffing and RSTn skipped)."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return len(data)
        following = data[pos + 1]
        if following == 0xFF:
            pos += 1
        elif following == 0x00 or 0xD0 <= following <= 0xD7:
            pos += 2
        else:
            return pos


def _jpeg_end(path: Path, data: bytes) -> int:
    for marker, start, _ in _jpeg_segments(data):
        if marker == _EOI:
            return start
    raise SbsError(f"{path}: the primary JPEG has no end-of-image marker, so its appended depth item cannot be found")


def _reassemble_extended_xmp(path: Path, payloads: list[bytes], guid: str) -> bytes | None:
    """Join extended XMP chunks (GUID, full length, offset, data) that belong to `guid`."""
    chunks: dict[int, bytes] = {}
    total = None
    for payload in payloads:
        if len(payload) < 40 or payload[:32] != guid.encode("ascii", "replace"):
            continue
        full_length, offset = struct.unpack_from(">II", payload, 32)
        if total is not None and full_length != total:
            raise SbsError(f"{path}: the extended XMP chunks disagree about its length")
        total = full_length
        chunks[offset] = payload[40:]
    if total is None:
        return None
    parts, position = [], 0
    for offset in sorted(chunks):
        if offset != position:
            break
        parts.append(chunks[offset])
        position += len(chunks[offset])
    if position != total:
        raise SbsError(f"{path}: the extended XMP is incomplete ({position} of {total} bytes in order)")
    return b"".join(parts)


def _dynamic_depth_item(path: Path, data: bytes, documents: list[ET.Element], depth_map: dict[str, str]) -> bytes:
    """The bytes of the container item the depth map points to (items follow the primary JPEG)."""
    uri = depth_map.get("DepthURI") or depth_map.get("ItemURI")
    items = [
        _item_properties(element)
        for root in documents
        for element in root.iter(f"{{{DD_CONTAINER_NS}}}Item")
    ]
    if not uri or len(items) < 2:
        raise SbsError(f"{path}: the Dynamic Depth metadata does not say which container item holds the depth map")
    cursor = _jpeg_end(path, data) + _integer(path, items[0], "Padding")  # item 0 is the primary JPEG
    for item in items[1:]:
        length = _integer(path, item, "Length")
        if item.get("DataURI") == uri:
            if length <= 0 or cursor + length > len(data):
                raise SbsError(f"{path}: the Dynamic Depth item '{uri}' runs past the end of the file")
            return data[cursor : cursor + length]
        cursor += length + _integer(path, item, "Padding")
    raise SbsError(f"{path}: the Dynamic Depth container has no item '{uri}'")


def _item_properties(element: ET.Element) -> dict[str, str]:
    # An item's properties are attributes, child elements, or an rdf:Description inside it.
    found = _own_properties(element, DD_ITEM_NS)
    for child in element:
        for name, value in _own_properties(child, DD_ITEM_NS).items():
            found.setdefault(name, value)
    return found


def _integer(path: Path, properties: dict[str, str], name: str) -> int:
    text = properties.get(name) or "0"
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise SbsError(f"{path}: the Dynamic Depth item {name} '{text}' is not a byte count")
    return value


def _exif_orientation(data: bytes) -> int:
    # The depth map matches the pixels as stored; the picture is turned upright on decode.
    with Image.open(io.BytesIO(data)) as image:
        return int(image.getexif().get(0x0112, 1))


# --- XMP helpers -------------------------------------------------------------------------------


def _parse_xmp(path: Path, packet: bytes, what: str) -> ET.Element:
    try:
        return ET.fromstring(packet.rstrip(b"\x00 \t\r\n"))
    except ET.ParseError as error:
        raise SbsError(f"{path}: its {what} metadata is not valid XML ({first_line(error)})") from None


def _own_properties(element: ET.Element, namespace: str) -> dict[str, str]:
    """Properties of `namespace` written on one element: as attributes or as simple children."""
    prefix = f"{{{namespace}}}"
    found = {name[len(prefix) :]: value.strip() for name, value in element.attrib.items() if name.startswith(prefix)}
    for child in element:
        if child.tag.startswith(prefix) and len(child) == 0:
            found.setdefault(child.tag[len(prefix) :], (child.text or "").strip())
    return found


def _property_sets(root: ET.Element, namespace: str) -> list[dict[str, str]]:
    return [found for element in root.iter() if (found := _own_properties(element, namespace))]


def _merged_properties(documents: list[ET.Element], namespace: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for root in documents:
        for found in _property_sets(root, namespace):
            for name, value in found.items():
                merged.setdefault(name, value)
    return merged


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# --- decoding the depth image and converting it to disparity -----------------------------------


def _decode_depth_image(path: Path, payload: bytes, what: str, orientation: int) -> np.ndarray:
    """Decode an 8/16-bit PNG or JPEG depth image to values in [0, 1], turned like the picture."""
    # Pillow rather than OpenCV: it reports a corrupt payload as an exception, without printing
    # codec errors on stderr.
    try:
        with Image.open(io.BytesIO(payload)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise SbsError(f"{path}: the embedded {what} depth image is {image.width}x{image.height}, too large")
            if image.mode not in GREY_MODES:
                image = image.convert("L")  # grey maps saved as colour JPEGs
            codes = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise SbsError(f"{path}: the embedded {what} depth image cannot be decoded") from None
    peak = 255.0 if codes.dtype == np.uint8 else 65535.0  # "I" holds 16-bit PNGs in 32-bit ints
    values = codes.astype(np.float32) / peak
    return apply_exif_orientation(values[:, :, None], orientation)[:, :, 0]


def _range_disparity(path: Path, values: np.ndarray, properties: dict[str, str], what: str) -> Disparity:
    """GDepth / Dynamic Depth RangeLinear or RangeInverse values (0 at Near, 1 at Far) as disparity."""
    format_name = properties.get("Format") or "RangeInverse"  # the GDepth default
    if format_name.lower() not in RANGE_FORMATS:
        raise SbsError(f"{path}: unknown {what} depth format '{format_name}' (expected RangeLinear or RangeInverse)")
    name = f"{path} ({what} depth map)"
    near, far = _number(properties.get("Near")), _number(properties.get("Far"))
    if format_name.lower() == "rangelinear" and near is not None and far is not None and 0 < near < far:
        return disparity_from_array(near + values * (far - near), "depth", name=name)
    # RangeInverse is linear in 1/depth and falls from Near to Far, so 1 - value is disparity up
    # to scale and offset; for RangeLinear without a usable range it still keeps the order.
    return disparity_from_array(1.0 - values, "relative", name=name)


# --- HEIC / HEIF -------------------------------------------------------------------------------


def _read_heif(file: SourceFile) -> EmbeddedDepth | None:
    import pillow_heif

    path = file.path
    try:
        heif = pillow_heif.open_heif(file.data, convert_hdr_to_8bit=False)
        depth_images = heif.info.get("depth_images") or []
        if not depth_images:
            return None
        depth = depth_images[0]
        metadata = dict(depth.info.get("metadata") or {})
        codes = np.asarray(depth.to_pillow())
    except (ValueError, EOFError, SyntaxError, RuntimeError, OSError, IndexError, KeyError) as error:
        raise SbsError(f"{path}: the HEIC depth image cannot be decoded ({first_line(error)})") from None
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        raise SbsError(f"{path}: the HEIC depth image has an unsupported layout {codes.shape} {codes.dtype}")
    return EmbeddedDepth(_heif_disparity(file, codes, metadata), "HEIC depth image")


def _heif_disparity(file: SourceFile, codes: np.ndarray, metadata: dict) -> Disparity:
    """Disparity from a HEIF depth image: its depth representation info, else Apple's XMP."""
    name = f"{file.path} (HEIC depth image)"
    values = codes.astype(np.float32) / float(np.iinfo(codes.dtype).max)
    if "representation_type" in metadata:
        if metadata["representation_type"] != HEIF_UNIFORM_Z:
            return disparity_from_array(values, "relative", name=name)  # (inverse) disparity
        near, far = metadata.get("z_near"), metadata.get("z_far")
        if near is not None and far is not None and 0 < near < far:
            return disparity_from_array(near + values * (far - near), "depth", name=name)
        return disparity_from_array(1.0 - values, "relative", name=name)
    apple = _apple_depth_description(file.data)
    if apple is None or int(apple["NativeFormat"]) in APPLE_DISPARITY_FORMATS:
        # iPhone portrait photos store disparity (brighter = nearer); it is also the default.
        return disparity_from_array(values, "relative", name=name)
    # Apple depth ('hdep'/'fdep'): stored codes IntMin..IntMax stand for FloatMin..FloatMax metres.
    int_low, int_high = _number(apple.get("IntMinValue")), _number(apple.get("IntMaxValue"))
    if int_low is not None and int_high is not None and int_high > int_low:
        values = (codes.astype(np.float32) - int_low) / (int_high - int_low)
    low, high = _number(apple.get("FloatMinValue")), _number(apple.get("FloatMaxValue"))
    if low is not None and high is not None and 0 < low < high:
        return disparity_from_array(low + values * (high - low), "depth", name=name)
    return disparity_from_array(1.0 - values, "relative", name=name)


def _apple_depth_description(data: bytes) -> dict[str, str] | None:
    """Apple's apdi properties of the depth item's XMP, found among the file's XMP packets."""
    for match in re.finditer(rb"<x:xmpmeta.*?</x:xmpmeta>", data, re.DOTALL):
        packet = match.group(0)
        if APPLE_PIXEL_INFO_NS.encode() not in packet:
            continue
        try:
            root = ET.fromstring(packet)
        except ET.ParseError:
            continue  # metadata of another auxiliary image, or bytes that only look like XMP
        for found in _property_sets(root, APPLE_PIXEL_INFO_NS):
            native = found.get("NativeFormat", "")
            if native.isdigit() and int(native) in APPLE_DISPARITY_FORMATS | APPLE_DEPTH_FORMATS:
                return found
    return None
