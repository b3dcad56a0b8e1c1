"""Flicker of per-frame depth on a video, measured so anyone can rerun it (`sbsconvert eval VIDEO
--maps CLEAN`).

Given a video and clean per-frame maps, the maps are spoiled as per-frame depth models spoil them
(seeded): each frame's map is rescaled and shifted by its own random amount, a smooth error that
drifts slowly over the frame is added, and pixel noise. Each temporal method then converts the
video from the spoiled maps (the warp engine, no encoding, so codec noise does not blur the
comparison), and its right eye is compared with the right eye made from the clean maps with no
filtering:

- PSNR (dB) of the right eye against the clean run's, mean over frames;
- still flicker: the mean absolute frame-to-frame change of the right eye where the left eye does
  not change (the still parts of the scene, where any change is flicker), also as a ratio to the
  clean run's own.

A method that normalises each shot's range (ema and flow stretch the shot's 1st-99th percentile
range to 0-1, where none keeps each map's min-max) is compared with the clean maps normalised the
same way, steadily: each shot's range averaged over the shot. Against the min-max clean run, that
deliberate stretch alone (a constant per shot, no flicker) would cost it several dB on maps with a
continuous spread of values, as a depth model's are, and hide what the filtering does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

from sbsconvert.convert import ConvertSettings, stereo_request
from sbsconvert.disparity import Disparity, disparity_from_array, load_disparity_file, resize_disparity
from sbsconvert.engines.base import StereoEngine
from sbsconvert.evaluate.metrics import psnr
from sbsconvert.video.decode import open_frames
from sbsconvert.video.temporal import make_smoother, robust_range, shot_starts

SCALE_JITTER = 0.15  # each frame's map is scaled by 1 +- this (uniform)
OFFSET_JITTER = 0.1  # and shifted by +- this
DRIFT = 0.1  # amplitude of the slowly drifting low-frequency error
DRIFT_STEP = 0.15  # how far the drift moves per frame, as a share of its amplitude
NOISE = 0.02  # pixel noise (standard deviation)
STILL = 2 / 255  # a left-eye pixel that changes less than this between frames is still


@dataclass
class FlickerScore:
    method: str
    psnr: float  # right eye against the clean run's, dB (mean over frames)
    still_flicker: float  # mean |change| of the right eye where the left eye is still
    ratio: float  # still_flicker / the clean run's


def spoil(maps: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """The maps as a per-frame model gives them: per-frame scale and offset, a slowly drifting
    low-frequency error, pixel noise."""
    rng = np.random.default_rng(seed)
    drift = rng.uniform(-1, 1, (3, 4))
    spoiled = []
    for values in maps:
        drift = np.clip(drift + rng.normal(0, DRIFT_STEP, drift.shape), -1, 1)
        height, width = values.shape
        smooth = cv2.resize(drift.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC) * DRIFT
        scale, offset = 1 + rng.uniform(-SCALE_JITTER, SCALE_JITTER), rng.uniform(-OFFSET_JITTER, OFFSET_JITTER)
        noise = rng.normal(0, NOISE, values.shape).astype(np.float32)
        spoiled.append((scale * (values + smooth) + offset + noise).astype(np.float32))
    return spoiled


def load_clean_maps(maps: Path, video: Path) -> list[np.ndarray]:
    """The clean map of every frame: per-frame maps (a folder or a depth video), or one map file
    for all frames."""
    from sbsconvert.media import is_video_path
    from sbsconvert.video.framemaps import FrameMaps
    from sbsconvert.video.segments import read_index

    stamps = read_index(video).pts
    if maps.is_dir() or is_video_path(maps):
        frame_maps = FrameMaps(maps, video, "relative")
        try:
            return [frame_maps(pts).values for pts in stamps]
        finally:
            frame_maps.close()
    one = load_disparity_file(maps).values
    return [one] * len(stamps)


def shot_normalised(frames: list[np.ndarray], maps: list[np.ndarray]) -> list[np.ndarray]:
    """The maps with each shot's robust range (averaged over its frames) stretched to 0-1."""
    starts = set(shot_starts(enumerate(frames)))
    shots: list[list[np.ndarray]] = []
    for number, values in enumerate(maps):
        if number in starts or not shots:
            shots.append([])
        shots[-1].append(values)
    normalised = []
    for shot in shots:
        low, high = np.mean([robust_range(values) for values in shot], axis=0)
        normalised += [np.clip((values - low) / max(float(high - low), 1e-6), 0, 1).astype(np.float32)
                       for values in shot]
    return normalised


def right_eyes(frames: list[np.ndarray], maps: Iterable[Disparity], engine: StereoEngine,
               settings: ConvertSettings) -> list[np.ndarray]:
    height, width = frames[0].shape[:2]
    return [engine.render(stereo_request(pixels, resize_disparity(disparity, width, height), settings)).right
            for pixels, disparity in zip(frames, maps)]


def still_flicker(lefts: list[np.ndarray], rights: list[np.ndarray]) -> float:
    """Mean absolute frame-to-frame change of the right eye over the pixels whose left eye is still."""
    total, count = 0.0, 0
    for before, after, right_before, right_after in zip(lefts, lefts[1:], rights, rights[1:]):
        still = np.abs(after - before).max(axis=2) < STILL
        total += float(np.abs(right_after - right_before).mean(axis=2)[still].sum())
        count += int(still.sum())
    return total / count if count else float("nan")


def evaluate_flicker(video: Path, maps: Path, methods: list[str], engine: StereoEngine, *, strength: float,
                     divergence: float = 3.0, seed: int = 0,
                     progress: Callable[[str], None] = lambda message: None) -> tuple[list[FlickerScore], int]:
    """Score each temporal method on `video` with spoiled copies of its clean `maps`; returns the
    scores (the clean run first, as "clean") and the number of frames."""
    with open_frames(video) as reader:
        frames = [frame.pixels for frame in reader.frames()]
    clean = load_clean_maps(maps, video)
    settings = ConvertSettings(divergence=divergence)
    references = {}  # by whether the method normalises each shot's range: the clean run's right eyes, flicker
    for normalises, maps_used in ((False, clean), (True, shot_normalised(frames, clean))):
        reference = right_eyes(frames, (Disparity(values) for values in maps_used), engine, settings)
        references[normalises] = reference, still_flicker(frames, reference)
    scores = [FlickerScore("clean", float("inf"), references[False][1], 1.0),
              FlickerScore("clean, shot range", float("inf"), references[True][1], 1.0)]
    spoiled = [disparity_from_array(values, "relative", f"{maps}, frame {number}")
               for number, values in enumerate(spoil(clean, seed), start=1)]
    for method in methods:
        progress(f"{video.name}: {method}")
        smoother = make_smoother(method, strength, normalize_range=True)  # as the CLI treats per-frame maps
        reference, reference_flicker = references[smoother.normalize_range]
        steadied = (disparity for _, disparity, _ in smoother.smooth((n, pixels, d) for n, (pixels, d)
                                                                       in enumerate(zip(frames, spoiled))))
        rights = right_eyes(frames, steadied, engine, settings)
        flicker = still_flicker(frames, rights)
        scores.append(FlickerScore(method, float(np.mean([min(psnr(r, c), 99.0) for r, c in zip(rights, reference)])),
                                   flicker, flicker / reference_flicker if reference_flicker > 0 else float("inf")))
    return scores, len(frames)


def flicker_table(video: Path, scores: list[FlickerScore], frames: int) -> str:
    lines = [f"{video.name} ({frames} frames)", "",
             "| method | right eye PSNR vs clean run (dB) | still flicker | x clean run's |", "|---|---|---|---|"]
    for score in scores:
        shown = "-" if score.method.startswith("clean") else f"{score.psnr:.2f}"
        lines.append(f"| {score.method} | {shown} | {score.still_flicker:.5f} | {score.ratio:.2f} |")
    return "\n".join(lines) + "\n"
