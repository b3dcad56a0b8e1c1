"""Depth embedded in portrait photos: GDepth XMP (plain and extended), Dynamic Depth, HEIC depth.

Every fixture is built here from the formats' specifications: JPEG segments, XMP packets,
appended container items and a HEIF file assembled box by box (pillow-heif cannot write depth
images, so the depth item, its `auxC` type and `auxl` reference are added by hand around HEVC
streams that pillow-heif encodes).
"""

import base64
import io
import struct

import cv2
import numpy as np
import pillow_heif
import pytest
from click.testing import CliRunner
from PIL import Image

from sbsconvert.cli import main
from sbsconvert.disparity import normalize
from sbsconvert.embedded_depth import read_embedded_depth
from sbsconvert.errors import SbsError

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
EXTENDED_HEADER = b"http://ns.adobe.com/xmp/extension/\x00"
GUID = "0123456789ABCDEF0123456789ABCDEF"
NEAR, FAR = 1.0, 5.0
RDF = 'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
GDEPTH = 'xmlns:GDepth="http://ns.google.com/photos/1.0/depthmap/"'
HDEP = int.from_bytes(b"hdep", "big")


# --- scene and depth encodings ---------------------------------------------------------------


def scene_depth(width=48, height=32):
    """Metres: a tilted background from 4.5 to 3 m and a box at 1.5 m (nearest)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    depth = 4.5 - 1.5 * y / (height - 1)
    depth[8:20, 10:26] = 1.5
    return depth


def expected_disparity(depth):
    return normalize((1.0 / depth).astype(np.float32))


def encode_range(depth, format_name, bits=16):
    """Quantise depth to GDepth codes: 0 at NEAR, full scale at FAR (spec's normalisation)."""
    if format_name == "RangeLinear":
        normal = (depth - NEAR) / (FAR - NEAR)
    else:
        normal = FAR * (depth - NEAR) / (depth * (FAR - NEAR))
    peak = 2**bits - 1
    return np.round(normal * peak).astype(np.uint16 if bits == 16 else np.uint8)


def png_bytes(codes):
    ok, encoded = cv2.imencode(".png", codes)
    assert ok
    return encoded.tobytes()


def photo_jpeg(width=96, height=64, orientation=None):
    pixels = np.random.default_rng(1).integers(0, 255, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    exif = image.getexif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def app1(payload):
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def with_segments(jpeg, segments, tail=b""):
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + b"".join(segments) + jpeg[2:] + tail


def xmp_packet(body, namespaces=""):
    return (
        f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF {RDF}>'
        f'<rdf:Description rdf:about="" {namespaces}>{body}</rdf:Description>'
        f'</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def gdepth_jpeg(codes, format_name, mime="image/png", data=None, orientation=None):
    encoded = data if data is not None else base64.b64encode(png_bytes(codes)).decode()
    xmp = xmp_packet(
        f"<GDepth:Data>{encoded}</GDepth:Data>",
        f'{GDEPTH} GDepth:Format="{format_name}" GDepth:Near="{NEAR}" GDepth:Far="{FAR}" GDepth:Mime="{mime}"',
    )
    return with_segments(photo_jpeg(orientation=orientation), [app1(XMP_HEADER + xmp)])


def extended_gdepth_jpeg(codes, chunk=700, drop_chunks=()):
    main_xmp = xmp_packet(
        "",
        f'{GDEPTH} xmlns:xmpNote="http://ns.adobe.com/xmp/note/" xmpNote:HasExtendedXMP="{GUID}" '
        f'GDepth:Format="RangeLinear" GDepth:Near="{NEAR}" GDepth:Far="{FAR}" GDepth:Mime="image/png"',
    )
    encoded = base64.b64encode(png_bytes(codes)).decode()
    extended = xmp_packet(f"<GDepth:Data>{encoded}</GDepth:Data>", GDEPTH)
    parts = [
        app1(EXTENDED_HEADER + GUID.encode() + struct.pack(">II", len(extended), offset) + extended[offset : offset + chunk])
        for offset in range(0, len(extended), chunk)
    ]
    assert len(parts) >= 2
    parts = [part for index, part in enumerate(parts) if index not in drop_chunks]
    # Written out of order: readers must place each chunk by its offset.
    return with_segments(photo_jpeg(), [app1(XMP_HEADER + main_xmp), *reversed(parts)])


def dynamic_depth_jpeg(depth_png, uri="android/depthmap", lengths=None, attribute_items=False):
    confidence = png_bytes(np.full((8, 8), 200, np.uint8))
    items = [("image/jpeg", 0, "primary_image"), ("image/png", len(confidence), "android/confidencemap"),
             ("image/png", len(depth_png), "android/depthmap")]
    if lengths is not None:
        items = [(mime, length, name) for (mime, _, name), length in zip(items, lengths)]

    def item(mime, length, name):
        if attribute_items:
            return f'<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="{mime}" Item:Length="{length}" Item:DataURI="{name}"/></rdf:li>'
        return (f'<rdf:li rdf:parseType="Resource"><Container:Item rdf:parseType="Resource"><Item:Mime>{mime}</Item:Mime>'
                f"<Item:Length>{length}</Item:Length><Item:DataURI>{name}</Item:DataURI></Container:Item></rdf:li>")

    directory = "".join(item(*entry) for entry in items)
    body = (
        '<Device:Container rdf:parseType="Resource"><Container:Directory><rdf:Seq>'
        f"{directory}</rdf:Seq></Container:Directory></Device:Container>"
        '<Device:Cameras><rdf:Seq><rdf:li rdf:parseType="Resource"><Device:Camera rdf:parseType="Resource">'
        '<Camera:Image Image:ItemSemantic="Primary" Image:ItemURI="primary_image"/>'
        '<Camera:DepthMap rdf:parseType="Resource"><DepthMap:Format>RangeInverse</DepthMap:Format>'
        f"<DepthMap:Near>{NEAR}</DepthMap:Near><DepthMap:Far>{FAR}</DepthMap:Far>"
        f"<DepthMap:DepthURI>{uri}</DepthMap:DepthURI><DepthMap:ConfidenceURI>android/confidencemap</DepthMap:ConfidenceURI>"
        "</Camera:DepthMap></Device:Camera></rdf:li></rdf:Seq></Device:Cameras>"
    )
    namespaces = " ".join(
        f'xmlns:{prefix}="http://ns.google.com/photos/dd/1.0/{path}/"'
        for prefix, path in [("Device", "device"), ("Container", "container"), ("Item", "item"),
                             ("Camera", "camera"), ("DepthMap", "depthmap"), ("Image", "image")]
    )
    xmp = xmp_packet(body, namespaces)
    return with_segments(photo_jpeg(), [app1(XMP_HEADER + xmp)], tail=confidence + depth_png)


# --- a HEIF file with a depth item, assembled box by box -------------------------------------


def box(kind, payload):
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full_box(kind, payload, version=0, flags=0):
    return box(kind, bytes([version]) + flags.to_bytes(3, "big") + payload)


def children(data):
    pos = 0
    while pos < len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        yield kind, data[pos + 8 : pos + size]
        pos += size


def heic_parts(image):
    """The property boxes and coded bytes of the one image in a HEIC pillow-heif writes."""
    buffer = io.BytesIO()
    pillow_heif.from_pillow(image).save(buffer, quality=-1)
    top = dict(children(buffer.getvalue()))
    meta = dict(children(top[b"meta"][4:]))
    assert struct.unpack_from(">H", meta[b"iinf"], 4)[0] == 1
    ipco = dict(children(meta[b"iprp"]))[b"ipco"]
    return [box(kind, payload) for kind, payload in children(ipco)], top[b"mdat"]


def heic_with_depth(photo, depth_codes, xmp=None):
    primary_props, primary_data = heic_parts(photo)
    depth_props, depth_data = heic_parts(Image.fromarray(depth_codes))
    properties = primary_props + depth_props + [full_box(b"auxC", b"urn:mpeg:hevc:2015:auxid:2\x00")]
    primary_indices = range(1, len(primary_props) + 1)
    depth_indices = range(len(primary_props) + 1, len(properties) + 1)
    items = [(1, b"hvc1", primary_data, primary_indices), (2, b"hvc1", depth_data, depth_indices)]
    if xmp is not None:
        items.append((3, b"mime", xmp, ()))

    def infe(item_id, kind):
        extra = b"application/rdf+xml\x00" if kind == b"mime" else b""
        return full_box(b"infe", struct.pack(">HH4s", item_id, 0, kind) + b"\x00" + extra, version=2,
                        flags=1 if item_id > 1 else 0)

    def meta(first_offset):
        offsets, position = [], first_offset
        for _, _, data, _ in items:
            offsets.append(position)
            position += len(data)
        iloc = struct.pack(">BBH", 0x44, 0x00, len(items)) + b"".join(
            struct.pack(">HHHII", item_id, 0, 1, offset, len(data))
            for (item_id, _, data, _), offset in zip(items, offsets)
        )
        ipma = struct.pack(">I", len(items) - (xmp is not None)) + b"".join(
            struct.pack(">HB", item_id, len(indices)) + bytes(0x80 | i if i == indices[0] else i for i in indices)
            for item_id, _, _, indices in items if indices
        )
        references = box(b"auxl", struct.pack(">HHH", 2, 1, 1))
        if xmp is not None:
            references += box(b"cdsc", struct.pack(">HHH", 3, 1, 2))
        return full_box(b"meta", b"".join([
            full_box(b"hdlr", struct.pack(">I4s12s", 0, b"pict", b"") + b"\x00"),
            full_box(b"pitm", struct.pack(">H", 1)),
            full_box(b"iloc", iloc),
            full_box(b"iinf", struct.pack(">H", len(items)) + b"".join(infe(i, kind) for i, kind, _, _ in items)),
            full_box(b"iref", references),
            box(b"iprp", box(b"ipco", b"".join(properties)) + full_box(b"ipma", ipma)),
        ]))

    ftyp = box(b"ftyp", b"heic" + struct.pack(">I", 0) + b"mif1heic")
    first_offset = len(ftyp) + len(meta(0)) + 8
    return ftyp + meta(first_offset) + box(b"mdat", b"".join(data for _, _, data, _ in items))


def apple_depth_xmp(low, high):
    return xmp_packet(
        f"<apdi:NativeFormat>{HDEP}</apdi:NativeFormat><apdi:StoredFormat>1278226488</apdi:StoredFormat>"
        f"<apdi:FloatMinValue>{low}</apdi:FloatMinValue><apdi:FloatMaxValue>{high}</apdi:FloatMaxValue>"
        "<apdi:IntMinValue>0</apdi:IntMinValue><apdi:IntMaxValue>255</apdi:IntMaxValue>",
        'xmlns:apdi="http://ns.apple.com/pixeldatainfo/1.0/"',
    )


def heic_photo():
    y, x = np.mgrid[0:64, 0:96]
    return Image.fromarray(np.stack([x * 2, y * 3, (x + y)], axis=2).astype(np.uint8))


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- GDepth ------------------------------------------------------------------------------------


@pytest.mark.parametrize("format_name", ["RangeLinear", "RangeInverse"])
def test_gdepth_png_gives_inverse_depth(tmp_path, format_name):
    depth = scene_depth()
    path = write(tmp_path, "photo.jpg", gdepth_jpeg(encode_range(depth, format_name), format_name))
    embedded = read_embedded_depth(path)
    assert embedded is not None and embedded.source == "GDepth XMP"
    values = embedded.disparity.values
    assert values.shape == depth.shape and not embedded.disparity.absolute
    assert np.abs(values - expected_disparity(depth)).max() < 2e-3
    assert values[12, 15] > values[28, 40] > values[2, 40]  # box nearest, bottom nearer than top


def test_gdepth_8_bit_jpeg_map_and_exif_orientation(tmp_path):
    depth = scene_depth()
    codes = encode_range(depth, "RangeInverse", bits=8)
    ok, jpeg_map = cv2.imencode(".jpg", codes, [cv2.IMWRITE_JPEG_QUALITY, 100])
    data = base64.b64encode(jpeg_map.tobytes()).decode()
    path = write(tmp_path, "turned.jpg", gdepth_jpeg(None, "RangeInverse", "image/jpeg", data=data, orientation=6))
    values = read_embedded_depth(path).disparity.values
    # Orientation 6: the stored pixels are shown turned 90 degrees clockwise, the map with them.
    expected = np.rot90(expected_disparity(depth), -1)
    assert values.shape == expected.shape == (48, 32)
    assert np.abs(values - expected).mean() < 0.02
    assert np.corrcoef(values.ravel(), expected.ravel())[0, 1] > 0.99


def test_extended_xmp_is_reassembled_by_offset(tmp_path):
    depth = scene_depth()
    path = write(tmp_path, "extended.jpg", extended_gdepth_jpeg(encode_range(depth, "RangeLinear")))
    embedded = read_embedded_depth(path)
    assert embedded.source == "GDepth XMP"
    assert np.abs(embedded.disparity.values - expected_disparity(depth)).max() < 2e-3


def test_stripped_extended_xmp_means_no_depth(tmp_path):
    # What an editor that keeps only the main XMP leaves behind: GDepth settings without data.
    data = extended_gdepth_jpeg(encode_range(scene_depth(), "RangeLinear"), drop_chunks=range(100))
    path = write(tmp_path, "edited.jpg", data)
    assert EXTENDED_HEADER not in data and b"HasExtendedXMP" in data
    assert read_embedded_depth(path) is None


def test_extended_xmp_with_a_missing_chunk_is_an_error(tmp_path):
    path = write(tmp_path, "partial.jpg", extended_gdepth_jpeg(encode_range(scene_depth(), "RangeLinear"), drop_chunks=[1]))
    with pytest.raises(SbsError, match="partial.jpg: the extended XMP is incomplete") as error:
        read_embedded_depth(path)
    assert "\n" not in str(error.value)


# --- Dynamic Depth -----------------------------------------------------------------------------


@pytest.mark.parametrize("attribute_items", [False, True])
def test_dynamic_depth_item_after_the_primary_jpeg(tmp_path, attribute_items):
    depth = scene_depth()
    path = write(tmp_path, "pixel.jpg",
                 dynamic_depth_jpeg(png_bytes(encode_range(depth, "RangeInverse")), attribute_items=attribute_items))
    embedded = read_embedded_depth(path)
    assert embedded.source == "Dynamic Depth"
    assert np.abs(embedded.disparity.values - expected_disparity(depth)).max() < 2e-3


# --- HEIC --------------------------------------------------------------------------------------


def test_heic_depth_image_is_disparity_by_default(tmp_path):
    disparity_codes = np.round(expected_disparity(scene_depth()) * 255).astype(np.uint8)
    path = write(tmp_path, "portrait.heic", heic_with_depth(heic_photo(), disparity_codes))
    embedded = read_embedded_depth(path)
    assert embedded.source == "HEIC depth image"
    values = embedded.disparity.values
    assert values.shape == disparity_codes.shape
    # Lossless HEVC of an 8-bit map: the codes come back within a step or two.
    assert np.abs(values - normalize(disparity_codes.astype(np.float32))).max() < 3 / 255
    assert values[12, 15] > values[2, 40]


def test_heic_depth_marked_as_apple_depth_is_inverted(tmp_path):
    depth = scene_depth()
    low, high = 1.5, 4.5
    codes = np.round((depth - low) / (high - low) * 255).astype(np.uint8)  # brighter = farther
    path = write(tmp_path, "depth.heic", heic_with_depth(heic_photo(), codes, xmp=apple_depth_xmp(low, high)))
    values = read_embedded_depth(path).disparity.values
    assert values[12, 15] == pytest.approx(1.0, abs=0.02)  # the box, nearest
    assert np.abs(values - expected_disparity(depth)).max() < 0.03


def test_heic_without_depth_and_plain_files_have_none(tmp_path):
    heic = io.BytesIO()
    pillow_heif.from_pillow(heic_photo()).save(heic, quality=80)
    plain_heic = write(tmp_path, "plain.heic", heic.getvalue())
    plain_jpeg = write(tmp_path, "plain.jpg", photo_jpeg())
    other_xmp = xmp_packet("<dc:title>holiday</dc:title>", 'xmlns:dc="http://purl.org/dc/elements/1.1/"')
    tagged_jpeg = write(tmp_path, "tagged.jpg", with_segments(photo_jpeg(), [app1(XMP_HEADER + other_xmp)]))
    png = tmp_path / "plain.png"
    Image.open(plain_jpeg).save(png)
    for path in (plain_heic, plain_jpeg, tagged_jpeg, png):
        assert read_embedded_depth(path) is None, path


# --- broken payloads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: gdepth_jpeg(None, "RangeLinear", data="not base64 !!"), "GDepth:Data is not valid base64"),
        (lambda: gdepth_jpeg(None, "RangeLinear", data=base64.b64encode(b"\x89PNG garbage").decode()),
         "embedded GDepth depth image cannot be decoded"),
        (lambda: gdepth_jpeg(np.zeros((4, 4), np.uint8), "RangeSquare"), "unknown GDepth depth format 'RangeSquare'"),
        (lambda: gdepth_jpeg(np.full((4, 4), 7, np.uint8), "RangeInverse"), "the map is constant"),
        (lambda: dynamic_depth_jpeg(png_bytes(np.eye(8, dtype=np.uint8)), uri="android/missing"),
         "Dynamic Depth container has no item 'android/missing'"),
        (lambda: dynamic_depth_jpeg(png_bytes(np.eye(8, dtype=np.uint8)), lengths=[0, 10, 10**6]),
         "runs past the end of the file"),
        (lambda: dynamic_depth_jpeg(png_bytes(np.eye(8, dtype=np.uint8)), lengths=[0, 3, 100]),
         "Dynamic Depth depth image cannot be decoded"),
        (lambda: with_segments(photo_jpeg(), [app1(XMP_HEADER + b"<x:xmpmeta " + GDEPTH.encode() + b"><oops")]),
         "XMP metadata is not valid XML"),
    ],
)
def test_broken_depth_payload_is_one_line_error_naming_the_file(tmp_path, make, message):
    path = write(tmp_path, "broken.jpg", make())
    with pytest.raises(SbsError, match=message) as error:
        read_embedded_depth(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("carrier", ["gdepth", "extended", "dynamic", "heic"])
def test_damaged_depth_photos_only_ever_raise_sbs_error(tmp_path, carrier):
    depth = scene_depth()
    data = {
        "gdepth": lambda: gdepth_jpeg(encode_range(depth, "RangeLinear"), "RangeLinear"),
        "extended": lambda: extended_gdepth_jpeg(encode_range(depth, "RangeLinear")),
        "dynamic": lambda: dynamic_depth_jpeg(png_bytes(encode_range(depth, "RangeInverse"))),
        "heic": lambda: heic_with_depth(heic_photo(), np.full((32, 48), 90, np.uint8) + np.eye(32, 48, dtype=np.uint8)),
    }[carrier]()
    rng = np.random.default_rng(7)
    outcomes = set()
    for case in range(40):
        damaged = bytearray(data)
        if case % 2:
            damaged = damaged[: int(rng.integers(12, len(damaged)))]
        else:
            for position in rng.integers(0, len(damaged), 6):
                damaged[position] = int(rng.integers(0, 256))
        path = write(tmp_path, f"damaged{case}.bin", bytes(damaged))
        try:
            found = read_embedded_depth(path)
            outcomes.add("none" if found is None else "depth")
        except SbsError as error:
            assert "\n" not in str(error)
            outcomes.add("error")
    assert "error" in outcomes  # the damage did reach the depth data


# --- through the command line ------------------------------------------------------------------


def test_cli_uses_embedded_depth_automatically(tmp_path):
    depth = scene_depth()
    photo = write(tmp_path, "photo.jpg", gdepth_jpeg(encode_range(depth, "RangeInverse"), "RangeInverse"))
    out = tmp_path / "out.jpg"
    result = CliRunner().invoke(main, [str(photo), "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "using the depth embedded in the photo (GDepth XMP)" in result.stderr
    with Image.open(out) as image:
        assert image.size == (192, 64)
        frame = np.asarray(image, np.float32)
    left, right = frame[:, :96], frame[:, 96:]
    assert np.abs(left - right).mean() > 5  # the right eye really is shifted


def test_cli_depth_source_embedded_on_a_plain_photo_fails_in_one_line(tmp_path):
    photo = write(tmp_path, "plain.jpg", photo_jpeg())
    result = CliRunner().invoke(main, [str(photo), "--depth-source", "embedded", "-o", str(tmp_path / "o.jpg")])
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no embedded depth map" in lines[0]
    assert not (tmp_path / "o.jpg").exists()
