"""sbsconvert: turn 2D photos and videos into stereo pairs for XR headsets.

    from sbsconvert import StereoConverter
    conv = StereoConverter(engine="warp", device="auto")
    pair = conv(image)            # pair.left, pair.right, pair.disparity; pair.compose("sbs")
    conv.convert("clip.mp4", "clip_LR.mp4", format="sbs")

See docs/python-api.md. The API is imported on first use, so `import sbsconvert` stays light (no torch).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["StereoConverter", "StereoImage", "Settings", "build_settings", "SbsError", "__version__"]

# Public name -> module that defines it, imported when the name is first used (PEP 562).
_LAZY = {
    "StereoConverter": "sbsconvert.converter",
    "StereoImage": "sbsconvert.converter",
    "Settings": "sbsconvert.settings",
    "build_settings": "sbsconvert.settings",
    "SbsError": "sbsconvert.errors",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'sbsconvert' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
