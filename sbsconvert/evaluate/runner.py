"""Run stereo engines over a dataset and score each generated right view against the real one."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from sbsconvert.device import Compute
from sbsconvert.engines import ENGINES, create_engine
from sbsconvert.engines.base import StereoEngine, StereoRequest
from sbsconvert.engines.diffusion.settings import COMPOSITES
from sbsconvert.engines.warp import FILL_METHODS
from sbsconvert.errors import SbsError
from sbsconvert.evaluate.datasets import PairSource
from sbsconvert.evaluate.metrics import Lpips, RightViewMasks, masked_mean, psnr, right_view_masks, ssim_map
from sbsconvert.evaluate.protocol import EvalPair, prepare
from sbsconvert.progress import progress as progress_counter

DISPARITY_SOURCES = ("gt", "model")
REGIONS = ("all", "nonocc", "disocc")  # scored pixels, non-occluded, disoccluded (metrics.RightViewMasks)
METRICS = ("psnr", "ssim", "lpips")
PAPER_BASELINES = {"stretch": "paper baseline", "blank": "paper baseline"}


@dataclass
class Run:
    """One engine configuration to evaluate."""

    name: str
    engine: StereoEngine
    note: str = ""


@dataclass
class Score:
    pair: str
    run: str
    seconds: float
    values: dict[str, float]  # "psnr_all", "ssim_disocc", ...


@dataclass
class Evaluation:
    scores: list[Score] = field(default_factory=list)
    # (run, pair) -> the contact sheet row: left, real right, generated right, error map (uint8 tiles)
    thumbnails: dict[tuple[str, str], list[np.ndarray]] = field(default_factory=dict)


def expand(chosen: Sequence[str], everything: Sequence[str]) -> list[str]:
    """Names in `everything`'s order; "all" selects every one."""
    return list(everything) if "all" in chosen else [name for name in everything if name in chosen]


def build_runs(
    engines: Sequence[str],
    fills: Sequence[str],
    compute: Compute,
    warn: Callable[[str], None],
    diffusion_options: dict[str, Any] | None = None,
    composites: Sequence[str] = (),
) -> tuple[list[Run], list[str]]:
    """Create the engines to evaluate (warp: one run per fill; diffusion: one run per composite,
    sharing one loaded model, with its defaults updated by `diffusion_options`, DiffusionSettings
    fields). An engine that cannot be created (the diffusion engine without its weights) is an
    error when it is the only one asked for; in a set it is skipped and returned among the failures."""
    names = expand(engines, ENGINES)
    if fills and "warp" not in names:
        raise SbsError("`fill` chooses the warp engine's hole filling; add `engine` warp")
    given = [f"`{key}`" for key in (diffusion_options or {})] + (["`composite`"] if composites else [])
    if given and "diffusion" not in names:
        raise SbsError(f"{', '.join(given)} only apply to `engine` diffusion")
    runs, failures = [], []
    for name in names:
        if name == "warp":
            for fill in expand(fills or ("all",), FILL_METHODS):
                runs.append(Run(f"warp/{fill}", create_engine("warp", compute, fill=fill), PAPER_BASELINES.get(fill, "")))
            continue
        try:
            engine = create_engine(name, compute, **{"progress": False, **(diffusion_options or {})})
            for composite in expand(composites or ("hybrid",), COMPOSITES):
                runs.append(Run(f"{name}/{composite}", engine.with_settings(composite=composite)))  # type: ignore[attr-defined]
        except SbsError as error:
            if len(names) == 1:
                raise
            failures.append(f"{name} engine skipped: {error}")
            warn(f"error: {failures[-1]}")
    return runs, failures


def score_view(
    generated: np.ndarray, truth: np.ndarray, masks: RightViewMasks, lpips: Lpips, ssim_channels: str
) -> dict[str, float]:
    regions = dict(zip(REGIONS, (masks.scored, masks.non_occluded, masks.disoccluded)))
    similarity = ssim_map(generated, truth, ssim_channels)
    distance = lpips.distance_map(generated, truth)
    values = {}
    for region, mask in regions.items():
        values[f"psnr_{region}"] = psnr(generated, truth, mask)
        values[f"ssim_{region}"] = masked_mean(similarity, mask)
        values[f"lpips_{region}"] = Lpips.score(distance, mask)
    return values


def evaluate(
    sources: Sequence[PairSource],
    layout: str,
    runs: Sequence[Run],
    *,
    protocol: str,
    lpips: Lpips,
    ssim_channels: str = "luma",
    estimate: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: bool = True,
    thumbnail_width: int = 192,
) -> Evaluation:
    """Score every run on every pair. `estimate` (left view -> relative disparity in [0, 1]) replaces
    the ground truth as the engines' disparity; its shift is then the paper's s times it."""
    result = Evaluation()
    with progress_counter(len(sources) * len(runs), desc="eval", unit="view", enabled=progress) as bar:
        for source in sources:
            pair = prepare(source.load(), layout, protocol)
            masks = right_view_masks(pair.disparity, pair.known)
            request = _request(pair, estimate)
            for run in runs:
                started = time.perf_counter()
                generated = np.clip(run.engine.render(request).right[..., :3], 0, 1)
                seconds = time.perf_counter() - started
                values = score_view(generated, pair.right, masks, lpips, ssim_channels)
                result.scores.append(Score(pair.name, run.name, seconds, values))
                result.thumbnails[(run.name, pair.name)] = contact_row(pair, generated, masks, thumbnail_width)
                bar.update()
    return result


def _request(pair: EvalPair, estimate: Callable[[np.ndarray], np.ndarray] | None) -> StereoRequest:
    if estimate is None:
        return StereoRequest(image=pair.left, nearness=pair.engine_disparity, shift=pair.engine_disparity)
    relative = estimate(pair.left)
    return StereoRequest(image=pair.left, nearness=relative, shift=(pair.scale * relative).astype(np.float32))


ERROR_GAIN = 4.0  # error maps show |generated - real| (mean over RGB) times this


def contact_row(pair: EvalPair, generated: np.ndarray, masks: RightViewMasks, width: int) -> list[np.ndarray]:
    """Thumbnails (uint8 RGB) of left, real right, generated right and the error map; in the error
    map, pixels left out of the scores are grey and disocclusions are outlined in white."""
    error = np.clip(np.abs(generated - pair.right).mean(axis=2) * ERROR_GAIN, 0, 1)
    heat = cv2.applyColorMap(np.round(error * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[:, :, ::-1] / 255.0
    heat[~masks.scored] = 0.5
    edge = masks.disoccluded & ~cv2.erode(masks.disoccluded.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    heat[edge] = 1.0
    height = max(1, round(pair.left.shape[0] * width / pair.left.shape[1]))
    tile = lambda image: np.round(np.clip(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), 0, 1) * 255)
    return [tile(image).astype(np.uint8) for image in (pair.left, pair.right, generated, heat.astype(np.float32))]
