"""The warp engine on the synthetic scene with exact ground truth, and on hand-made rows."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sbsconvert.engines.base import StereoRequest
from sbsconvert.engines.warp import FILL_METHODS, WarpEngine, fill_holes, forward_warp
from sbsconvert.engines.warp_kernel import warp_and_fill
from sbsconvert.synthetic import render_scene

REPO = Path(__file__).resolve().parent.parent

# Bound for non-occluded pixels: integer-disparity planes are copied exactly; the floor has
# fractional per-row disparity, where linear interpolation of the band-limited texture costs a
# little (measured: 63-64 dB, max error 0.012 over sizes 320x240 to 1000x300).
MIN_NON_OCCLUDED_PSNR_DB = 55.0
MAX_NON_OCCLUDED_ERROR = 0.02


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def warp_scene(scene, fill="blank"):
    engine = WarpEngine(fill=fill)
    request = StereoRequest(image=scene.left, nearness=scene.disparity, shift=scene.disparity)
    return engine.render(request)


@pytest.mark.parametrize("size", [(320, 240), (641, 480), (1000, 300)])
def test_non_occluded_pixels_match_the_true_right_view(size):
    scene = render_scene(*size)
    right = warp_scene(scene).right
    visible = scene.non_occluded
    assert psnr(right[visible], scene.right[visible]) >= MIN_NON_OCCLUDED_PSNR_DB
    assert np.abs(right - scene.right)[visible].max() <= MAX_NON_OCCLUDED_ERROR


def test_every_non_occluded_pixel_is_warped_and_holes_are_true_disocclusions():
    scene = render_scene(320, 240)
    image = torch.from_numpy(scene.left).permute(2, 0, 1)
    result = forward_warp(image, torch.from_numpy(scene.disparity), torch.from_numpy(scene.disparity))
    valid = result.valid.numpy()
    assert valid[scene.non_occluded].all()
    # Holes only where the true right view has disocclusions.
    assert not (~valid & scene.non_occluded).any()
    assert (~valid).sum() > 0.5 * (~scene.non_occluded).sum()


def test_near_object_occludes_far_one_where_they_overlap():
    scene = render_scene(320, 240)
    image = torch.from_numpy(scene.left).permute(2, 0, 1)
    result = forward_warp(image, torch.from_numpy(scene.disparity), torch.from_numpy(scene.disparity))
    # Where the true right view shows the disc (disparity 20) the warp's winner must be the disc,
    # although the box (10) and the wall (2) also land there.
    disc = np.isclose(scene.right_disparity, 20) & scene.non_occluded
    assert disc.sum() > 1000
    assert np.allclose(result.nearness.numpy()[disc], 20)
    box = np.isclose(scene.right_disparity, 10) & scene.non_occluded
    assert np.allclose(result.nearness.numpy()[box], 10)


def test_ties_and_overlaps_in_one_row():
    row = torch.arange(10.0).reshape(1, 1, 10)
    shift = torch.zeros(1, 10)
    shift[0, 3:6] = 2.0  # pixels 3..5 move onto 1..3, over pixels 1..2
    result = forward_warp(row, shift, shift.clone())
    assert result.image[0, 0].tolist() == [0, 3, 4, 5, 0, 0, 6, 7, 8, 9]
    assert result.valid[0].tolist() == [True] * 4 + [False] * 2 + [True] * 4


def test_fractional_shift_is_sub_pixel_exact_on_linear_content():
    row = torch.linspace(0, 1, 50).reshape(1, 1, 50)
    shift = torch.full((1, 50), 2.25)
    result = forward_warp(row, shift, shift)
    expected = (torch.arange(50.0) + 2.25) / 49
    valid = result.valid[0]
    assert torch.allclose(result.image[0, 0][valid], expected[valid], atol=1e-6)
    assert valid[:47].all() and not valid[48:].any()


@pytest.mark.parametrize("method", ["stretch", "background", "inpaint"])
def test_fills_leave_no_hole_and_keep_valid_pixels(method):
    scene = render_scene(160, 120)
    image = torch.from_numpy(scene.left).permute(2, 0, 1)
    result = forward_warp(image, torch.from_numpy(scene.disparity), torch.from_numpy(scene.disparity))
    filled = fill_holes(result, method)
    valid = result.valid.unsqueeze(0).expand_as(filled)
    assert torch.equal(filled[valid], result.image[valid])
    assert (filled[~valid] > 0).float().mean() > 0.99  # the scene has no black, so black = unfilled


def test_background_fill_takes_the_far_side():
    row = torch.tensor([[[1.0, 1, 1, 9, 9, 9, 5, 5, 5, 5]]])
    shift = torch.tensor([[0.0, 0, 0, 3, 3, 3, 0, 0, 0, 0]])  # the 9s are near and move left
    result = forward_warp(row, shift, shift.clone())
    filled = fill_holes(result, "background")[0, 0].tolist()
    assert filled == [9, 9, 9, 5, 5, 5, 5, 5, 5, 5]  # hole at 3..5 gets the far 5s, not the near 9s
    stretched = fill_holes(result, "stretch")[0, 0].tolist()
    assert stretched[3:6] == pytest.approx([8.0, 7.0, 6.0])


def test_both_eyes_split_the_shift():
    scene = render_scene(200, 150)
    request = StereoRequest(image=scene.left, nearness=scene.disparity, shift=scene.disparity, eye="both")
    pair = WarpEngine(fill="background").render(request)
    assert pair.left.shape == pair.right.shape == scene.left.shape
    assert not np.allclose(pair.left, scene.left)
    # The wall (disparity 1 at this size) moves half a pixel each way; far from edges the two
    # views differ from the centre by about half of what the full right view does.
    full = WarpEngine(fill="background").render(StereoRequest(scene.left, scene.disparity, scene.disparity))
    assert np.abs(pair.right - scene.left).mean() < np.abs(full.right - scene.left).mean()


def test_alpha_channel_is_warped_with_the_colour():
    scene = render_scene(120, 90)
    rgba = np.concatenate([scene.left, np.ones(scene.left.shape[:2] + (1,), np.float32)], axis=2)
    pair = WarpEngine(fill="inpaint").render(StereoRequest(rgba, scene.disparity, scene.disparity))
    assert pair.right.shape == rgba.shape
    assert np.allclose(pair.right[:, :, 3], 1.0, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(4, 40),
    shifts=st.lists(st.floats(-6, 6, allow_nan=False), min_size=4, max_size=40),
    method=st.sampled_from(FILL_METHODS),
)
@example(width=36, shifts=[-1.0, 0.0, 1.0, -1.0], method="inpaint")  # Telea once stepped past the image's range
def test_warp_properties(width, shifts, method):
    """Any shift map: output has the input's shape, values stay in the input's range, and a
    pixel is only ever written by a source at least as near as any other candidate there."""
    shift = torch.tensor((shifts * width)[:width], dtype=torch.float32).reshape(1, width)
    image = torch.rand(3, 1, width, generator=torch.Generator().manual_seed(width))
    result = forward_warp(image, shift, shift.clone())
    filled = fill_holes(result, method)
    assert filled.shape == image.shape
    assert torch.isfinite(filled).all()
    assert filled.min() >= 0 and filled.max() <= image.max() + 1e-5
    assert (result.nearness[result.valid] >= shift.min() - 1e-5).all()
    # The compiled CPU kernel gives the same bits (inpainting runs after it, on the whole picture).
    out, valid, nearness = warp_and_fill(image.numpy(), shift.numpy(), shift.numpy(), 2.0, method)
    assert np.array_equal(out, (result.image if method == "inpaint" else filled).numpy())
    assert np.array_equal(valid, result.valid.numpy()) and np.array_equal(nearness, result.nearness.numpy())
    zero = forward_warp(image, torch.zeros(1, width), torch.zeros(1, width))
    assert torch.equal(zero.image, image) and zero.valid.all()


@pytest.mark.parametrize("fill", FILL_METHODS)
@pytest.mark.parametrize("eye", ["right", "both"])
def test_warping_in_bands_of_rows_changes_nothing(fill, eye):
    scene = render_scene(160, 120)
    request = StereoRequest(image=scene.left, nearness=scene.disparity, shift=scene.disparity, eye=eye)
    whole = WarpEngine(fill=fill, band_pixels=160 * 120, compiled=False).render(request)
    banded = WarpEngine(fill=fill, band_pixels=160 * 7, compiled=False).render(request)  # 7 rows a band, a short last one
    assert np.array_equal(whole.left, banded.left) and np.array_equal(whole.right, banded.right)


@pytest.mark.parametrize("fill", FILL_METHODS)
@pytest.mark.parametrize("size, scale", [((160, 120), 1.0), ((161, 90), -0.7), ((97, 64), 2.3), ((1, 5), 1.0)])
def test_compiled_cpu_kernel_is_the_torch_warp_bit_for_bit(fill, size, scale):
    scene = render_scene(*size)
    request = StereoRequest(image=scene.left, nearness=scene.disparity, shift=scene.disparity * scale, eye="both")
    compiled = WarpEngine(fill=fill, compiled=True).render(request)
    reference = WarpEngine(fill=fill, compiled=False).render(request)
    assert np.array_equal(compiled.left, reference.left) and np.array_equal(compiled.right, reference.right)


def test_the_compiled_kernel_works_where_numba_has_nowhere_to_cache_it(tmp_path):
    """A read-only install run by a user without a writable home: numba refuses to cache (it
    finds no folder), so the kernel is compiled in memory and gives the same views."""
    scene = render_scene(48, 32)
    request = dict(image=scene.left.transpose(2, 0, 1).copy(), shift=scene.disparity * 6,
                   nearness=scene.disparity, max_stretch=2.0, fill="background")
    arrays = tmp_path / "request.npz"
    np.savez(arrays, **{key: value for key, value in request.items() if isinstance(value, np.ndarray)})
    script = f"""
import numpy as np
import numba.core.caching
numba.core.caching.CacheImpl._locator_classes = []  # no folder to cache in
from sbsconvert.engines.warp_kernel import warp_and_fill
with np.load({str(arrays)!r}) as given:
    out, valid, _ = warp_and_fill(given["image"], given["shift"], given["nearness"], 2.0, "background")
np.save({str(tmp_path / "out.npy")!r}, out)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    expected = warp_and_fill(request["image"], request["shift"], request["nearness"], 2.0, "background")[0]
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected)
