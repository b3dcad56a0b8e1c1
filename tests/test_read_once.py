"""A photo is read from disk once per conversion: decoding, stereo detection, a spatial photo's camera
and the embedded depth map all work from the one copy of its bytes (sbsconvert.formats.source), and a
HEIF meta box is parsed once."""

import os
import sys

import pytest

from conftest import run
from sbsconvert.formats.heif import items
from sbsconvert.spatial_photo import StereoCameras, write_spatial_heic
from test_embedded_depth import encode_range, gdepth_jpeg, scene_depth
from test_stereo_sources import NO_MODEL, photo_eyes

_watched: list[tuple[str, list[str]]] = []  # (a path, the opens of it seen)


def _count_opens(event: str, args: tuple) -> None:
    # Audit hooks cannot be removed: this one only counts while a test watches a path.
    if event == "open" and _watched and isinstance(args[0], (str, bytes, os.PathLike)):
        path, seen = _watched[-1]
        if os.fsdecode(args[0]) == path:
            seen.append(path)


sys.addaudithook(_count_opens)


@pytest.fixture
def opens():
    """Count every open of a path (Python's, Pillow's, pillow-heif's, ...) while the test runs."""
    seen: list[str] = []

    def watch(path):
        _watched.append((str(path), seen))
        return seen

    yield watch
    _watched.clear()


@pytest.fixture
def meta_parses(monkeypatch):
    """Count the HEIF meta boxes read from a file or from its bytes."""
    parsed = []
    real = items.top_level_headers

    def counting(handle):
        parsed.append(handle)
        return real(handle)

    monkeypatch.setattr(items, "top_level_headers", counting)
    return parsed


def test_a_spatial_photo_is_read_and_its_meta_box_parsed_once(tmp_path, opens, meta_parses):
    source = tmp_path / "IMG_0001.heic"
    write_spatial_heic(list(photo_eyes()), source, force=False, cameras=StereoCameras(19.24, 63.4))
    seen = opens(source)
    code, output = run(source, "-f", "spatial", "-o", tmp_path / "again.heic", *NO_MODEL)
    assert code == 0, output
    assert "its own left and right eyes are laid out" in output
    assert len(seen) == 1 and len(meta_parses) == 1


def test_a_photo_with_embedded_depth_is_read_once(tmp_path, opens):
    source = tmp_path / "portrait.jpg"
    source.write_bytes(gdepth_jpeg(encode_range(scene_depth(), "RangeLinear"), "RangeLinear"))
    seen = opens(source)
    code, output = run(source, "-o", tmp_path / "portrait_LR.png", *NO_MODEL)
    assert code == 0, output
    assert "using the depth embedded in the photo (GDepth XMP)" in output
    assert len(seen) == 1
