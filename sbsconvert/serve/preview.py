"""Quick previews with the current settings before a long job, made in this process by the
library's convert: a photo downscaled first (the engine works at the preview's size), or a few
seconds of a video (`preview` seconds, a small `max_eye_width`)."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from sbsconvert.errors import SbsError
from sbsconvert.layout import PACKED_LAYOUTS
from sbsconvert.media import VIDEO_EXTENSIONS

PREVIEW_WIDTH = 960  # pixels across the photo (one eye) before conversion
PREVIEW_VIDEO_SECONDS = 3.0
PREVIEW_VIDEO_EYE_WIDTH = 480
ONE_FRAME_LAYOUTS = (*PACKED_LAYOUTS, "anaglyph")
KEPT_CONVERTERS = 4  # each may hold a depth model


class Previewer:
    def __init__(self, folder: Path, base_values: dict[str, Any]):
        self.folder = folder
        self.base_values = base_values
        self._converters: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()  # one preview at a time: they share the converters' models

    def make(self, source: Path, options: dict[str, Any]) -> tuple[Path, str]:
        """The preview file of `source` with `options`, and the layout it is in."""
        layout = options.get("format") or "sbs"
        shown = layout if layout in ONE_FRAME_LAYOUTS else "sbs"  # two-image formats are previewed side by side
        with self._lock:
            if source.suffix.lower() in VIDEO_EXTENSIONS:
                return self._video(source, {**options, "format": shown}), shown
            return self._photo(source, options, shown), shown

    def _photo(self, source: Path, options: dict[str, Any], layout: str) -> Path:
        import sbsconvert.decode  # noqa: F401  (registers the HEIC reader)

        with Image.open(source) as opened:
            opened.draft("RGB", (PREVIEW_WIDTH, PREVIEW_WIDTH))  # a JPEG decodes straight at a fraction
            image = ImageOps.exif_transpose(opened).convert("RGB")
        image.thumbnail((PREVIEW_WIDTH, PREVIEW_WIDTH), Image.Resampling.BILINEAR)
        # The small copy keeps the photo's name: a map folder gives it the photo's own map.
        small = self.folder / ".small" / f"{source.stem}.png"
        small.parent.mkdir(exist_ok=True)
        image.save(small, compress_level=1)
        target = self.folder / f"{source.stem}-{secrets.token_hex(4)}.jpg"
        self._convert(small, target, {**options, "format": layout})
        return target

    def _video(self, source: Path, options: dict[str, Any]) -> Path:
        target = self.folder / f"{source.stem}-{secrets.token_hex(4)}.mp4"
        self._convert(source, target, options, preview=PREVIEW_VIDEO_SECONDS, max_eye_width=PREVIEW_VIDEO_EYE_WIDTH)
        return target

    def _convert(self, source: Path, target: Path, options: dict[str, Any], **extra: Any) -> None:
        summary = self._converter({**self.base_values, **options}).convert(source, target, force=True, **extra)
        failed = summary.with_status("failed")
        if failed:
            raise SbsError(f"{source.name}: {failed[0].message}")

    def _converter(self, values: dict[str, Any]) -> Any:
        from sbsconvert import StereoConverter

        preset = values.pop("preset", None)
        key = repr((preset, sorted(values.items())))
        if key not in self._converters:
            self._converters[key] = StereoConverter(preset=preset, **values, verbosity=0)
            while len(self._converters) > KEPT_CONVERTERS:
                self._converters.popitem(last=False)
        self._converters.move_to_end(key)
        return self._converters[key]
