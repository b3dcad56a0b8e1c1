"""The diffusion engine's stages, checked numerically on the tiny random pipeline of conftest.py:
latent pixel shift and mask, SPSMD, cross-view self-attention, DDIM / null-text inversion,
and whole runs (image, text and depth -> stereo; determinism; alpha; --eye both)."""

import numpy as np
import pytest
import torch

from conftest import make_engine
from sbsconvert.disparity import Disparity
from sbsconvert.engines.base import StereoRequest
from sbsconvert.engines.diffusion import attention as attention_module
from sbsconvert.engines.diffusion import engine as engine_module
from sbsconvert.engines.diffusion.attention import KVCache
from sbsconvert.engines.diffusion.inversion import ddim_inversion, null_text_inversion
from sbsconvert.engines.diffusion.sampler import Denoiser, Guidance, StereoPlan, denoise_stereo, sample
from sbsconvert.engines.diffusion.shift import LatentShift, plan_latent_shift


def random_latent(seed, size=8):
    return torch.randn((1, 4, size, size), generator=torch.Generator().manual_seed(seed))


# --- Stereo Pixel Shift of the latent -------------------------------------------------------


def test_latent_shift_moves_each_pixel_by_its_rounded_shift():
    shift = torch.tensor([[0.0, 1.0, 2.0, 1.4, 0.0, 0.0]])
    plan = LatentShift.plan(shift, nearness=shift.clone())
    latent = torch.arange(6, dtype=torch.float32).view(1, 1, 1, 6) + 10
    moved = plan.apply(latent)[0, 0, 0].tolist()
    # Columns 0, 1 and 2 all land on 0: column 2 is nearest and wins; 3 lands on round(1.6) = 2;
    # nothing lands on 1 and 3.
    assert moved == [12.0, 0.0, 13.0, 0.0, 14.0, 15.0]
    assert plan.mask[0].tolist() == [False, True, False, True, False, False]


def test_latent_shift_ties_go_to_the_nearest_pixel():
    # Columns 2 and 3 both land on column 1; whichever is nearer wins, in either order.
    shift = torch.tensor([[0.0, 0.0, 1.0, 2.0]])
    for nearness, winner in ((torch.tensor([[0.0, 0.0, 0.9, 0.1]]), 2), (torch.tensor([[0.0, 0.0, 0.1, 0.9]]), 3)):
        plan = LatentShift.plan(shift, nearness)
        assert plan.source[0, 1].item() == winner
        assert not plan.mask[0, 1]


def test_mask_is_exactly_where_nothing_landed():
    generator = torch.Generator().manual_seed(3)
    shift = torch.rand((12, 16), generator=generator) * 5
    nearness = shift / 5  # nearer moves more, like real disparity
    plan = LatentShift.plan(shift, nearness)
    landed = torch.zeros((12, 16), dtype=torch.bool)
    targets = torch.floor(torch.arange(16) - shift + 0.5).long()
    for y in range(12):
        for x in range(16):
            if 0 <= targets[y, x] < 16:
                landed[y, targets[y, x]] = True
    assert torch.equal(plan.mask, ~landed)
    # and every unmasked position holds a pixel that really lands there, the nearest of them
    for y in range(12):
        for x in range(16):
            if not plan.mask[y, x]:
                source = plan.source[y, x]
                assert targets[y, source] == x
                candidates = nearness[y][targets[y] == x]
                assert nearness[y, source] == candidates.max()


def test_plan_from_image_maps_scales_shift_to_latent_pixels():
    # 8 image pixels per latent pixel: an image shift of 16 px is 2 latent pixels.
    shift = np.full((64, 64), 16.0, np.float32)
    plan = plan_latent_shift(shift, np.ones((64, 64), np.float32), (8, 8), torch.device("cpu"))
    assert plan.mask[:, 6:].all() and not plan.mask[:, :6].any()
    assert plan.source[0, :6].tolist() == [2, 3, 4, 5, 6, 7]


# --- denoising with SPSMD --------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tiny_sd):
    return make_engine(tiny_sd, steps=10)


def left_trajectory(engine, seed=0):
    denoiser = Denoiser(engine.model, engine.attention, engine.settings.steps, progress=False)
    guidance = Guidance(engine.model.encode_text("a photo"))
    return denoiser, guidance, sample(denoiser, random_latent(seed), guidance)


def band_shift():
    shift = torch.zeros((8, 8))
    shift[2:6, 3:7] = 2.0  # a near block moving left by two latent pixels
    return LatentShift.plan(shift, shift.clone())


@pytest.mark.parametrize("spsmd", [True, False])
def test_spsmd_keeps_right_equal_to_shifted_left_outside_the_mask(engine, spsmd):
    denoiser, guidance, trajectory = left_trajectory(engine)
    plan = band_shift()
    assert plan.mask.any()
    source, targets = denoise_stereo(denoiser, StereoPlan(trajectory, [plan], 2, True, spsmd), guidance)
    assert torch.equal(source, trajectory[-1])  # replayed: the left follows its own trajectory
    outside = ~plan.mask
    difference = (targets[0] - plan.apply(source)[0])[:, outside]
    if spsmd:
        assert torch.equal(difference, torch.zeros_like(difference))
    else:
        assert difference.abs().max() > 1e-3  # without it, the right view drifts from the shifted left


def test_deblur_starts_the_mask_from_noise(engine):
    denoiser, guidance, trajectory = left_trajectory(engine)
    plan = band_shift()
    fill = torch.randn(trajectory[2].shape, generator=torch.Generator().manual_seed(9))
    zero_fill = denoise_stereo(denoiser, StereoPlan(trajectory, [plan], 2, True, True), guidance)[1]
    noise_fill = denoise_stereo(denoiser, StereoPlan(trajectory, [plan], 2, True, True, [fill]), guidance)[1]
    assert not torch.allclose(zero_fill[0][:, plan.mask], noise_fill[0][:, plan.mask])
    assert torch.equal(zero_fill[0][:, ~plan.mask], noise_fill[0][:, ~plan.mask])


# --- cross-view self-attention ---------------------------------------------------------------


def unet_outputs(engine, mode, latents, reference=None, record=None):
    state = engine.attention
    state.mode, state.views, state.step, state.reference, state.record = mode, latents.shape[0], 3, reference, record
    try:
        text = engine.model.encode_text("a photo").expand(latents.shape[0], -1, -1)
        return engine.model.predict(latents, torch.tensor(500), text)
    finally:
        state.mode, state.views, state.reference, state.record = engine.settings.attention, 1, None, None


def test_unidirectional_attention_leaves_the_left_view_bit_identical(engine):
    left, right = random_latent(1), random_latent(2)
    joint = unet_outputs(engine, "uni", torch.cat([left, right]))
    # bit-identical to the same batch without any sharing...
    assert torch.equal(joint[:1], unet_outputs(engine, "off", torch.cat([left, right]))[:1])
    # ...and to the left alone up to batch-size rounding of the convolutions
    alone = unet_outputs(engine, "uni", left)
    assert torch.allclose(joint[:1], alone, atol=1e-5)
    # the right view's result is not what it would be on its own: it read the left view
    assert not torch.allclose(joint[1:], unet_outputs(engine, "uni", right), atol=1e-4)


def test_bidirectional_attention_changes_the_left_view(engine):
    left, right = random_latent(1), random_latent(2)
    alone = unet_outputs(engine, "uni", left)
    joint = unet_outputs(engine, "bi", torch.cat([left, right]))
    assert not torch.allclose(joint[:1], alone, atol=1e-4)


def test_off_mode_is_two_independent_views(engine):
    left, right = random_latent(1), random_latent(2)
    joint = unet_outputs(engine, "off", torch.cat([left, right]))
    assert torch.allclose(joint[1:], unet_outputs(engine, "off", right), atol=1e-5)


@pytest.fixture
def attention_calls(monkeypatch):
    """Record every scaled_dot_product_attention call the stereo (attn1) processors make."""
    calls = []

    class RecordingFunctional:
        def __getattr__(self, name):
            return getattr(torch.nn.functional, name)

        def scaled_dot_product_attention(self, query, key, value, *args, **kwargs):
            calls.append((query, key, value))
            return torch.nn.functional.scaled_dot_product_attention(query, key, value, *args, **kwargs)

    monkeypatch.setattr(attention_module, "F", RecordingFunctional())
    return calls


def projected_keys(engine, latents):
    """The keys each attn1 layer computes from its input (forward hooks on to_k), per layer."""
    keys, hooks = [], []
    for name, module in engine.model.unet.named_modules():
        if name.endswith("attn1"):
            hooks.append(module.to_k.register_forward_hook(lambda mod, args, out, m=module: keys.append((m, out))))
    try:
        unet_outputs(engine, "uni", latents)
    finally:
        for hook in hooks:
            hook.remove()
    return keys


def test_right_view_reads_the_left_views_keys_and_values(engine, attention_calls):
    left, right = random_latent(1), random_latent(2)
    keys = projected_keys(engine, torch.cat([left, right]))
    # per layer: one call for the source (left) queries, one for the target (right) queries
    assert len(attention_calls) == 2 * len(keys) == 8
    for layer, (attn, projected) in enumerate(keys):
        tokens = projected.shape[1]
        per_head = projected.view(2, tokens, attn.heads, -1).transpose(1, 2)
        left_keys, right_keys = per_head[0], per_head[1]
        _, source_key, _ = attention_calls[2 * layer]
        _, target_key, _ = attention_calls[2 * layer + 1]
        assert torch.equal(source_key[0], left_keys)
        assert torch.equal(target_key[0], left_keys)  # the right queries attend to the LEFT keys
        assert not torch.allclose(target_key[0], right_keys)


def test_reference_keys_are_appended_for_the_right_view_only(engine, attention_calls):
    anchor = KVCache()
    unet_outputs(engine, "uni", torch.cat([random_latent(5), random_latent(6)]), record=anchor)
    assert len(anchor) == 4 and anchor.nbytes > 0
    attention_calls.clear()
    left, right = random_latent(1), random_latent(2)
    with_reference = unet_outputs(engine, "uni", torch.cat([left, right]), reference=anchor)
    without = unet_outputs(engine, "uni", torch.cat([left, right]))
    assert torch.equal(with_reference[:1], without[:1])  # the left never reads the reference
    assert not torch.allclose(with_reference[1:], without[1:], atol=1e-5)
    first_source, first_target = attention_calls[0][1], attention_calls[1][1]
    assert first_target.shape[-2] == 2 * first_source.shape[-2]  # own left tokens + anchor tokens


# --- inversion ---------------------------------------------------------------------------------


def round_trip_error(engine, steps):
    """Mean |DDIM sample(DDIM invert(latent)) - latent| relative to the latent's spread, no guidance."""
    denoiser = Denoiser(engine.model, engine.attention, steps, progress=False)
    latent = random_latent(7)
    guidance = Guidance(engine.model.encode_text(""))
    trajectory = ddim_inversion(denoiser, latent, guidance.cond)
    assert torch.equal(trajectory[-1], latent) and len(trajectory) == steps + 1
    reconstructed = sample(denoiser, trajectory[0], guidance)[-1]
    return ((reconstructed - latent).abs().mean() / latent.std()).item()


def test_ddim_round_trip_is_exact_when_the_model_output_does_not_depend_on_the_latent(tiny_sd):
    # With a constant noise prediction the inversion's approximation (model evaluated at the next
    # timestep) is exact, so any error would come from misaligned timesteps or alphas.
    engine = make_engine(tiny_sd)
    torch.nn.init.zeros_(engine.model.unet.conv_out.weight)
    torch.nn.init.normal_(engine.model.unet.conv_out.bias, std=0.5)
    assert round_trip_error(engine, 20) < 1e-5


def test_ddim_round_trip_error_shrinks_with_more_steps(tiny_sd):
    # A random network is far less smooth in its input than a trained one, so the first-order
    # error of DDIM inversion (the model is evaluated at the next timestep) is large here:
    # measured 0.78 of the latent's spread at 10 steps, 0.64 at 50, 0.24 at 200.
    engine = make_engine(tiny_sd)
    coarse, fine = round_trip_error(engine, 10), round_trip_error(engine, 40)
    assert fine < 0.72 and fine < 0.95 * coarse


def test_null_text_inversion_follows_the_trajectory_under_guidance(tiny_sd):
    engine = make_engine(tiny_sd, steps=6)
    denoiser = Denoiser(engine.model, engine.attention, 6, progress=False)
    latent = random_latent(7)
    cond, uncond = engine.model.encode_text("a cat"), engine.model.encode_text("")
    trajectory = ddim_inversion(denoiser, latent, cond)
    plain = sample(denoiser, trajectory[0], Guidance(cond, uncond, 7.5))[-1]
    embeddings, followed = null_text_inversion(denoiser, trajectory, cond, uncond, 7.5, iterations=8)
    assert len(embeddings) == 6 and len(followed) == 7
    replayed = sample(denoiser, trajectory[0], Guidance(cond, embeddings, 7.5))[-1]
    # the embeddings reproduce the followed path (up to batched vs separate UNet calls)
    assert torch.allclose(replayed, followed[-1], atol=1e-3)
    # plain guided sampling drifts away from the photo's latent; the optimised embeddings pull it back
    assert (followed[-1] - latent).abs().mean() < 0.8 * (plain - latent).abs().mean()


def render_counting_unet_calls(engine, request):
    """The pair one render makes, and how many UNet forward passes it took."""
    calls = []
    hook = engine.model.unet.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        return engine.render(request), len(calls)
    finally:
        hook.remove()


@pytest.mark.parametrize("options", [{}, {"attention": "bi", "deblur": True, "composite": "latent"}])
def test_inversion_stops_at_the_shift_step_with_the_same_result(tiny_sd, monkeypatch, options):
    # Default schedule (50 steps, shift at 10): the joint denoising reads the source trajectory
    # from step 10 on, so the 10 inversion steps beyond it were calls whose results went unused.
    engine = make_engine(tiny_sd, steps=50, **options)
    assert engine.settings.shift_index == 10
    request = photo_request()
    pair, calls = render_counting_unet_calls(engine, request)
    assert calls == 40 + 40  # inversion + joint denoising
    monkeypatch.setattr(engine_module, "ddim_inversion", lambda *args, first: ddim_inversion(*args))  # all of it
    full_pair, full_calls = render_counting_unet_calls(engine, request)
    assert full_calls == 50 + 40
    assert np.array_equal(pair.right, full_pair.right) and np.array_equal(pair.left, full_pair.left)


# --- whole runs --------------------------------------------------------------------------------


def photo_request(size=(48, 80), eye="right", alpha=False):
    height, width = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin(x / 5)], axis=2)
    if alpha:
        image = np.concatenate([image, (x > 40).astype(np.float32)[:, :, None]], axis=2)
    nearness = ((x > width / 3) & (x < 2 * width / 3)).astype(np.float32)
    return StereoRequest(image=image.astype(np.float32), nearness=nearness, shift=nearness * 6, eye=eye)


def test_image_to_stereo_keeps_the_photo_as_left_and_is_deterministic(tiny_sd):
    request = photo_request()
    engine = make_engine(tiny_sd, steps=5, seed=3, deblur=True)
    first, again = engine.render(request), engine.render(request)
    engine.settings.seed = 4
    other_seed = engine.render(request)
    assert first.left is request.image or np.array_equal(first.left, request.image)
    assert first.right.shape == request.image.shape and first.right.dtype == np.float32
    assert 0 <= first.right.min() and first.right.max() <= 1
    assert np.array_equal(first.right, again.right)
    assert not np.array_equal(first.right, other_seed.right)


def test_stage_timings_are_reported(tiny_sd):
    engine = make_engine(tiny_sd, steps=3, inversion="null-text", null_text_iterations=2)
    engine.render(photo_request())
    assert set(engine.timings.seconds) == {"encode", "inversion", "null-text", "denoise", "decode", "composite"}


def test_bidirectional_run_returns_a_changed_left(tiny_sd):
    request = photo_request()
    pair = make_engine(tiny_sd, steps=4, attention="bi", composite="latent").render(request)
    assert pair.left.shape == request.image.shape and not np.array_equal(pair.left, request.image)
    # the hybrid builds the right view from the photo, so the photo stays the left view
    assert make_engine(tiny_sd, steps=4, attention="bi").render(request).left is request.image


def test_both_eyes_and_alpha(tiny_sd):
    request = photo_request(eye="both", alpha=True)
    pair = make_engine(tiny_sd, steps=4).render(request)
    assert pair.left.shape == pair.right.shape == request.image.shape
    # the alpha channel moved with each eye: opposite directions around the centre
    assert not np.array_equal(pair.left[:, :, 3], pair.right[:, :, 3])


def step_map(height, width):
    """Far left half, near right half."""
    values = np.zeros((height, width), np.float32)
    values[:, width // 2 :] = 1
    return values


def test_text_to_stereo(tiny_sd):
    seen = []

    def disparity_for(left):
        seen.append(left.shape)
        return Disparity(step_map(*left.shape[:2]))

    engine = make_engine(tiny_sd, steps=5, prompt="a red fox", guidance=5.0)
    # 10% of 64 px is 6.4 px, one latent pixel: the near half moves, a hole opens
    pair = engine.generate(divergence=10, disparity_for=disparity_for)
    assert seen == [(64, 64, 3)] and pair.left.shape == pair.right.shape == (64, 64, 3)
    assert not np.array_equal(pair.left, pair.right)
    assert "generate left" in engine.timings.seconds and "depth" in engine.timings.seconds


def test_depth_to_stereo(tiny_sd_depth):
    engine = make_engine(tiny_sd_depth, steps=5, prompt="a room")
    pair = engine.generate(divergence=10, depth=Disparity(step_map(64, 96)))
    assert pair.left.shape == pair.right.shape == (64, 96, 3)
    assert not np.array_equal(pair.left, pair.right)
