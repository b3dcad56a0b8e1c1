"""Decoding photos: orientation, bit depth, alpha, odd modes and bad files."""

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from sbsconvert.decode import MAX_PIXELS, apply_exif_orientation, load_picture
from sbsconvert.errors import SbsError


def gradient(width=12, height=8):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 20, y * 30, (x + y) * 10], axis=2).astype(np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    pixels = gradient()
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png"))).astype(np.float32) / 255
    assert np.allclose(load_picture(tmp_path / "o.png").pixels, expected)
    assert np.allclose(apply_exif_orientation(pixels.astype(np.float32) / 255, orientation), expected)


def test_16_bit_colour_png_keeps_precision(tmp_path):
    values = np.random.default_rng(0).integers(0, 65535, (6, 9, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), values[:, :, ::-1])
    picture = load_picture(tmp_path / "deep.png")
    assert picture.bit_depth == 16
    assert np.allclose(picture.pixels, values / 65535.0, atol=1e-7)


def test_16_bit_grey_and_alpha_and_cmyk(tmp_path):
    grey = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000)
    cv2.imwrite(str(tmp_path / "grey16.png"), grey)
    picture = load_picture(tmp_path / "grey16.png")
    assert picture.pixels.shape == (6, 8, 3) and np.isclose(picture.pixels.max(), 47000 / 65535)

    rgba = np.zeros((5, 5, 4), np.uint8)
    rgba[..., 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert load_picture(tmp_path / "alpha.png").has_alpha

    Image.fromarray(gradient()).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert load_picture(tmp_path / "cmyk.jpg").pixels.shape == (8, 12, 3)


def test_animated_gif_uses_first_frame_with_a_note(tmp_path):
    frames = [Image.fromarray(np.full((6, 6, 3), value, np.uint8)) for value in (10, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    picture = load_picture(tmp_path / "anim.gif")
    assert picture.notes and "first frame" in picture.notes[0]
    assert picture.pixels.max() < 0.2


@pytest.mark.parametrize(
    "content, message",
    [(b"", "not a readable image"), (b"GIF89a garbage", "not a readable image"), (b"\x89PNG\r\n\x1a\n\0\0", "not a readable image")],
)
def test_bad_files_give_one_line(tmp_path, content, message):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(SbsError, match=message) as error:
        load_picture(tmp_path / "bad.png")
    assert "\n" not in str(error.value)


def test_truncated_jpeg_is_refused(tmp_path):
    Image.fromarray(gradient(64, 64)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(SbsError, match="cut.jpg"):
        load_picture(tmp_path / "cut.jpg")


def test_tiny_and_huge_images_are_refused(tmp_path):
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(SbsError, match="too small"):
        load_picture(tmp_path / "dot.png")
    side = int(MAX_PIXELS**0.5) + 10
    Image.new("1", (side, side)).save(tmp_path / "huge.png")  # 1-bit: a small file, a big picture
    with pytest.raises(SbsError, match="megapixel limit"):
        load_picture(tmp_path / "huge.png")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(SbsError, match="no such file"):
        load_picture(tmp_path / "nope.jpg")
    with pytest.raises(SbsError, match="folder"):
        load_picture(tmp_path)
