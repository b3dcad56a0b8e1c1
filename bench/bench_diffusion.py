"""Speed of the diffusion engine's image->stereo at 512x512 on the exact SD 1.5 architecture.

    python bench/bench_diffusion.py [--device cpu|cuda] [--steps 50] [--full]

The weights are random (no hub here); the cost of a forward pass does not depend on them. The
model is saved to a temp folder and loaded back through the engine's from_pretrained path.

Two recipes are compared in the same run:
  default  DDIM inversion, the left view replays its inverted trajectory, no caption (so no
           classifier-free guidance: the joint denoising batch is L, R).
  paper    null-text inversion (10 optimiser steps per denoising step, guidance 7.5: the joint
           batch is uncond L, uncond R, cond L, cond R), as in the paper.

On a CPU a 50-step paper run takes hours, so by default the script
  1. counts, per stage, the model calls each recipe makes at the full step count (a run of the
     real engine code on a tiny random model, with every call logged), and
  2. times each kind of call once on the SD 1.5-sized model (UNet at batch 1/2/4, UNet forward +
     backward for null-text, VAE encode/decode, text encoder),
and reports calls x cost per stage. It checks that projection against a real 2-step run of the
default recipe on the SD 1.5-sized model. `--full` (meant for a GPU) runs both recipes for real.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_warp import best_time, cpu_name  # noqa: E402

from sbsconvert.convert import StageTimer  # noqa: E402
from sbsconvert.device import select_compute  # noqa: E402
from sbsconvert.engines.base import StereoRequest  # noqa: E402
from sbsconvert.engines.diffusion import DiffusionEngine, DiffusionSettings  # noqa: E402
from sbsconvert.engines.diffusion import engine as engine_module  # noqa: E402
from sbsconvert.engines.diffusion.random_model import SD15, TINY, save_random_pipeline  # noqa: E402
from sbsconvert.synthetic import render_scene  # noqa: E402

RECIPES = {
    "default": dict(inversion="ddim", prompt=""),
    "paper": dict(inversion="null-text", guidance=7.5, prompt="a photo", null_text_iterations=10),
}


class StageTracker(StageTimer):
    """A StageTimer that also remembers which stage is running, so model calls can be attributed."""

    current = ""

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        StageTracker.current = stage
        with super().__call__(stage):
            yield


def call_counts(engine: DiffusionEngine, request: StereoRequest) -> dict[str, Counter]:
    """Per stage, how many calls of each kind one render makes (see `unit_costs` for the kinds)."""
    counts: dict[str, Counter] = {}
    model = engine.model

    def counted(kind: Callable[..., str], function: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            counts.setdefault(StageTracker.current, Counter())[kind(*args)] += 1
            return function(*args, **kwargs)

        return wrapper

    originals = {name: getattr(model, name) for name in ("predict", "encode_image", "decode", "encode_text")}
    model.predict = counted(
        lambda latents, *_: f"unet b{latents.shape[0]}" + (" + backward" if torch.is_grad_enabled() else ""),
        originals["predict"],
    )
    model.encode_image = counted(lambda *_: "vae encode", originals["encode_image"])
    model.decode = counted(lambda latents: f"vae decode b{latents.shape[0]}", originals["decode"])
    model.encode_text = counted(lambda *_: "text encoder", originals["encode_text"])
    try:
        engine.render(request)
    finally:
        for name, function in originals.items():
            setattr(model, name, function)
    return counts


def timed(action: Callable[[], object], device: torch.device) -> float:
    action()  # warm-up (allocations, kernel selection)
    return best_time(action, 1, device)


def unit_costs(engine: DiffusionEngine, size: int, kinds: set[str]) -> dict[str, float]:
    """Seconds per call of each kind on the engine's model."""
    model, device = engine.model, engine.compute.device
    latent_side = size // model.vae_scale
    text = model.encode_text("a photo")
    timestep = torch.tensor(500, device=device)
    costs = {}
    for kind in sorted(kinds):
        if kind.startswith("unet"):
            batch = int(kind.split()[1][1:])
            latents = torch.randn(batch, model.latent_channels, latent_side, latent_side, device=device)
            # a stereo batch (2 views per guidance group) goes through the cross-view attention
            engine.attention.views = 2 if batch > 1 else 1
            if "backward" in kind:
                costs[kind] = timed(lambda: _forward_backward(model, latents, timestep, text), device)
            else:
                with torch.no_grad():
                    costs[kind] = timed(lambda: model.predict(latents, timestep, text.expand(batch, -1, -1)), device)
            engine.attention.views = 1
        elif kind == "vae encode":
            costs[kind] = timed(lambda: model.encode_image(torch.rand(1, 3, size, size, device=device)), device)
        elif kind.startswith("vae decode"):
            batch = int(kind.split()[2][1:])
            latents = torch.randn(batch, model.latent_channels, latent_side, latent_side, device=device)
            costs[kind] = timed(lambda: model.decode(latents), device)
        elif kind == "text encoder":
            costs[kind] = timed(lambda: model.encode_text("a photo of a street"), device)
    return costs


def _forward_backward(model, latents, timestep, text) -> None:
    """One null-text optimiser step's model work: forward with the embedding as a leaf, backward."""
    with torch.enable_grad():
        embedding = text.detach().clone().requires_grad_(True)
        model.predict(latents, timestep, embedding).square().mean().backward()


def projected(counts: dict[str, Counter], costs: dict[str, float]) -> dict[str, float]:
    return {stage: sum(n * costs[kind] for kind, n in kinds.items()) for stage, kinds in counts.items()}


def make_request(size: int) -> StereoRequest:
    scene = render_scene(size, size)
    return StereoRequest(image=scene.left, nearness=scene.disparity, shift=scene.disparity)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--full", action="store_true", help="run both recipes for real at --steps (GPU)")
    args = parser.parse_args()
    engine_module.StageTimer = StageTracker  # attribute model calls to stages
    compute = select_compute(args.device)
    device = compute.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(f"device: {name}, {compute.dtype}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    request = make_request(args.size)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        sd15 = save_random_pipeline(Path(folder) / "sd15", SD15)
        tiny = save_random_pipeline(Path(folder) / "tiny", TINY)
        big = DiffusionEngine(DiffusionSettings(model=str(sd15), steps=args.steps, progress=False), compute)
        print(f"random SD 1.5 architecture saved and loaded in {time.perf_counter() - started:.0f} s")
        if args.full:
            report_full(big, request, args.steps)
        else:
            report_projection(big, tiny, request, args.size, args.steps, compute)


def report_projection(big, tiny_folder, request, size, steps, compute) -> None:
    tiny_request = make_request(64)
    counts = {}
    for recipe, options in RECIPES.items():
        tiny = DiffusionEngine(DiffusionSettings(model=str(tiny_folder), steps=steps, progress=False, **options), compute)
        counts[recipe] = call_counts(tiny, tiny_request)
    kinds = {kind for recipe in counts.values() for stage in recipe.values() for kind in stage}
    costs = unit_costs(big, size, kinds)
    print(f"\nseconds per call at {size}x{size}:")
    for kind, seconds in sorted(costs.items()):
        print(f"  {kind}: {seconds:.3f}")
    totals = {}
    for recipe, stage_counts in counts.items():
        stages = projected(stage_counts, costs)
        totals[recipe] = sum(stages.values())
        print(f"\n{recipe} ({steps} steps), projected:")
        for stage, seconds in stages.items():
            calls = ", ".join(f"{n} x {kind}" for kind, n in sorted(stage_counts[stage].items()))
            print(f"  {stage}: {seconds:.1f} s  ({calls})")
        print(f"  total: {totals[recipe]:.1f} s")
    print(f"\npaper / default: {totals['paper'] / totals['default']:.1f}x")
    # Check the projection against a real run of the default recipe at 2 steps.
    big.settings.steps = 2
    check_counts = call_counts(big, request)
    measured = sum(big.timings.seconds.values())
    print(
        f"\ncheck, default recipe at 2 steps on the SD 1.5-sized model: measured {measured:.1f} s "
        f"({big.timings}), projected {sum(projected(check_counts, costs).values()):.1f} s"
    )


def report_full(big, request, steps) -> None:
    totals = {}
    for recipe, options in RECIPES.items():
        for key, value in options.items():
            setattr(big.settings, key, value)
        big.render(request)
        totals[recipe] = sum(big.timings.seconds.values())
        print(f"{recipe} ({steps} steps): {big.timings}; total {totals[recipe]:.1f} s")
    print(f"paper / default: {totals['paper'] / totals['default']:.1f}x")


if __name__ == "__main__":
    main()
