"""Atomic writes: no partial files, no overwrite without --force, permissions, formats."""

import os
import stat

import numpy as np
import pytest
from PIL import Image

from conftest import SYNTHETIC, SYNTHETIC_DISP, run
from sbsconvert.errors import SbsError
from sbsconvert.output import atomic_path, check_writable_target, write_image

PIXELS = np.random.default_rng(1).random((10, 14, 3)).astype(np.float32)


@pytest.mark.parametrize("name", ["a.jpg", "a.png", "a.webp", "a.tif"])
def test_formats_are_written_by_extension(tmp_path, name):
    write_image(PIXELS, tmp_path / name, force=False)
    with Image.open(tmp_path / name) as image:
        assert image.size == (14, 10)
    assert os.listdir(tmp_path) == [name]  # no temp file left behind


def test_16_bit_png_round_trips(tmp_path):
    write_image(PIXELS, tmp_path / "deep.png", force=False, bit_depth=16)
    from sbsconvert.decode import load_picture

    picture = load_picture(tmp_path / "deep.png")
    assert picture.bit_depth == 16 and np.allclose(picture.pixels, PIXELS, atol=1 / 65535)


def test_existing_output_needs_force(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    with pytest.raises(SbsError, match="already exists"):
        check_writable_target(target, force=False)
    with pytest.raises(SbsError, match="already exists"):
        write_image(PIXELS, target, force=False)
    assert target.read_bytes() == b"precious"
    write_image(PIXELS, target, force=True)
    assert target.read_bytes().startswith(b"\x89PNG")
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


def test_failure_mid_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.png"
    with pytest.raises(RuntimeError):
        with atomic_path(target, force=False) as temp:
            temp.write_bytes(b"half an image")
            raise RuntimeError("encoder crashed")
    assert os.listdir(tmp_path) == []


def test_outputs_get_ordinary_permissions(tmp_path):
    write_image(PIXELS, tmp_path / "p.jpg", force=False)
    mode = stat.S_IMODE(os.stat(tmp_path / "p.jpg").st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder_gives_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    with pytest.raises(SbsError, match="cannot write"):
        write_image(PIXELS, locked / "x.png", force=False)


def test_output_under_a_file_gives_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SbsError, match="cannot write"):
        write_image(PIXELS, tmp_path / "file" / "x.png", force=False)


def test_unknown_extension_is_refused(tmp_path):
    with pytest.raises(SbsError, match="unsupported output image type"):
        write_image(PIXELS, tmp_path / "x.xyz", force=False)


def test_jpeg_drops_alpha_and_keeps_exif(tmp_path):
    rgba = np.concatenate([PIXELS, np.ones((10, 14, 1), np.float32)], axis=2)
    exif = Image.Exif()
    exif[0x0132] = "2026:11:25 10:00:00"
    write_image(rgba, tmp_path / "e.jpg", force=False, exif=exif.tobytes())
    with Image.open(tmp_path / "e.jpg") as image:
        assert image.mode == "RGB" and image.getexif()[0x0132] == "2026:11:25 10:00:00"


def test_png_compression_trades_size_for_time_and_keeps_the_pixels(tmp_path):
    """--png-compression sets zlib's level: 9 writes a smaller file than the fast default, with the
    same pixels; a level outside 0-9 is refused in one line."""
    sizes, pixels = {}, {}
    for level in ("1", "9"):
        out = tmp_path / f"level{level}.png"
        code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "--png-compression", level, "-o", out)
        assert code == 0, output
        sizes[level] = out.stat().st_size
        pixels[level] = np.asarray(Image.open(out))
    assert sizes["9"] < sizes["1"] and np.array_equal(pixels["1"], pixels["9"])
    code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "--png-compression", "12", "-o", tmp_path / "x.png")
    assert code == 2 and output.strip().count("\n") == 0 and "--png-compression" in output
