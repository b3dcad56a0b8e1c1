"""Video: stream frames through the still-image stages (decode -> disparity -> engine -> layout ->
encode) with temporally smoothed disparity, copying audio. Importing this package is cheap (no PyAV);
the stages live in decode.py, temporal.py, encode.py and pipeline.py. What counts as a video, and
the container its output gets, is sbsconvert.media's (planning asks it without this package)."""

from __future__ import annotations

# The --codec choices that give libx265, whose two streams the MV-HEVC assembly merges.
SPATIAL_CODECS = ("hevc", "libx265", "auto")
