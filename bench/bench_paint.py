"""UNet evaluations per frame of `--engine diffusion` on videos with the default settings (50 steps,
shift step 0.2, `--video-paint keyframes`), and where the hole pixels came from.

    python bench/bench_paint.py [--frames 48] [--clip VIDEO MAPS ...] [--real DIR]

Which frames are keyframes depends only on the holes (the warp, the plate and the paint layer are
geometry), and a keyframe's calls only on the steps; neither depends on the weights. So the real
conversion runs here with a tiny random Stable Diffusion saved to a temp folder and loaded
through from_pretrained, and its counts are those a real SD 1.5 makes on the same frames and maps.

Flicker of the filled holes where the scene stands still (the measure of bench_plate.py) on the
synthetic walking box, whose true right views are known, for `--video-paint keyframes` and
`every-frame`: random weights paint noise-like holes, so this shows how much the paint itself
changes from frame to frame (re-imagined on every frame, or carried), not how good it looks.

Scenes: synthetic videos with exact disparity (sbsconvert.synthetic.render_video) at 640x360:
a box walking over a still scene, the camera travelling, both. `--clip VIDEO MAPS` adds a video
with a folder of per-frame maps (as `--disparity` takes them); `--real DIR` the real clips of
bench/real_clips.py found in DIR, with their proxy depth maps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from bench_plate import exact, still_hole_flicker, truth_still  # noqa: E402
from real_clips import CLIPS, prepare  # noqa: E402
from sbsconvert.core import StageTimer  # noqa: E402
from sbsconvert.device import Compute  # noqa: E402
from sbsconvert.engines.diffusion import DiffusionEngine, DiffusionSettings  # noqa: E402
from sbsconvert.engines.diffusion.random_model import TINY, save_random_pipeline  # noqa: E402
from sbsconvert.synthetic import render_video  # noqa: E402
from sbsconvert.video.pipeline import ShotRenderer, keyframe_renderer  # noqa: E402
from test_segments import encode_frames  # noqa: E402

SCENES = {"box walks, still camera": {"walk": 1.0}, "camera travels": {"pan": 1.5},
          "box walks, camera travels": {"walk": 1.0, "pan": 1.5}}


def synthetic_clip(folder: Path, name: str, motion: dict[str, float], frames: int) -> tuple[Path, Path]:
    scenes = render_video(640, 360, frames, **motion)
    clip = encode_frames(folder / f"{name}.mp4", [scene.left for scene in scenes], rate=30, gop=30, crf=12)
    maps = folder / name
    maps.mkdir()
    top = max(float(scene.disparity.max()) for scene in scenes)
    for number, scene in enumerate(scenes, start=1):
        Image.fromarray(np.round(scene.disparity / top * 65535).astype(np.uint16)).save(maps / f"{number:04d}.png")
    return clip, maps


def count(clip: Path, maps: Path, model: Path, out: Path, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "sbsconvert", str(clip), "-o", str(out), "--engine", "diffusion",
               "--model", str(model), "--disparity", str(maps), "--json", "-q", "--force", *extra]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode:
        raise SystemExit(done.stdout + done.stderr)
    return json.loads(done.stdout)["converted"][0]


def hole_flicker(model: Path, frames: int) -> None:
    """Still-hole flicker of each --video-paint on the walking box (320x240), with the tiny model."""
    import torch

    scenes = render_video(320, 240, frames, walk=1.0)
    requests, truths = exact(scenes), [scene.right for scene in scenes]
    engine = DiffusionEngine(DiffusionSettings(model=str(model), progress=False), Compute(torch.device("cpu"), torch.float32))
    plate, _, _ = keyframe_renderer(engine, StageTimer())
    keyframes = [pair.right for _, pair in plate.stream((n, r, 0, True) for n, r in enumerate(requests))]
    every = ShotRenderer(engine)
    every_frame = [every(request, shot=0).right for request in requests]
    print("| --video-paint | still-hole flicker |")
    print("|---|---|")
    still = truth_still(truths)
    for name, views in (("keyframes", keyframes), ("every-frame", every_frame)):
        print(f"| {name} | {still_hole_flicker(requests, still, views)[0]:.4f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--clip", nargs=2, action="append", default=[], metavar=("VIDEO", "MAPS"))
    parser.add_argument("--options", nargs="*", default=[], help="more CLI options for every run")
    parser.add_argument("--real", type=Path, help="folder holding the real clips of bench/real_clips.py")
    parser.add_argument("--clips", nargs="+", help="with --real: only these (file names without .mp4)")
    parser.add_argument("--no-synthetic", action="store_true", help="leave out the synthetic scenes")
    parser.add_argument("--flicker-frames", type=int, default=24, help="frames of the flicker measure (0: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        model = save_random_pipeline(folder / "sd", TINY)
        clips = [] if args.no_synthetic else [
            (name, *synthetic_clip(folder, name.replace(" ", "_").replace(",", ""), motion, args.frames))
            for name, motion in SCENES.items()]
        clips += [(Path(video).name, Path(video), Path(maps)) for video, maps in args.clip]
        if args.real:
            clips += [(clip.file, *prepare(clip, args.real, folder))
                      for clip in CLIPS if clip.available(args.real)
                      and not (args.clips and Path(clip.file).stem not in args.clips)]
        print("| clip | frames | UNet evaluations | per frame | plate | carried paint | slivers continued | new paint "
              "| background fill |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, clip, maps in clips:
            entry = count(clip, maps, model, folder / "out.mp4", args.options)
            calls, fill = entry["unet_calls"], entry["hole_fill"]
            frames = round(calls["total"] / calls["per_frame"]) if calls["per_frame"] else 0
            share = lambda source: f"{100 * fill.get(source + '_share', 0):.1f} %"
            print(f"| {name} | {frames} | {calls['total']} | {calls['per_frame']:.1f} | {share('plate')} | "
                  f"{share('carried')} | {share('extended')} | {share('painted')} | {share('fallback')} |", flush=True)
        if args.flicker_frames:
            hole_flicker(model, args.flicker_frames)


if __name__ == "__main__":
    main()
