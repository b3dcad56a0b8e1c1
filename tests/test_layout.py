"""Layouts: sizes, which half is which eye, anaglyph channel mix."""

import numpy as np
import pytest

from sbsconvert.layout import LAYOUTS, anaglyph, compose, fit_width, linear_to_srgb, srgb_to_linear

HEIGHT, WIDTH = 30, 40
LEFT = np.zeros((HEIGHT, WIDTH, 3), np.float32)
LEFT[..., 0] = 1.0  # pure red left eye
RIGHT = np.zeros((HEIGHT, WIDTH, 3), np.float32)
RIGHT[..., 2] = 1.0  # pure blue right eye


def test_sbs_puts_left_eye_on_the_left():
    (frame,) = compose(LEFT, RIGHT, "sbs")
    assert frame.shape == (HEIGHT, 2 * WIDTH, 3)
    assert np.array_equal(frame[:, :WIDTH], LEFT) and np.array_equal(frame[:, WIDTH:], RIGHT)


def test_crosseye_swaps_the_eyes():
    (frame,) = compose(LEFT, RIGHT, "crosseye")
    assert np.array_equal(frame[:, :WIDTH], RIGHT) and np.array_equal(frame[:, WIDTH:], LEFT)


def test_tb_puts_left_eye_on_top():
    (frame,) = compose(LEFT, RIGHT, "tb")
    assert frame.shape == (2 * HEIGHT, WIDTH, 3)
    assert np.array_equal(frame[:HEIGHT], LEFT) and np.array_equal(frame[HEIGHT:], RIGHT)


def test_half_layouts_keep_the_frame_size():
    (hsbs,) = compose(LEFT, RIGHT, "hsbs")
    (htb,) = compose(LEFT, RIGHT, "htb")
    assert hsbs.shape == (HEIGHT, WIDTH, 3) and htb.shape == (HEIGHT, WIDTH, 3)
    assert np.allclose(hsbs[:, : WIDTH // 2], LEFT[:, : WIDTH // 2])
    assert np.allclose(hsbs[:, WIDTH // 2 :], RIGHT[:, : WIDTH // 2])
    assert np.allclose(htb[: HEIGHT // 2], LEFT[: HEIGHT // 2])
    assert np.allclose(htb[HEIGHT // 2 :], RIGHT[: HEIGHT // 2])


def test_half_sbs_squeezes_detail_horizontally():
    stripes = np.zeros((4, 8, 3), np.float32)
    stripes[:, ::2] = 1.0  # 1-pixel stripes average to grey at half width
    (frame,) = compose(stripes, stripes, "hsbs")
    assert np.allclose(frame, 0.5)


def test_lr_pair_gives_two_frames():
    frames = compose(LEFT, RIGHT, "lr-pair")
    assert len(frames) == 2 and np.array_equal(frames[0], LEFT) and np.array_equal(frames[1], RIGHT)
    assert LAYOUTS["lr-pair"].suffixes == ("_L", "_R")


def test_anaglyph_routes_left_to_red_and_right_to_cyan():
    white = np.ones((2, 2, 3), np.float32)
    black = np.zeros((2, 2, 3), np.float32)
    left_only = anaglyph(white, black)[0, 0]
    right_only = anaglyph(black, white)[0, 0]
    # Dubois: a white left eye lights the red channel only (its G/B rows are slightly negative).
    assert left_only[0] > 0.9 and left_only[1] == 0 and left_only[2] == 0
    # A white right eye lights green and blue, leaves red dark.
    assert right_only[0] == 0 and right_only[1] > 0.9 and right_only[2] > 0.9


def test_anaglyph_matches_the_dubois_matrices_in_linear_light():
    rng = np.random.default_rng(0)
    left, right = rng.random((3, 3, 3), np.float32), rng.random((3, 3, 3), np.float32)
    from sbsconvert.layout import DUBOIS_LEFT, DUBOIS_RIGHT

    expected = DUBOIS_LEFT @ srgb_to_linear(left[1, 2]) + DUBOIS_RIGHT @ srgb_to_linear(right[1, 2])
    expected = linear_to_srgb(np.clip(expected, 0, 1))
    assert np.allclose(anaglyph(left, right)[1, 2], expected, atol=1e-5)


def _textbook_anaglyph(left, right):
    """The anaglyph as its definition reads (the first implementation): the sRGB curves with their
    two pieces selected per value, one 3x3 matrix product per pixel, in float64."""
    from sbsconvert.layout import DUBOIS_LEFT, DUBOIS_RIGHT

    def decode(v):
        return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)

    def encode(v):
        return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)

    left, right = left.astype(np.float64), right.astype(np.float64)
    mixed = decode(left) @ DUBOIS_LEFT.T.astype(np.float64) + decode(right) @ DUBOIS_RIGHT.T.astype(np.float64)
    return encode(np.clip(mixed, 0, 1))


def test_anaglyph_of_a_photo_equals_the_textbook_mix():
    """The banded, branch-free mix gives the textbook's pixels within a 16-bit level, on a real photo
    (every value from black to white, dark areas on the sRGB curves' straight pieces) whose width
    does not divide into the bands evenly."""
    from skimage import data

    photo = data.astronaut()[:333, :201].astype(np.float32) / 255
    left, right = photo, np.roll(photo, 7, axis=1) * np.float32(0.9)
    assert np.abs(anaglyph(left, right) - _textbook_anaglyph(left, right)).max() <= 1 / 65535


def test_srgb_round_trip():
    values = np.linspace(0, 1, 101, dtype=np.float32)
    assert np.allclose(linear_to_srgb(srgb_to_linear(values)), values, atol=1e-5)


def test_fit_width_downscales_only():
    view = np.zeros((100, 200, 3), np.float32)
    assert fit_width(view, 50).shape == (25, 50, 3)
    assert fit_width(view, 400) is view
    assert fit_width(view, None) is view


def test_mismatched_views_are_refused():
    with pytest.raises(ValueError):
        compose(LEFT, RIGHT[:, :-1], "sbs")


def test_alpha_is_kept_in_side_by_side():
    rgba = np.ones((4, 6, 4), np.float32)
    (frame,) = compose(rgba, rgba, "hsbs")
    assert frame.shape == (4, 6, 4)
