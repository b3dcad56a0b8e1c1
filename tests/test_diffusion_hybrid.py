"""SPSMD schedule (--spsmd-every) and the full-resolution hybrid composite (--composite hybrid),
on the tiny random pipeline of conftest.py."""

import numpy as np
import pytest
import torch

from conftest import make_engine
from sbsconvert.disparity import Disparity, pixel_shift
from sbsconvert.engines.base import StereoRequest
from sbsconvert.engines.diffusion import engine as engine_module
from sbsconvert.engines.diffusion.composite import SEAM_BAND_PIXELS
from sbsconvert.engines.diffusion.crops import MAX_CROPS, Crop, crop_weight, plan_crops
from sbsconvert.engines.diffusion.sampler import Denoiser, Guidance, StereoPlan, denoise_stereo, sample
from sbsconvert.engines.diffusion.shift import LatentShift
from sbsconvert.engines.warp import WarpEngine


def block_shift():
    shift = torch.zeros((8, 8))
    shift[2:6, 3:7] = 2.0
    return LatentShift.plan(shift, shift.clone())


@pytest.fixture
def composite_steps(monkeypatch):
    """The trajectory index each SPSMD composite lands on (spy on LatentShift.compose)."""
    seen = []
    original = LatentShift.compose

    def spy(self, target, source):
        seen.append(spy.index)
        return original(self, target, source)

    spy.index = None
    monkeypatch.setattr(LatentShift, "compose", spy)
    return seen, spy


@pytest.mark.parametrize(
    "steps, start, every, expected",
    [
        (50, 10, 10, [20, 30, 40]),  # the authors' schedule: the last ten steps are free
        (12, 2, 1, list(range(3, 13))),  # every step, the result too (the earlier behaviour)
        (12, 2, 4, [6, 10]),
        (12, 2, 20, []),
    ],
)
def test_spsmd_composites_exactly_at_the_scheduled_steps(tiny_sd, composite_steps, steps, start, every, expected):
    seen, spy = composite_steps
    engine = make_engine(tiny_sd, steps=steps)
    denoiser = Denoiser(engine.model, engine.attention, steps, progress=False)
    guidance = Guidance(engine.model.encode_text("a photo"))
    latent = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    trajectory = sample(denoiser, latent, guidance)
    original_step = denoiser.step

    def step(output, index, latents):  # the composite that follows lands on latent index + 1
        spy.index = index + 1
        return original_step(output, index, latents)

    denoiser.step = step
    plan = StereoPlan(trajectory, [block_shift()], start, True, True, spsmd_every=every)
    source, targets = denoise_stereo(denoiser, plan, guidance)
    assert seen == expected
    outside = ~plan.shifts[0].mask
    drift = (targets[0] - plan.shifts[0].apply(source)[0])[:, outside].abs().max()
    assert (drift == 0) == (every == 1)  # a free last step lets the right view leave the shifted left


def test_no_spsmd_never_composites(tiny_sd, composite_steps):
    seen, _ = composite_steps
    engine = make_engine(tiny_sd, steps=6, spsmd=False, spsmd_every=1)
    denoiser = Denoiser(engine.model, engine.attention, 6, progress=False)
    guidance = Guidance(engine.model.encode_text("a photo"))
    trajectory = sample(denoiser, torch.randn((1, 4, 8, 8)), guidance)
    denoise_stereo(denoiser, StereoPlan(trajectory, [block_shift()], 1, True, False, spsmd_every=1), guidance)
    assert seen == []


# --- hybrid composite --------------------------------------------------------------------------


def scene(height, width, near_shift, eye="right"):
    """A textured photo: a slanted far plane and a near block, whose left edge opens a hole."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width, y / height, 0.5 + 0.4 * np.sin(x / 7) * np.cos(y / 5)], axis=2)
    nearness = 0.3 * x / width
    block = (x > 0.4 * width) & (x < 0.7 * width) & (y > 0.3 * height) & (y < 0.8 * height)
    nearness[block] = 1.0
    return StereoRequest(image=image, nearness=nearness, shift=nearness * near_shift, eye=eye)


def near_holes(holes, distance):
    """Pixels within `distance` (a square, which holds the Euclidean disc) of a hole."""
    grown = torch.nn.functional.max_pool2d(holes.float()[None, None], 2 * distance + 1, stride=1, padding=distance)
    return grown[0, 0].bool().numpy()


def warp_reference(request):
    """The warp engine's pair, and the holes of its right (and left, for eye both) view."""
    warp = WarpEngine()
    pair = warp.render(request)
    image = torch.from_numpy(request.image).permute(2, 0, 1)
    shift, nearness = torch.from_numpy(request.shift), torch.from_numpy(request.nearness)
    shifts = [shift] if request.eye == "right" else [-shift / 2, shift / 2]
    holes = [warp.synthesize_with_holes(image, s, nearness)[1] for s in shifts]
    return pair, holes


def test_hybrid_equals_the_warp_engine_outside_the_seam_band_at_full_resolution(tiny_sd):
    request = scene(2000, 3000, near_shift=60.0)
    engine = make_engine(tiny_sd, steps=3, resolution=64, deblur=True)
    pair = engine.render(request)
    (expected, (holes,)) = warp_reference(request)
    assert pair.right.shape == request.image.shape and pair.left is request.image
    seam = near_holes(holes, SEAM_BAND_PIXELS)
    assert holes.sum() > 20000 and seam.mean() < 0.05  # big holes, a narrow band
    assert np.array_equal(pair.right[~seam], expected.right[~seam])
    # the holes are painted, not filled like the warp engine does
    inside = holes.numpy() & ~near_holes(~holes, 1)
    assert np.abs(pair.right[inside] - expected.right[inside]).mean() > 0.02


def test_holes_come_from_the_diffusion_output(tiny_sd):
    request = scene(96, 160, near_shift=16.0)
    (_, (holes,)) = warp_reference(request)
    inside = holes.numpy() & ~near_holes(~holes, 2)
    assert inside.sum() > 200
    outputs = {}
    for composite, seed in (("hybrid", 1), ("latent", 1), ("hybrid", 2)):
        engine = make_engine(tiny_sd, steps=3, deblur=True, seed=seed, composite=composite)
        outputs[composite, seed] = engine.render(request).right
    hybrid, latent, other_seed = outputs["hybrid", 1], outputs["latent", 1], outputs["hybrid", 2]
    # Another diffusion result changes the holes and nothing far from them.
    seam = near_holes(holes, SEAM_BAND_PIXELS)
    assert np.array_equal(hybrid[~seam], other_seed[~seam])
    assert np.abs(hybrid[inside] - other_seed[inside]).mean() > 0.01
    # In the holes the hybrid is the decoded diffusion view (as the latent composite shows it, up to
    # upscaling) plus a smooth colour offset: their pixel-to-pixel changes agree.
    detail = lambda view: np.diff(view, axis=1)[inside[:, 1:] & inside[:, :-1]]
    correlation = np.corrcoef(detail(hybrid).ravel(), detail(latent).ravel())[0, 1]
    assert correlation > 0.9


def test_slanted_plane_keeps_sub_pixel_disparity_in_hybrid_and_steps_in_latent(tiny_sd, monkeypatch):
    height, width = 64, 160
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width, y / height, np.full_like(x, 0.5)], axis=2)
    nearness = 1 - x / width
    request = StereoRequest(image=image, nearness=nearness, shift=24 * nearness)  # 24 px to 0, stretched
    engine = make_engine(tiny_sd, steps=3, resolution=64)
    right = engine.render(request).right
    # The red channel codes the source column: the right view's pixel x shows source column x + d.
    columns = np.arange(width)[None, :]
    found = right[:, :, 0] * width - columns
    expected = 24 * width / (width + 24) * (1 - columns / width)  # x' = x - 24 (1 - x / W), solved for x - x'
    _, (holes,) = warp_reference(request)
    usable = ~near_holes(holes, SEAM_BAND_PIXELS)  # the right border is a hole
    assert usable.mean() > 0.9
    assert np.abs(found - expected)[usable].max() < 0.1  # the warp engine's own accuracy
    assert len(np.unique(np.round(found[0][usable[0]], 1))) > 100  # smooth, not a few levels

    plans = []
    original = engine_module.denoise_stereo
    monkeypatch.setattr(engine_module, "denoise_stereo", lambda d, plan, *a: plans.append(plan) or original(d, plan, *a))
    engine.settings.composite = "latent"
    engine.render(request)
    (shift,) = plans[0].shifts
    image_per_latent = width / shift.mask.shape[1]
    latent_columns = torch.arange(shift.mask.shape[1])
    moved = ((shift.source - latent_columns) * image_per_latent)[~shift.mask]
    # Whole latent pixels (8 image pixels for SD at its own size, here width / 12): a few levels.
    levels = (moved / image_per_latent).unique()
    assert torch.equal(levels, levels.round()) and len(levels) <= 3


def test_both_eyes_are_the_warp_engines_outside_the_seam_band(tiny_sd):
    request = scene(96, 160, near_shift=24.0, eye="both")
    pair = make_engine(tiny_sd, steps=3, deblur=True).render(request)
    expected, holes = warp_reference(request)
    for view, reference, hole in ((pair.left, expected.left, holes[0]), (pair.right, expected.right, holes[1])):
        assert hole.any()
        seam = near_holes(hole, SEAM_BAND_PIXELS)
        assert np.array_equal(view[~seam], reference[~seam])


def test_text_to_stereo_warps_the_generated_left(tiny_sd):
    def disparity_for(left):
        values = np.zeros(left.shape[:2], np.float32)
        values[:, left.shape[1] // 2 :] = 1
        return Disparity(values)

    engine = make_engine(tiny_sd, steps=3, prompt="a red fox", guidance=5.0)
    pair = engine.generate(divergence=10, disparity_for=disparity_for)
    shift = np.where(disparity_for(pair.left).values > 0, 6.4, 0).astype(np.float32)
    request = StereoRequest(image=pair.left, nearness=disparity_for(pair.left).values, shift=shift)
    expected, (holes,) = warp_reference(request)
    seam = near_holes(holes, SEAM_BAND_PIXELS)
    assert holes.any() and np.array_equal(pair.right[~seam], expected.right[~seam])


# --- native fill resolution ---------------------------------------------------------------------


def test_crops_cover_every_hole_most_holes_first_and_stay_bounded():
    holes = torch.zeros((300, 500), dtype=torch.bool)
    holes[10:60, 20:30] = True  # small
    holes[100:290, 300:330] = True  # large, taller than a crop
    crops = plan_crops(holes, (128, 128), max_crops=8)
    assert crops[0].left <= 300 and crops[0].left + 128 >= 330  # the large hole first
    covered = torch.zeros_like(holes)
    for crop in crops:
        assert 0 <= crop.left and crop.left + crop.width <= 500 and 0 <= crop.top and crop.top + crop.height <= 300
        assert (crop.width, crop.height) == (128, 128)
        covered[crop.rows, crop.columns] = True
    assert bool(covered[holes].all()) and len(crops) == 3
    assert len(plan_crops(holes, (128, 128), max_crops=2)) == 2
    assert plan_crops(torch.zeros((50, 50), dtype=torch.bool), (32, 32)) == []
    # a photo smaller than a crop is one crop of the photo's size
    (whole,) = plan_crops(torch.ones((40, 60), dtype=torch.bool), (128, 128))
    assert (whole.width, whole.height) == (60, 40)


def test_crop_weight_fades_inside_the_photo_only():
    crop = Crop(left=0, top=20, width=64, height=32)
    weight = crop_weight(crop, (200, 52))  # touches the photo's left and bottom borders
    # full weight up to the photo's border (away from the inner sides' fades, 4 and 8 px)
    assert weight[4:, 0].min() == 1 and weight[-1, :-8].min() == 1
    assert weight[0].max() < 0.5 and weight[:, -1].max() < 0.5  # fades towards the inner sides
    assert weight[16, 32] == 1


def test_native_fill_repaints_the_holes_crop_by_crop_with_the_whole_view_as_context(tiny_sd, monkeypatch):
    request = scene(160, 240, near_shift=20.0)
    model_fill = make_engine(tiny_sd, steps=3, resolution=64, deblur=True).render(request).right
    engine = make_engine(tiny_sd, steps=3, resolution=64, deblur=True, fill_resolution="native")
    runs = []
    original = engine._stereo_latents

    def spy(image, nearness, shifts, size, record, reference):
        runs.append((image.shape, size, record, reference))
        return original(image, nearness, shifts, size, record, reference)

    monkeypatch.setattr(engine, "_stereo_latents", spy)
    native = engine.render(request).right
    (whole, *crops) = runs
    assert whole[0] == request.image.shape and whole[2] is not None  # the whole view records its keys/values
    assert 1 <= len(crops) <= MAX_CROPS
    for shape, size, record, reference in crops:
        assert shape[:2] == (64, 64) and size == (64, 64)  # the model's size at the photo's scale
        assert record is None and reference is whole[2]  # crops attend to the whole view
    _, (holes,) = warp_reference(request)
    seam = near_holes(holes, SEAM_BAND_PIXELS)
    expected = WarpEngine().render(request).right
    assert np.array_equal(native[~seam], expected[~seam])
    assert np.abs(native[holes.numpy()] - model_fill[holes.numpy()]).mean() > 0.01



def test_native_crops_of_a_video_frame_also_read_the_shots_anchor(tiny_sd, monkeypatch):
    """A later frame of a shot: its whole view attends to the anchor's keys/values, and so do its
    native crops, beside the frame's own whole view (for holes painted alike from frame to frame)."""
    from sbsconvert.engines.diffusion.attention import JoinedKV, KVCache

    engine = make_engine(tiny_sd, steps=3, resolution=64, deblur=True, fill_resolution="native")
    anchor = KVCache()
    engine.render(scene(160, 240, near_shift=20.0), record=anchor)
    runs, lookups = [], []
    original, original_lookup = engine._stereo_latents, JoinedKV.lookup

    def spy(image, nearness, shifts, size, record, reference):
        runs.append((record, reference))
        return original(image, nearness, shifts, size, record, reference)

    def spy_lookup(self, step, layer, like):
        key, value = original_lookup(self, step, layer, like)
        lookups.append((key.shape[-2], [part.entries[(step, layer)][0].shape[-2] for part in self.parts]))
        return key, value

    monkeypatch.setattr(engine, "_stereo_latents", spy)
    monkeypatch.setattr(JoinedKV, "lookup", spy_lookup)
    engine.render(scene(160, 240, near_shift=20.0), reference=anchor)
    (whole_record, whole_reference), *crops = runs
    assert whole_reference is anchor and crops
    for record, reference in crops:
        assert record is None and reference.parts == (whole_record, anchor)
    assert lookups and all(tokens == sum(parts) and parts[1] > 0 for tokens, parts in lookups)


def test_depth_to_stereo_warps_the_generated_left(tiny_sd_depth):
    depth = np.zeros((64, 96), np.float32)
    depth[:, 48:] = 1
    engine = make_engine(tiny_sd_depth, steps=3, prompt="a room")
    pair = engine.generate(divergence=10, depth=Disparity(depth))
    request = StereoRequest(image=pair.left, nearness=depth, shift=pixel_shift(Disparity(depth), 96, 10, 0))
    expected, (holes,) = warp_reference(request)
    seam = near_holes(holes, SEAM_BAND_PIXELS)
    assert holes.any() and np.array_equal(pair.right[~seam], expected.right[~seam])
