"""Presets: plain TOML files in presets/ naming a layout, size, divergence and codec, and optionally
the stereo engine with its settings (a [diffusion] table, e.g. presets/paper.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from sbsconvert.errors import SbsError

# Installed wheels carry the folder inside the package; a source checkout has it at the top.
_PRESET_FOLDERS = (Path(__file__).parent / "presets", Path(__file__).parent.parent / "presets")

# Each known key and the type its value must have.
PRESET_KEYS: dict[str, type | tuple[type, ...]] = {
    "description": str,
    "format": str,
    "divergence": (int, float),
    "convergence": (int, float),
    "max_eye_width": int,
    "image_type": str,
    "jpeg_quality": int,
    "fill": str,
    "engine": str,
    "video": dict,
    "diffusion": dict,
}
VIDEO_KEYS: dict[str, type | tuple[type, ...]] = {
    "codec": str,
    "pixel_format": str,
    "bitrate": str,
    "crf": int,
    "bits_per_pixel": (int, float),  # a bitrate that follows the output's width x height x frames/s
    "audio": str,  # auto, copy, aac or none (--audio)
}
# The diffusion engine's settings, named like their command-line options (--shift-step: shift_step).
DIFFUSION_KEYS: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "steps": int,
    "guidance": (int, float),
    "shift_step": (int, float),
    "inversion": str,
    "attention": str,
    "spsmd_every": int,
    "composite": str,
    "fill_resolution": str,
    "video_paint": str,
    "repaint_area": (int, float),
    "precision": str,
    "resolution": int,
    "seed": int,
    "prompt": str,
    "negative_prompt": str,
}


def preset_folder() -> Path:
    for folder in _PRESET_FOLDERS:
        if folder.is_dir():
            return folder
    raise SbsError("the presets folder is missing from this installation")


def preset_names() -> list[str]:
    try:
        return sorted(path.stem for path in preset_folder().glob("*.toml"))
    except SbsError:
        return []


def load_preset(name: str) -> dict[str, Any]:
    """Load and check `presets/NAME.toml` (or a path to a .toml file)."""
    path = Path(name) if name.endswith(".toml") else preset_folder() / f"{name}.toml"
    if not path.is_file():
        raise SbsError(f"unknown preset '{name}' (available: {', '.join(preset_names()) or 'none'})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SbsError(f"preset {path}: not valid TOML ({error})") from None
    _check_keys(data, PRESET_KEYS, f"preset {path.name}")
    _check_keys(data.get("video", {}), VIDEO_KEYS, f"preset {path.name} [video]")
    _check_keys(data.get("diffusion", {}), DIFFUSION_KEYS, f"preset {path.name} [diffusion]")
    if "diffusion" in data and data.get("engine") != "diffusion":
        raise SbsError(f"preset {path.name}: a [diffusion] table needs engine = \"diffusion\"")
    return data


def _check_keys(data: dict[str, Any], known: dict[str, Any], where: str) -> None:
    for key, value in data.items():
        if key not in known:
            raise SbsError(f"{where}: unknown setting '{key}' (known: {', '.join(known)})")
        if not isinstance(value, known[key]) or isinstance(value, bool):
            raise SbsError(f"{where}: '{key}' has the wrong type ({type(value).__name__})")


# Top-level preset keys and the setting each gives (the rest are tables or descriptions).
PRESET_SETTINGS = {"format": "format", "divergence": "divergence", "convergence": "convergence",
                   "max_eye_width": "max_eye_width", "image_type": "image_type", "jpeg_quality": "quality",
                   "fill": "fill"}


def apply_preset(preset: dict[str, Any], given: dict[str, Any], name: str) -> dict[str, Any]:
    """The explicitly `given` settings (sbsconvert.settings' flat names) with the preset's filled in
    where none is given; explicit values always win.

    A preset's image type is for plain images (not .mpo/.heic files); its engine applies unless one
    is given, and a given other engine refuses its [diffusion] table; an explicit video rate (crf
    or bitrate) replaces the preset's rate, whichever kind it is.

    >>> apply_preset(load_preset("quest3"), {"divergence": 2.0}, "quest3")["divergence"]
    2.0
    """
    from sbsconvert.jobs import photo_container

    merged = {setting: preset[key] for key, setting in PRESET_SETTINGS.items() if key in preset}
    merged.update(given)
    if "image_type" not in given and photo_container(merged.get("format", "sbs")):
        merged.pop("image_type", None)
    if "engine" in preset:
        if "engine" not in given:
            merged["engine"] = preset["engine"]
        elif given["engine"] != preset["engine"] and "diffusion" in preset:
            raise SbsError(f"preset {name} sets diffusion engine settings; it does not apply to `engine` "
                           f"{given['engine']}")
        for key, value in preset.get("diffusion", {}).items():
            if key not in given and not (key == "spsmd_every" and given.get("spsmd") is False):  # an explicit spsmd=False wins
                merged[key] = value
    video = dict(preset.get("video", {}))
    if "crf" in given or "bitrate" in given:
        for rate in ("crf", "bitrate", "bits_per_pixel"):
            video.pop(rate, None)
    for key, value in video.items():
        merged.setdefault(key, value)
    return merged
