"""Speed of the diffusion engine's image->stereo at 512x512 on the exact SD 1.5 architecture.

    python bench/bench_diffusion.py [--device cpu|cuda] [--steps 50] [--full]
    python bench/bench_diffusion.py --composites [--steps 50]
    python bench/bench_diffusion.py --h100 [--steps 50]

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

`--composites` compares, the same way, the right-view composites per photo at 512x512 and at
12 MP (4000x3000): latent (the paper's), hybrid with --fill-resolution model, and hybrid with
native (crops at the photo's scale, whose target views also attend to the whole view's keys).
Call counts come from the real engine on the tiny model working at 512 (so the crops are planned
as for SD 1.5) at COUNT_STEPS steps, scaled to --steps; the full-resolution work (warp, hole
mask, colour match, upscale) is timed for real in those runs, and the peak memory of a 12 MP
render is measured in a fresh process.

`--h100` projects one 1080p video frame (default recipe, hybrid composite, the frame's right view
also attending to its shot's anchor) on one H100 without one: the calls the real engine makes on
the tiny model, times public per-call figures (H100_SECONDS, with their sources).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_warp import best_time, cpu_name  # noqa: E402

from sbsconvert.core import StageTimer  # noqa: E402
from sbsconvert.device import select_compute  # noqa: E402
from sbsconvert.engines.base import StereoRequest  # noqa: E402
from sbsconvert.engines.diffusion import DiffusionEngine, DiffusionSettings, KVCache  # noqa: E402
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


def call_counts(engine: DiffusionEngine, request: StereoRequest, **render_options: object) -> dict[str, Counter]:
    """Per stage, how many calls of each kind one render makes (see `unit_costs` for the kinds)."""
    counts: dict[str, Counter] = {}
    model = engine.model

    def counted(kind: Callable[..., str], function: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            counts.setdefault(StageTracker.current, Counter())[kind(*args)] += 1
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                call_counts.model_seconds += time.perf_counter() - started

        return wrapper

    originals = {name: getattr(model, name) for name in ("predict", "encode_image", "decode", "encode_text")}
    model.predict = counted(
        lambda latents, *_: f"unet b{latents.shape[0]}" + (" + backward" if torch.is_grad_enabled() else "")
        + (" + reference" if engine.attention.reference is not None else ""),
        originals["predict"],
    )
    model.encode_image = counted(lambda *_: "vae encode", originals["encode_image"])
    model.decode = counted(lambda latents: f"vae decode b{latents.shape[0]}", originals["decode"])
    model.encode_text = counted(lambda *_: "text encoder", originals["encode_text"])
    call_counts.model_seconds = 0.0
    try:
        engine.render(request, **render_options)  # type: ignore[arg-type]
    finally:
        for name, function in originals.items():
            setattr(model, name, function)
    return counts


call_counts.model_seconds = 0.0  # type: ignore[attr-defined]  # time inside the model calls of the last count


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
            if "reference" in kind:  # the target views also read a whole view's recorded keys/values
                engine.attention.record = KVCache()
                with torch.no_grad():
                    model.predict(latents, timestep, text.expand(batch, -1, -1))
                engine.attention.record, engine.attention.reference = None, engine.attention.record
                with torch.no_grad():
                    costs[kind] = timed(lambda: model.predict(latents, timestep, text.expand(batch, -1, -1)), device)
                engine.attention.reference = None
            elif "backward" in kind:
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
    parser.add_argument("--composites", action="store_true", help="latent vs hybrid, model vs native fill")
    parser.add_argument("--h100", action="store_true", help="project a 1080p video frame on one H100 (public figures)")
    parser.add_argument("--memory", metavar="FOLDER", help=argparse.SUPPRESS)  # child process of --composites
    args = parser.parse_args()
    if args.memory:
        return render_memory(Path(args.memory), args.steps)
    engine_module.StageTimer = StageTracker  # attribute model calls to stages
    compute = select_compute(args.device)
    device = compute.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(f"device: {name}, {compute.dtype}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    request = make_request(args.size)
    with tempfile.TemporaryDirectory() as folder:
        if args.h100:
            return report_h100(save_random_pipeline(Path(folder) / "tiny", TINY), args.steps, compute)
        started = time.perf_counter()
        sd15 = save_random_pipeline(Path(folder) / "sd15", SD15)
        tiny = save_random_pipeline(Path(folder) / "tiny", TINY)
        big = DiffusionEngine(DiffusionSettings(model=str(sd15), steps=args.steps, progress=False), compute)
        print(f"random SD 1.5 architecture saved and loaded in {time.perf_counter() - started:.0f} s")
        if args.composites:
            report_composites(big, tiny, args.steps, compute, Path(folder))
        elif args.full:
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


COMPOSITES = {
    "latent": dict(composite="latent"),
    "hybrid, model": dict(composite="hybrid", fill_resolution="model"),
    "hybrid, native": dict(composite="hybrid", fill_resolution="native"),
}
PHOTO_SIZES = {"512x512": (512, 512), "12 MP": (4000, 3000)}


COUNT_STEPS = 5  # the tiny model at 512 is slow on a CPU: count at 5 steps, scale to --steps


def report_composites(big, tiny_folder, steps, compute, folder: Path) -> None:
    """Per photo size and composite: UNet calls, projected model time, measured time outside the model."""
    counts, overhead = {}, {}
    for size_name, (width, height) in PHOTO_SIZES.items():
        scene = render_scene(width, height)
        request = StereoRequest(image=scene.left, nearness=scene.disparity, shift=scene.disparity)
        if size_name == "12 MP":
            np.save(folder / "image.npy", scene.left)
            np.save(folder / "disparity.npy", scene.disparity)
        print(f"{size_name}: shift up to {scene.disparity.max():.0f} px", flush=True)
        for name, options in COMPOSITES.items():
            # The tiny model at 512 makes the same calls (and plans the same crops) as SD 1.5.
            tiny = DiffusionEngine(
                DiffusionSettings(model=str(tiny_folder), steps=COUNT_STEPS, resolution=512, progress=False, **options),
                compute,
            )
            counted = call_counts(tiny, request)
            # Full-resolution work (resizing, warp, hole mask, colour match, crops): measured.
            overhead[size_name, name] = sum(tiny.timings.seconds.values()) - call_counts.model_seconds
            counts[size_name, name] = scale_counts(counted, tiny.settings, steps)
            print(f"  {name}: {dict(counted)}; outside the model {overhead[size_name, name]:.1f} s", flush=True)
        del scene, request
    kinds = {kind for stages in counts.values() for stage in stages.values() for kind in stage}
    costs = unit_costs(big, 512, kinds)
    print("\nseconds per call at 512x512:")
    for kind, seconds in sorted(costs.items()):
        print(f"  {kind}: {seconds:.3f}")
    print(f"\n| photo | composite | UNet calls ({steps} steps) | model (projected) | outside the model (measured) | total |")
    print("|---|---|---|---|---|---|")
    for (size_name, name), stages in counts.items():
        unet = Counter()
        for stage in stages.values():
            unet.update({kind: n for kind, n in stage.items() if kind.startswith("unet")})
        model_seconds = sum(projected(stages, costs).values())
        rest = overhead[size_name, name]
        calls = " + ".join(f"{n} {kind}" for kind, n in sorted(unet.items()))
        print(f"| {size_name} | {name} | {sum(unet.values())} ({calls}) | {model_seconds:.0f} s | {rest:.1f} s "
              f"| {model_seconds + rest:.0f} s |", flush=True)
    # Check the projection against a real 2-step hybrid run on the SD 1.5-sized model at 12 MP.
    big.settings.steps = 2
    image, disparity = np.load(folder / "image.npy"), np.load(folder / "disparity.npy")
    check_counts = call_counts(big, StereoRequest(image=image, nearness=disparity, shift=disparity))
    measured = sum(big.timings.seconds.values())
    check = sum(projected(check_counts, costs).values()) + overhead["12 MP", "hybrid, model"]
    print(f"\ncheck, hybrid/model at 2 steps, 12 MP, SD 1.5-sized model: measured {measured:.1f} s ({big.timings}), "
          f"projected {check:.1f} s", flush=True)
    import subprocess

    for name in ("hybrid, model", "latent"):
        result = subprocess.run(
            [sys.executable, __file__, "--memory", str(folder), "--steps", "2", "--device", str(compute.device)],
            capture_output=True, text=True, check=True, env={**__import__("os").environ, "COMPOSITE": name},
        )
        print(result.stdout.strip(), flush=True)


def scale_counts(counts: dict[str, Counter], settings: DiffusionSettings, steps: int) -> dict[str, Counter]:
    """Counts of a run at settings.steps scaled to `steps`: denoising calls grow with the steps after
    the shift step, and so do DDIM inversion's (it stops at the shift step; null-text inversion
    needs all the steps); the rest is per run."""
    shift = lambda n: min(round(settings.shift_step * n), n - 1)
    inverted = lambda n: n if settings.inversion == "null-text" else n - shift(n)
    factor = {"inversion": inverted(steps) / inverted(settings.steps),
              "denoise": (steps - shift(steps)) / (settings.steps - shift(settings.steps))}
    return {stage: Counter({kind: round(n * factor.get(stage, 1)) for kind, n in kinds.items()}) for stage, kinds in counts.items()}


def render_memory(folder: Path, steps: int) -> None:
    """Child process: peak resident memory added by one 12 MP render on the tiny model at 512 (the
    pipeline's own full-resolution buffers; a real model adds its weights and 512x512 activations,
    which do not grow with the photo)."""
    import os

    name = os.environ["COMPOSITE"]
    with tempfile.TemporaryDirectory() as models:
        tiny = save_random_pipeline(Path(models) / "tiny", TINY)
        engine = DiffusionEngine(
            DiffusionSettings(model=str(tiny), steps=steps, resolution=512, progress=False, **COMPOSITES[name]),
            select_compute("cpu"),
        )
        image, disparity = np.load(folder / "image.npy"), np.load(folder / "disparity.npy")
        request = StereoRequest(image=image, nearness=disparity, shift=disparity)
        before = _resident_gb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from here
        engine.render(request)
        peak = _resident_gb("VmHWM")
    print(f"memory, 12 MP render ({name}): peak resident {peak:.2f} GB, {peak - before:.2f} GB above the "
          f"{before:.2f} GB held before the render (photo, maps, tiny model, libraries)")


def _resident_gb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


# Public per-call figures for SD 1.5 at 512x512 in fp16 (no GPU was lent to measure them here).
STABLE_FAST = "https://github.com/chengzeyi/stable-fast#h100"
DIFFUSERS_VAE = "https://huggingface.co/docs/diffusers/hybrid_inference/vae_decode"
H100_UNET = 1 / 54.5  # H100, diffusers on PyTorch 2.1, 54.5 it/s, each step one UNet call on 2 rows (guidance)
H100_SECONDS = {
    "unet b2": H100_UNET,
    "unet b1": H100_UNET,  # no batch-1 figure is published: the batch-2 one, an upper bound
    # The right view also reads the anchor's keys/values: the 1.25x measured on the CPU (RESULTS.md).
    "unet b2 + reference": 1.25 * H100_UNET,
    "vae encode": 0.015,  # RTX 4090 figures (none published for an H100, which is faster): upper bounds
    "vae decode b1": 0.031,
    "text encoder": H100_UNET * 0.26 / 9.36,  # no figure: the UNet's, scaled by the CPU-measured ratio
}


def report_h100(tiny_folder, steps, compute) -> None:
    """Model time of one 1080p video frame on one H100: counted calls x public per-call figures,
    scaled to SD 1.5's working size for a 16:9 frame."""
    engine = DiffusionEngine(DiffusionSettings(model=str(tiny_folder), steps=steps, progress=False), compute)
    request = make_request(64)
    anchor = KVCache()
    engine.render(request, record=anchor)  # the shot's first frame
    counts = call_counts(engine, request, reference=anchor)
    width, height = _sd15_working_size(1920, 1080)
    scale = width * height / 512**2  # per-call cost taken as proportional to the pixels
    print(f"1080p frame: SD 1.5 works at {width}x{height} ({scale:.2f}x the pixels of 512x512)")
    print(f"per-call figures: UNet {STABLE_FAST}, VAE {DIFFUSERS_VAE} (and vae_encode)")
    stages = projected(counts, {kind: seconds * scale for kind, seconds in H100_SECONDS.items()})
    for stage, seconds in stages.items():
        calls = ", ".join(f"{n} x {kind}" for kind, n in sorted(counts[stage].items()))
        print(f"  {stage}: {seconds:.2f} s  ({calls})")
    total = sum(stages.values())
    print(f"  total model time per frame: {total:.2f} s ({1 / total:.2f} frames/s)")


def _sd15_working_size(width: int, height: int) -> tuple[int, int]:
    """The engine's working size for SD 1.5 (native 512, sides multiples of 64), without loading it."""
    sd15 = SimpleNamespace(settings=DiffusionSettings(), model=SimpleNamespace(native_size=512, size_multiple=64))
    return DiffusionEngine._processing_size(sd15, width, height)  # type: ignore[arg-type]


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
