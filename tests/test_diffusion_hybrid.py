"""SPSMD schedule (--spsmd-every) and the full-resolution hybrid composite (--composite hybrid),
on the tiny random pipeline of conftest.py."""

import pytest
import torch

from conftest import make_engine
from sbsconvert.engines.diffusion.sampler import Denoiser, Guidance, StereoPlan, denoise_stereo, sample
from sbsconvert.engines.diffusion.shift import LatentShift


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
