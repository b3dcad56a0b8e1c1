"""Disparity maps: read from files, normalise, resize to the image, turn into pixel shifts.

Convention everywhere: a disparity map is HxW float32 where larger = nearer. A *relative* map
is normalised to [0, 1] (1 = nearest point); an *absolute* map holds pixel disparities for the
image it belongs to (used with ground truth, e.g. Middlebury/KITTI).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sbsconvert.choices import DISPARITY_KINDS
from sbsconvert.errors import SbsError, first_line

# What to do instead when no depth model can be loaded (the depth models say it in their errors).
DEPTH_MODEL_ALTERNATIVES = "pass a disparity map with `disparity` FILE"

DISPARITY_EXTENSIONS = (".png", ".tif", ".tiff", ".npy", ".npz", ".pfm", ".exr", ".jpg", ".jpeg")


@dataclass
class Disparity:
    values: np.ndarray  # HxW float32, larger = nearer
    absolute: bool = False  # True: values are pixels at this map's width

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape  # type: ignore[return-value]


def load_disparity_file(path: Path, kind: str = "relative") -> Disparity:
    """Read a disparity (or depth, for kind='depth') map from PNG 8/16-bit, TIFF, NPY/NPZ or PFM."""
    if kind not in DISPARITY_KINDS:
        raise SbsError(f"unknown disparity kind '{kind}' (choose from {', '.join(DISPARITY_KINDS)})")
    path = Path(path)
    if not path.is_file():
        raise SbsError(f"disparity map {path}: no such file")
    raw = _read_map(path)
    if raw.ndim == 3:
        raw = _single_channel(raw, path)
    if raw.ndim != 2 or min(raw.shape) < 2:
        raise SbsError(f"disparity map {path}: expected a 2-D map, got shape {raw.shape}")
    if not np.issubdtype(raw.dtype, np.number) or np.issubdtype(raw.dtype, np.complexfloating):
        raise SbsError(f"disparity map {path}: unsupported data type {raw.dtype}")
    values = raw.astype(np.float32)
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise SbsError(f"disparity map {path}: {bad} values are NaN or infinite; fill them first")
    return disparity_from_array(values, kind, name=str(path))


def disparity_from_array(values: np.ndarray, kind: str, name: str = "disparity map") -> Disparity:
    values = np.asarray(values, dtype=np.float32)
    if values.max() - values.min() <= 1e-6 * max(1.0, abs(float(values.max()))):
        raise SbsError(f"{name}: the map is constant, so it holds no depth")
    if kind == "pixels":
        if values.min() < 0:
            raise SbsError(f"{name}: pixel disparities must not be negative")
        return Disparity(values, absolute=True)
    if kind == "depth":
        if values.min() <= 0:
            # Depth maps often mark unknown as 0; treat those as the farthest known depth.
            positive = values[values > 0]
            if positive.size == 0:
                raise SbsError(f"{name}: depth map has no positive values")
            values = np.where(values > 0, values, positive.max())
        values = 1.0 / values
    return Disparity(normalize(values), absolute=False)


def normalize(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high - low <= 0:
        return np.zeros_like(values, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


# How far a given map's aspect ratio may stray from its picture's: rounding, as in a map made at a
# smaller size (1920x1080 at 518x291), not a map of another picture or another crop.
ASPECT_TOLERANCE = 0.02


def check_map_shape(disparity: Disparity, width: int, height: int, map_name: str, picture_name: str) -> None:
    """Refuse a map of another aspect ratio than its picture's: stretched over it, its depth would
    land beside the objects it belongs to."""
    map_height, map_width = disparity.shape
    fitted_height = map_width * height / width  # the map's height at the picture's aspect ratio
    if abs(map_height - fitted_height) > max(1.0, ASPECT_TOLERANCE * fitted_height):
        raise SbsError(f"{map_name} is {map_width}x{map_height} but {picture_name} is {width}x{height}: their aspect "
                       f"ratios differ by more than rounding ({ASPECT_TOLERANCE:.0%}); give a map of the same shape")


def resize_disparity(disparity: Disparity, width: int, height: int) -> Disparity:
    """Resize to the image size; pixel disparities scale with the width."""
    map_height, map_width = disparity.shape
    if (map_width, map_height) == (width, height):
        return disparity
    shrinking = width < map_width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(disparity.values, (width, height), interpolation=interpolation)
    if disparity.absolute:
        resized = resized * (width / map_width)
    return Disparity(resized.astype(np.float32), absolute=disparity.absolute)


def pixel_shift(disparity: Disparity, width: int, divergence: float, convergence: float) -> np.ndarray:
    """Horizontal shift in pixels between the left and right view, per left-view pixel.

    A left pixel at x appears at x - shift in the right view. `divergence` is the shift of the
    nearest point in percent of the image width; `convergence` in [0, 1] is the disparity that
    lands on the screen plane (zero shift): 0 puts the farthest point there, 1 the nearest.
    For absolute maps the pixel values are used as they are and `divergence` is ignored.
    """
    values = disparity.values
    if disparity.absolute:
        return (values - convergence * float(values.max())).astype(np.float32)
    scale = divergence / 100.0 * width
    return (scale * (values - convergence)).astype(np.float32)


def _single_channel(raw: np.ndarray, path: Path) -> np.ndarray:
    if raw.shape[2] == 1:
        return raw[:, :, 0]
    colour = raw[:, :, :3]
    if np.array_equal(colour[:, :, 0], colour[:, :, 1]) and np.array_equal(colour[:, :, 0], colour[:, :, 2]):
        return colour[:, :, 0]
    raise SbsError(f"disparity map {path}: has colour channels; expected a single-channel (grayscale) map")


def _read_map(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                key = next((k for k in ("disparity", "depth", "arr_0") if k in archive), None)
                if key is None:
                    key = archive.files[0] if archive.files else None
                if key is None:
                    raise SbsError(f"disparity map {path}: the .npz archive is empty")
                return archive[key]
        if suffix == ".pfm":
            return read_pfm(path)
        decoded = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except SbsError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise SbsError(f"disparity map {path}: cannot be read ({first_line(error)})") from None
    if decoded is None:
        raise SbsError(f"disparity map {path}: not a readable image, .npy, .npz or .pfm file")
    if decoded.ndim == 3 and decoded.shape[2] >= 3:
        decoded = decoded[:, :, [2, 1, 0] + list(range(3, decoded.shape[2]))]  # BGR(A) -> RGB(A)
    return decoded


def read_pfm(path: Path) -> np.ndarray:
    """Read a Portable Float Map (Middlebury/KITTI tools use it); rows are stored bottom-up."""
    with open(path, "rb") as handle:
        header = handle.readline().strip()
        if header not in (b"Pf", b"PF"):
            raise ValueError("not a PFM file")
        dims = handle.readline().split()
        while not dims:
            dims = handle.readline().split()
        width, height = int(dims[0]), int(dims[1])
        scale = float(handle.readline().strip())
        channels = 3 if header == b"PF" else 1
        dtype = "<f4" if scale < 0 else ">f4"
        count = width * height * channels
        data = np.frombuffer(handle.read(count * 4), dtype=dtype)
    if data.size != count:
        raise ValueError(f"PFM data is truncated ({data.size} of {count} values)")
    shape = (height, width, channels) if channels == 3 else (height, width)
    return np.flipud(data.reshape(shape)).astype(np.float32)


def write_pfm(path: Path, values: np.ndarray) -> None:
    values = np.asarray(values, dtype="<f4")
    header = b"PF\n" if values.ndim == 3 else b"Pf\n"
    with open(path, "wb") as handle:
        handle.write(header)
        handle.write(f"{values.shape[1]} {values.shape[0]}\n-1.0\n".encode())
        handle.write(np.ascontiguousarray(np.flipud(values)).tobytes())
