"""Disparity files: formats, kinds, validation, resizing and the pixel shift."""

import cv2
import numpy as np
import pytest

from sbsconvert.disparity import (
    Disparity,
    load_disparity_file,
    pixel_shift,
    read_pfm,
    resize_disparity,
    write_pfm,
)
from sbsconvert.errors import SbsError

RAMP = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (8, 1))


def test_png_8_and_16_bit_are_normalised(tmp_path):
    cv2.imwrite(str(tmp_path / "d8.png"), np.round(RAMP * 200 + 20).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "d16.png"), np.round(RAMP * 60000 + 100).astype(np.uint16))
    for name in ("d8.png", "d16.png"):
        disparity = load_disparity_file(tmp_path / name)
        assert not disparity.absolute
        assert disparity.values.min() == 0 and disparity.values.max() == 1
        assert np.allclose(disparity.values, RAMP, atol=1 / 200)


def test_npy_npz_and_pfm_round_trip(tmp_path):
    values = RAMP * 37 + 3
    np.save(tmp_path / "d.npy", values)
    np.savez(tmp_path / "d.npz", disparity=values)
    write_pfm(tmp_path / "d.pfm", values)
    assert np.array_equal(read_pfm(tmp_path / "d.pfm"), values)
    for name in ("d.npy", "d.npz", "d.pfm"):
        pixels = load_disparity_file(tmp_path / name, kind="pixels")
        assert pixels.absolute and np.array_equal(pixels.values, values)


def test_pfm_big_endian_is_read(tmp_path):
    values = RAMP * 5
    with open(tmp_path / "be.pfm", "wb") as handle:
        handle.write(b"Pf\n16 8\n1.0\n" + np.flipud(values).astype(">f4").tobytes())
    assert np.array_equal(read_pfm(tmp_path / "be.pfm"), values)


def test_depth_kind_inverts(tmp_path):
    depth = np.array([[1.0, 2.0], [4.0, 8.0]], np.float32)
    np.save(tmp_path / "z.npy", depth)
    disparity = load_disparity_file(tmp_path / "z.npy", kind="depth").values
    assert disparity[0, 0] == 1.0 and disparity[1, 1] == 0.0  # nearest = 1, farthest = 0
    assert disparity[0, 1] > disparity[1, 0]


@pytest.mark.parametrize(
    "values, message",
    [
        (np.array([[1.0, np.nan], [2.0, 3.0]], np.float32), "NaN or infinite"),
        (np.array([[1.0, np.inf], [2.0, 3.0]], np.float32), "NaN or infinite"),
        (np.full((4, 4), 7.0, np.float32), "constant"),
        (np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "expected a 2-D map"),
        (np.array(["a", "b"]), "expected a 2-D map"),
    ],
)
def test_bad_maps_are_refused_with_one_line(tmp_path, values, message):
    np.save(tmp_path / "bad.npy", values)
    with pytest.raises(SbsError, match=message) as error:
        load_disparity_file(tmp_path / "bad.npy")
    assert "\n" not in str(error.value)


def test_colour_png_is_refused_but_grey_rgb_is_accepted(tmp_path):
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 255
    colour[:4, :, 1] = 10
    cv2.imwrite(str(tmp_path / "colour.png"), colour)
    with pytest.raises(SbsError, match="colour channels"):
        load_disparity_file(tmp_path / "colour.png")
    grey = np.repeat(np.round(RAMP * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    assert load_disparity_file(tmp_path / "grey.png").values.shape == (8, 16)


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(SbsError, match="not a readable"):
        load_disparity_file(tmp_path / "junk.png")
    with pytest.raises(SbsError, match="no such file"):
        load_disparity_file(tmp_path / "missing.png")
    (tmp_path / "short.pfm").write_bytes(b"Pf\n4 4\n-1.0\n" + b"\0" * 12)
    with pytest.raises(SbsError, match="truncated"):
        load_disparity_file(tmp_path / "short.pfm")


def test_resize_scales_pixel_disparities_with_width():
    absolute = Disparity(np.full((10, 20), 4.0, np.float32) + np.eye(10, 20, dtype=np.float32), absolute=True)
    resized = resize_disparity(absolute, 40, 20)
    assert resized.shape == (20, 40) and resized.absolute
    assert np.isclose(resized.values.min(), 8.0)
    relative = Disparity(RAMP, absolute=False)
    assert resize_disparity(relative, 32, 16).values.max() <= 1.0


def test_pixel_shift_uses_divergence_and_convergence():
    relative = Disparity(np.array([[0.0, 0.5, 1.0]], np.float32))
    assert np.allclose(pixel_shift(relative, 1000, divergence=3.0, convergence=0.0), [[0, 15, 30]])
    assert np.allclose(pixel_shift(relative, 1000, divergence=3.0, convergence=0.5), [[-15, 0, 15]])
    absolute = Disparity(np.array([[2.0, 4.0, 10.0]], np.float32), absolute=True)
    assert np.allclose(pixel_shift(absolute, 1000, divergence=3.0, convergence=0.0), [[2, 4, 10]])
