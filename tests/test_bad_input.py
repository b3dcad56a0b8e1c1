"""Bad input through every entry point of the CLI: one clear line, non-zero exit, nothing written.

Each case builds its inputs in a fresh folder, runs `sbsconvert` in-process and then checks that
the inputs are byte-identical and that no file appeared anywhere in the folder (no partial output,
no temp file). Cases that are odd but valid (grayscale, CMYK, 16-bit...) must convert instead.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sbsconvert.cli import main
from sbsconvert.decode import load_picture
from sbsconvert.disparity import load_disparity_file
from sbsconvert.errors import SbsError

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
PHOTO = SAMPLES / "chelsea.jpg"
PNG_PHOTO = SAMPLES / "synthetic.png"
MAP = SAMPLES / "disparity" / "synthetic.pfm"


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def invoke(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming a huge size, with almost no data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def write_map(folder: Path, name: str, values) -> Path:
    path = folder / name
    np.save(path, np.asarray(values))
    return path


# Each case: (id, builder(folder) -> CLI args, expected words in the error line).
# Builders write their inputs into `folder`; outputs (if any were written) would land there too.
CASES = [
    ("zero-byte jpeg", lambda d: [_write(d / "empty.jpg", b"")], "not a readable image"),
    ("truncated jpeg", lambda d: [_write(d / "cut.jpg", PHOTO.read_bytes()[:2000]), "--disparity", str(MAP)], "cut.jpg"),
    ("corrupt png", lambda d: [_write(d / "bad.png", b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)], "not a readable image"),
    ("truncated png", lambda d: [_write(d / "cut.png", PNG_PHOTO.read_bytes()[:3000]), "--disparity", str(MAP)], "cut.png"),
    ("corrupt heic", lambda d: [_write(d / "bad.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x01" * 50)], "bad.heic"),
    ("text named png", lambda d: [_write(d / "notes.png", b"just some text\n" * 10)], "not a readable image"),
    ("unsupported extension", lambda d: [_write(d / "notes.txt", b"hello")], "not an image type"),
    ("missing input", lambda d: [str(d / "nothing.jpg")], "no such file"),
    ("empty folder", lambda d: [_mkdir(d / "album")], "holds no images"),
    ("enormous dimensions", lambda d: [_write(d / "huge.png", png_header_only(40_000, 40_000))], "megapixel limit"),
    ("1x1 image", lambda d: [_save(Image.new("RGB", (1, 1)), d / "dot.png")], "too small"),
    ("disparity NaN", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--disparity", str(write_map(d, "n.npy", [[0.0, np.nan], [1.0, 2.0]]))], "NaN"),
    ("disparity inf", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--disparity", str(write_map(d, "i.npy", [[0.0, np.inf], [1.0, 2.0]]))], "inf"),
    ("disparity constant", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--disparity", str(write_map(d, "c.npy", np.ones((4, 4))))], "constant"),
    ("disparity 3-D array", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--disparity", str(write_map(d, "v.npy", np.ones((2, 4, 4, 2))))], "disparity"),
    ("disparity colour png", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--disparity", _save(Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)), d / "rgb.png")], "colour"),
    ("disparity zero-byte", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--disparity", _write(d / "z.pfm", b"")], "z.pfm"),
    ("disparity missing", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--disparity", str(d / "none.png")], "none.png"),
    ("disparity text as npy", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--disparity", _write(d / "t.npy", b"not numpy")], "t.npy"),
    ("disparity file for a folder", lambda d: [_album(d), "--disparity", str(MAP)], "folder of maps"),
    ("unknown preset", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--preset", "no-such-headset"], "no-such-headset"),
    ("broken preset file", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--preset", _write(d / "p.toml", b"format = [")], "p.toml"),
    ("preset with bad value", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--disparity", str(MAP), "--preset", _write(d / "p.toml", b'format = "sbs"\ndivergence = 50.0\n')], "divergence"),
    ("divergence zero", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--divergence", "0"], "--divergence"),
    ("divergence too big", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--divergence", "11"], "--divergence"),
    ("divergence not a number", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--divergence", "lots"], "--divergence"),
    ("unknown format", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.png"), "--format", "hologram"], "--format"),
    ("quality out of range", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.jpg"), "--quality", "0"], "--quality"),
    ("max width too small", lambda d: [str(PNG_PHOTO), "-o", str(d / "o.jpg"), "--max-width", "2"], "--max-width"),
    ("unknown option", lambda d: [str(PNG_PHOTO), "--sparkle"], "--sparkle"),
    ("no input", lambda d: [], "INPUT"),
    ("unknown output type", lambda d: [str(PNG_PHOTO), "--disparity", str(MAP), "-o", str(d / "o.bmpx")], "o.bmpx"),
    ("output under a file", lambda d: [str(PNG_PHOTO), "--disparity", str(MAP), "-o", str(Path(_write(d / "f", b"x")) / "o.png")], "cannot write"),
    ("output equal to input", lambda d: [_copy(PNG_PHOTO, d / "s.png"), "--disparity", str(MAP), "-o", str(d / "s.png"), "--force"], "overwrite an input"),
    ("output exists", lambda d: [str(PNG_PHOTO), "--disparity", str(MAP), "-o", _write(d / "o.png", b"keep")], "already exists"),
    ("output is a folder", lambda d: [str(PNG_PHOTO), "--disparity", str(MAP), "-o", _mkdir(d / "o.png"), "--force"], "folder"),
    ("force with skip-existing", lambda d: [str(PNG_PHOTO), "--disparity", str(MAP), "-o", str(d / "o.png"), "--force", "--skip-existing"], "contradict"),
    ("quiet with verbose", lambda d: [str(PNG_PHOTO), "--disparity", str(MAP), "-o", str(d / "o.png"), "-q", "-v"], "contradict"),
    ("depth from embedded only", lambda d: [_copy(PHOTO, d / "plain.jpg"), "--depth-source", "embedded"], "embedded depth"),
]


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _mkdir(path: Path) -> str:
    path.mkdir()
    return str(path)


def _save(image: Image.Image, path: Path) -> str:
    image.save(path)
    return str(path)


def _copy(source: Path, path: Path) -> str:
    return _write(path, source.read_bytes())


def _album(folder: Path) -> str:
    album = folder / "album"
    album.mkdir()
    for name in ("a.png", "b.png"):
        _copy(PNG_PHOTO, album / name)
    return str(album)


@pytest.mark.parametrize("build, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, build, expected):
    args = build(tmp_path)
    before = snapshot(tmp_path)
    result = invoke(args)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.output
    assert snapshot(tmp_path) == before  # inputs untouched, no output, no temp file


def _cmyk(path: Path) -> None:
    Image.open(PHOTO).convert("CMYK").save(path)


def _grey16(path: Path) -> None:
    grey = np.asarray(Image.open(PHOTO).convert("L"), np.uint16) * 257
    Image.fromarray(grey).save(path)


def _alpha(path: Path) -> None:
    rgba = Image.open(PNG_PHOTO).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(path)


def _animated(path: Path) -> None:
    frames = [Image.open(PNG_PHOTO).convert("P"), Image.open(PNG_PHOTO).rotate(180).convert("P")]
    frames[0].save(path, save_all=True, append_images=frames[1:])


def _png_as_jpg(path: Path) -> None:
    Image.open(PNG_PHOTO).save(path, format="PNG")


@pytest.mark.parametrize(
    "name, make",
    [
        ("grey.png", lambda p: Image.open(PHOTO).convert("L").save(p)),
        ("cmyk.jpg", _cmyk),
        ("grey16.png", _grey16),
        ("alpha.png", _alpha),
        ("animated.gif", _animated),
        ("png_inside.jpg", _png_as_jpg),
        ("two.png", lambda p: Image.new("RGB", (2, 2), "red").save(p)),
    ],
)
def test_odd_but_valid_photos_convert(tmp_path, name, make):
    photo = tmp_path / name
    make(photo)
    out = tmp_path / "out.png"
    width, height = load_picture(photo).size
    disparity = write_map(tmp_path, "d.npy", np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1)))
    result = invoke([str(photo), "--disparity", str(disparity), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (2 * width, height)


def test_batch_reports_each_bad_file_and_converts_the_rest(tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    _copy(PNG_PHOTO, album / "good1.png")
    _write(album / "empty.jpg", b"")
    _write(album / "cut.png", PNG_PHOTO.read_bytes()[:3000])
    _copy(PNG_PHOTO, album / "good2.png")
    maps = tmp_path / "maps"
    maps.mkdir()
    for name in ("good1", "good2", "empty", "cut"):
        _copy(MAP, maps / f"{name}.pfm")
    result = invoke([str(album), "--disparity", str(maps), "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good1_LR.png", "good2_LR.png"]


# Random bytes behind real magic numbers reach deep into the decoders: they must either decode
# or raise SbsError, never anything else.
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff\xe0", ".gif": b"GIF89a", ".tif": b"II*\x00",
         ".webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ", ".heic": b"\x00\x00\x00\x18ftypheic"}


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow's warning; the CLI hides warnings
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(suffix=st.sampled_from(sorted(MAGIC)), body=st.binary(max_size=600))
def test_random_bytes_never_escape_as_anything_but_sbs_error(tmp_path, suffix, body):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(MAGIC[suffix] + body)
    try:
        load_picture(path)
    except SbsError as error:
        assert "\n" not in str(error)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(suffix=st.sampled_from([".pfm", ".npy", ".npz", ".png", ".tif"]), body=st.binary(max_size=400))
def test_random_disparity_bytes_never_escape(tmp_path, suffix, body):
    prefix = {".pfm": b"Pf\n4 4\n-1.0\n", ".npy": b"\x93NUMPY", ".npz": b"PK\x03\x04"}.get(suffix, MAGIC.get(suffix, b""))
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(prefix + body)
    try:
        load_disparity_file(path, "relative")
    except SbsError as error:
        assert "\n" not in str(error)


def test_png_header_helper_really_claims_the_size():
    with Image.open(io.BytesIO(png_header_only(40_000, 30_000))) as image:
        assert image.size == (40_000, 30_000)
