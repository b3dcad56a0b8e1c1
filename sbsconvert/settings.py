"""Typed settings, one dataclass per stage, shared by the Python API and the command line.

The stages: where the disparity comes from (DisparitySettings), the stereo engine
(EngineSettings, with the diffusion engine's DiffusionSettings), the layout and photo output
(convert.ConvertSettings), the video encoder (video.encode.VideoSettings), how videos are cut
(video.segments.SegmentOptions) and the batch (BatchSettings). `build_settings` makes them all from
flat values named like the command-line options (`divergence=2.5`, `format="tb"`, `crf=20`) and
an optional preset; explicit values win over the preset's, as on the command line:

>>> settings = build_settings({"divergence": 2.0}, preset="quest3")
>>> settings.output.layout, settings.output.divergence, settings.output.max_eye_width
('sbs', 2.0, 2064)

Messages of errors name the values to change between backquotes (`divergence`); the command
line shows them as its options (--divergence).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from sbsconvert.choices import DEFAULT_DEPTH_MODEL, DEFAULT_SD_DEPTH_MODEL, DEPTH_SOURCES, MAX_DIVERGENCE
from sbsconvert.convert import ConvertSettings
from sbsconvert.engines import ENGINES
from sbsconvert.engines.diffusion.settings import DiffusionSettings
from sbsconvert.errors import SbsError
from sbsconvert.presets import apply_preset, load_preset
from sbsconvert.video import SPATIAL_CODECS
from sbsconvert.video.encode import VideoSettings
from sbsconvert.video.segments import SegmentOptions, parse_time
from sbsconvert.video.temporal import DEFAULT_CUT_THRESHOLD, DEFAULT_STRENGTH, DEFAULT_TEMPORAL

DEFAULT_PREVIEW_SECONDS = 10.0


@dataclass
class DisparitySettings:
    """Where each picture's disparity comes from.

    map_path:     a disparity map (PNG, TIFF, .npy, .npz, .pfm) used instead of a depth model, or a
                  folder of maps named like the photos; None: embedded depth or the model.
    kind:         what the map holds: relative (brighter = nearer), depth, or pixels.
    depth_source: auto (a portrait photo's embedded depth, else the model), embedded or model.
    model:        transformers depth-estimation model, hub id or local folder.
    resolution:   short side of the image the depth model sees; None: the model's own.
    batch_size:   video frames per depth-model pass; None: 8 on CUDA, else 1.
    temporal:     how a video's per-frame depth is steadied over time: flow, ema or none, with
                  `temporal_strength` (0-1) and `cut_threshold` (the grey change that is a scene cut).
    """

    map_path: Path | None = None
    kind: str = "relative"
    depth_source: str = "auto"
    model: str = DEFAULT_DEPTH_MODEL
    resolution: int | None = None
    batch_size: int | None = None
    temporal: str = DEFAULT_TEMPORAL
    temporal_strength: float = DEFAULT_STRENGTH
    cut_threshold: float = DEFAULT_CUT_THRESHOLD


@dataclass
class EngineSettings:
    """The stereo engine: `warp` (fill: its hole filling) or `diffusion` (its DiffusionSettings;
    precision: number format of its networks, None for the device's default; depth_image: with a
    prompt and no input, the depth map to generate from)."""

    name: str = "warp"
    fill: str = "background"
    diffusion: DiffusionSettings = field(default_factory=DiffusionSettings)
    precision: str | None = None
    depth_image: Path | None = None


@dataclass
class BatchSettings:
    """How the inputs become jobs and run (force and skip_existing are in ConvertSettings).

    recursive:  look in sub-folders of folder inputs.
    sequence:   each folder input is one video of numbered frames, at `fps` (e.g. "30000/1001").
    frames_out: write a video's stereo frames as numbered images in a folder.
    cluster:    run the jobs on Ray ("auto" or an address), with `workers` workers.
    verbosity:  0 errors only, 1 what was written and notes, 2 also sources and times per stage.
    """

    recursive: bool = False
    sequence: bool = False
    fps: str | None = None
    frames_out: bool = False
    cluster: str | None = None
    workers: int | None = None
    verbosity: int = 1


@dataclass
class Settings:
    """Every stage's settings, plus the device and the names of the values given explicitly
    (`given`: a value left at its default or taken from a preset is not refused where it would
    not apply)."""

    disparity: DisparitySettings = field(default_factory=DisparitySettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    output: ConvertSettings = field(default_factory=ConvertSettings)
    video: VideoSettings = field(default_factory=VideoSettings)
    segments: SegmentOptions = field(default_factory=SegmentOptions)
    batch: BatchSettings = field(default_factory=BatchSettings)
    device: str = "auto"
    given: frozenset[str] = frozenset()


# Flat value name -> (stage, field). The names are the command line's (Python spelling).
FIELDS: dict[str, tuple[str, str]] = {
    **{name: ("output", name) for name in ("divergence", "convergence", "eye", "max_eye_width", "image_type",
                                            "quality", "png_compression", "force", "skip_existing", "baseline_mm",
                                            "mvhevc_structure", "input_layout")},
    "format": ("output", "layout"),
    "hfov": ("output", "hfov_degrees"),
    "engine": ("engine", "name"),
    "fill": ("engine", "fill"),
    "precision": ("engine", "precision"),
    "depth_image": ("engine", "depth_image"),
    **{name: ("diffusion", name) for name in ("model", "steps", "guidance", "shift_step", "inversion", "attention",
                                               "spsmd", "spsmd_every", "deblur", "seed", "prompt", "negative_prompt",
                                               "resolution", "composite", "fill_resolution", "video_paint",
                                               "repaint_area")},
    "disparity": ("disparity", "map_path"),
    "disparity_kind": ("disparity", "kind"),
    "depth_source": ("disparity", "depth_source"),
    "depth_model": ("disparity", "model"),
    "depth_resolution": ("disparity", "resolution"),
    **{name: ("disparity", name) for name in ("batch_size", "temporal", "temporal_strength", "cut_threshold")},
    **{name: ("video", name) for name in ("codec", "crf", "bitrate", "bits_per_pixel", "pixel_format", "audio")},
    "segment_seconds": ("segments", "seconds"),
    **{name: ("segments", name) for name in ("start", "end", "preview", "max_fps", "resume")},
    **{name: ("batch", name) for name in ("recursive", "sequence", "fps", "frames_out", "cluster", "workers",
                                           "verbosity")},
    "device": ("settings", "device"),
}
# Values that only the diffusion engine (or generating from a prompt) uses.
DIFFUSION_ONLY = ("model", "steps", "guidance", "shift_step", "inversion", "attention", "seed", "prompt",
                  "negative_prompt", "resolution", "spsmd_every", "composite", "fill_resolution", "video_paint",
                  "repaint_area", "depth_image",
                  "spsmd", "deblur", "precision")
VIDEO_ONLY = ("codec", "crf", "bitrate", "pixel_format", "audio")
SEGMENT_ONLY = ("segment_seconds", "start", "end", "preview", "max_fps")
SPATIAL_ONLY = ("baseline_mm", "hfov", "mvhevc_structure")


def build_settings(values: Mapping[str, Any], preset: str | None = None) -> Settings:
    """Settings from flat values (FIELDS' names; those given are the explicit ones) over a preset
    (presets/NAME.toml or a .toml path) over the defaults."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise SbsError(f"unknown setting {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    given = {name: value for name, value in values.items() if value is not None}
    merged = apply_preset(load_preset(preset), given, preset) if preset else dict(given)
    if merged.get("engine", "warp") not in ENGINES:
        raise SbsError(f"unknown engine '{merged['engine']}' (choose from {', '.join(ENGINES)})")
    if merged.get("depth_source", "auto") not in DEPTH_SOURCES:
        raise SbsError(f"unknown depth source '{merged['depth_source']}' (choose from {', '.join(DEPTH_SOURCES)})")
    if merged.get("force") and merged.get("skip_existing"):
        raise SbsError("`force` and `skip_existing` contradict each other; give one")
    if merged.get("spsmd") is False and "spsmd_every" in given:
        raise SbsError("`spsmd_every` sets how often SPSMD runs; it contradicts `spsmd=False`")
    if "depth_image" in merged and "model" not in merged:
        merged["model"] = DEFAULT_SD_DEPTH_MODEL
    if merged.get("preview") is True:
        merged["preview"] = DEFAULT_PREVIEW_SECONDS
    elif merged.get("preview") is False:
        del merged["preview"]
    _parse_trim(merged)
    if merged.get("format") == "spatial" and given.get("codec", "hevc") in SPATIAL_CODECS:
        merged["codec"] = "hevc"  # whatever a preset's codec, spatial video is HEVC (another given one is refused)
    stages: dict[str, dict[str, Any]] = {}
    for name, value in merged.items():
        stage, key = FIELDS[name]
        stages.setdefault(stage, {})[key] = value
    settings = Settings(
        disparity=DisparitySettings(**_paths(stages.get("disparity", {}), "map_path")),
        engine=EngineSettings(**_paths(stages.get("engine", {}), "depth_image"),
                              diffusion=DiffusionSettings(**stages.get("diffusion", {}))),
        output=ConvertSettings(**stages.get("output", {})),
        video=VideoSettings(**stages.get("video", {})),
        segments=SegmentOptions(**stages.get("segments", {})),
        batch=BatchSettings(**stages.get("batch", {})),
        device=stages.get("settings", {}).get("device", "auto"),
        given=frozenset(given),
    )
    check_divergence(settings)
    return settings


def check_divergence(settings: Settings) -> None:
    """A preset's divergence is checked as an explicit one is (pixel maps ignore it)."""
    divergence = settings.output.divergence
    if not 0 < divergence <= MAX_DIVERGENCE and settings.disparity.kind != "pixels":
        raise SbsError(f"divergence must be between 0 and {MAX_DIVERGENCE:g} percent, got {divergence}")


def _paths(values: dict[str, Any], name: str) -> dict[str, Any]:
    if values.get(name) is not None:
        values = {**values, name: Path(values[name])}
    return values


def _parse_trim(merged: dict[str, Any]) -> None:
    """`start`/`end` as seconds (numbers, or text such as "1:30"), checked against each other."""
    texts = {name: merged.get(name) for name in ("start", "end")}
    for name, text in texts.items():
        if text is not None:
            merged[name] = parse_time(text, name)
    if merged.get("preview") is not None and (texts["start"] is not None or texts["end"] is not None):
        raise SbsError("`preview` picks its own 10 seconds; drop `start`/`end`")
    if texts["start"] is not None and texts["end"] is not None and merged["end"] <= merged["start"]:
        raise SbsError(f"`end` ({texts['end']}) must come after `start` ({texts['start']})")


def fingerprint(settings: Settings) -> dict[str, str]:
    """The settings that shape a video's output (all but where and how verbosely it is written, and
    the audio, muxed when the segments are joined): a resumed run must match them."""
    shaping = {
        "disparity": dataclasses.asdict(settings.disparity),
        "engine": dataclasses.asdict(settings.engine),
        "output": {name: value for name, value in dataclasses.asdict(settings.output).items()
                   if name not in ("force", "skip_existing")},
        "video": {name: value for name, value in dataclasses.asdict(settings.video).items()
                  if name not in ("audio", "encoder")},
        "segments": {name: getattr(settings.segments, name) for name in ("seconds", "start", "end", "preview",
                                                                         "max_fps")},
        "batch": {name: getattr(settings.batch, name) for name in ("sequence", "fps", "frames_out")},
    }
    return {f"{stage}.{name}": str(value) for stage, values in shaping.items() for name, value in sorted(values.items())}


def override(settings: Settings, values: Mapping[str, Any]) -> Settings:
    """`settings` with flat values (FIELDS' names) replaced; they count as given."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise SbsError(f"unknown setting {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    changed = dataclasses.replace(settings, given=settings.given | set(values))
    for name, value in values.items():
        stage, key = FIELDS[name]
        value = Path(value) if key in ("map_path", "depth_image") and value is not None else value
        if stage == "settings":
            changed = dataclasses.replace(changed, **{key: value})
        elif stage == "diffusion":
            engine = changed.engine
            changed.engine = dataclasses.replace(engine, diffusion=dataclasses.replace(engine.diffusion, **{key: value}))
        else:
            setattr(changed, stage, dataclasses.replace(getattr(changed, stage), **{key: value}))
    return changed
