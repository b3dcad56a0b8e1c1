"""The flicker measure of `sbsconvert eval VIDEO --maps CLEAN` (sbsconvert/evaluate/flicker.py)."""

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from sbsconvert.device import select_compute
from sbsconvert.engines import create_engine
from sbsconvert.evaluate.flicker import evaluate_flicker
from test_segments import encode_frames

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def test_range_normalising_methods_are_not_scored_down_for_their_steady_stretch(tmp_path):
    """ema and flow stretch each shot's 1st-99th percentile range to 0-1 where none keeps each map's
    min-max. On a still shot whose maps spread continuously (as a depth model's do, unlike a few
    flat layers) their averaging removes per-frame errors none keeps, so they must score above
    none (here by about 1 dB); measured against the min-max clean run, their constant stretch alone
    put flow below none here, and 4.6 dB below the clean run on Big Buck Bunny (bench/RESULTS.md)."""
    photo = cv2.resize(np.asarray(Image.open(SAMPLES / "chelsea.jpg").convert("RGB")), (96, 64),
                       interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    video = encode_frames(tmp_path / "still.mp4", [photo] * 24, rate=12, gop=12, crf=12)
    grey = cv2.GaussianBlur(photo.mean(axis=2), (0, 0), 3)
    nearness = 0.6 * np.linspace(0, 1, 64, dtype=np.float32)[:, None] + 0.4 * (1 - grey)
    maps = tmp_path / "maps"
    maps.mkdir()
    for number in range(1, 25):
        Image.fromarray(np.round(nearness / nearness.max() * 65535).astype(np.uint16)).save(maps / f"{number:02d}.png")
    engine = create_engine("warp", select_compute("cpu"), fill="background")
    scores, frames = evaluate_flicker(video, maps, ["none", "ema", "flow"], engine, strength=0.5)
    psnr = {score.method: score.psnr for score in scores}
    assert frames == 24
    assert psnr["ema"] > psnr["none"] and psnr["flow"] > psnr["none"], psnr
