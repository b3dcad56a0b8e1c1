"""Stereo datasets with ground-truth disparity: find the pairs of a folder and load them.

Layouts (detected from the folder's contents):
    middlebury  Middlebury 2014: scene folders (or one scene folder) holding im0.png (left), im1.png
                (right), disp0.pfm (left disparity in pixels, +inf = unknown) and calib.txt
                (vmax, else ndisp, bounds the disparity).
    kitti       KITTI 2015: training/image_2/*_10.png (left), image_3/*_10.png (right),
                disp_occ_0/*_10.png (uint16 disparity * 256, 0 = unknown); the folder may be the
                dataset root or its training/ folder.
    generic     NAME_left.*, NAME_right.*, NAME_disp.{pfm,npy,png} files side by side, or folders
                left/, right/ and disparity/ (or disp/) holding NAME.* each. Disparity in pixels:
                .pfm/.npy floats (non-finite or negative = unknown); .png 16-bit in KITTI's
                encoding (value / 256), 8-bit as it is; 0 in a PNG = unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sbsconvert.decode import IMAGE_EXTENSIONS, is_image_path, load_picture
from sbsconvert.disparity import read_pfm
from sbsconvert.errors import SbsError, first_line

LAYOUTS = ("middlebury", "kitti", "generic")
GENERIC_DISPARITY = (".pfm", ".npy", ".png")
_GENERIC_DISPARITY_FOLDERS = ("disparity", "disp")
_LAYOUT_HELP = (
    "expected Middlebury 2014 scene folders (im0.png, im1.png, disp0.pfm), KITTI 2015 (training/image_2, "
    "image_3, disp_occ_0), or NAME_left.*, NAME_right.*, NAME_disp.{pfm,npy,png} (or folders left/, right/, disparity/)"
)


@dataclass
class StereoSample:
    """One loaded pair. `disparity` is the left view's, in pixels; where `known` is False it holds 0."""

    name: str
    left: np.ndarray  # HxWx3 float32 in [0, 1]
    right: np.ndarray  # HxWx3 float32 in [0, 1]
    disparity: np.ndarray  # HxW float32 pixels
    known: np.ndarray  # HxW bool
    max_disparity: float  # the dataset's bound on this pair's disparity (pixels, this size)


@dataclass
class PairSource:
    """Where one pair's files are; `load()` reads them."""

    name: str
    layout: str
    left: Path
    right: Path
    disparity: Path
    calib: Path | None = None

    def load(self) -> StereoSample:
        left, right = _read_rgb(self.left), _read_rgb(self.right)
        values, known = read_disparity(self.disparity, kitti_png=self.layout == "kitti")
        if left.shape != right.shape or left.shape[:2] != values.shape:
            raise SbsError(
                f"{self.name}: left {left.shape[1]}x{left.shape[0]}, right {right.shape[1]}x{right.shape[0]} and "
                f"disparity {values.shape[1]}x{values.shape[0]} must have the same size"
            )
        if not known.any():
            raise SbsError(f"{self.name}: the disparity map {self.disparity} has no known value")
        bound = middlebury_max_disparity(self.calib) if self.calib is not None else None
        return StereoSample(
            name=self.name,
            left=left,
            right=right,
            disparity=values,
            known=known,
            max_disparity=bound if bound is not None else float(values[known].max()),
        )


def find_pairs(root: Path) -> tuple[str, list[PairSource]]:
    """The layout of `root` and its pairs, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise SbsError(f"{root}: not a folder (give the dataset's folder)")
    if not any(root.iterdir()):
        raise SbsError(f"{root}: the folder is empty; {_LAYOUT_HELP}")
    for layout, finder in (("middlebury", _middlebury), ("kitti", _kitti), ("generic", _generic)):
        pairs = finder(root)
        if pairs:
            return layout, sorted(pairs, key=lambda pair: pair.name)
    raise SbsError(f"{root}: no stereo pairs with disparity found; {_LAYOUT_HELP}")


def _middlebury(root: Path) -> list[PairSource]:
    scenes = [root] if (root / "im0.png").is_file() else sorted(p for p in root.iterdir() if (p / "im0.png").is_file())
    pairs = []
    for scene in scenes:
        missing = [name for name in ("im1.png", "disp0.pfm") if not (scene / name).is_file()]
        if missing:
            raise SbsError(f"{scene}: Middlebury scene without {' and '.join(missing)}")
        calib = scene / "calib.txt"
        pairs.append(
            PairSource(scene.name, "middlebury", scene / "im0.png", scene / "im1.png", scene / "disp0.pfm",
                       calib if calib.is_file() else None)
        )
    return pairs


def _kitti(root: Path) -> list[PairSource]:
    base = root / "training" if (root / "training" / "image_2").is_dir() else root
    if not (base / "image_2").is_dir():
        return []
    for folder in ("image_3", "disp_occ_0"):
        if not (base / folder).is_dir():
            raise SbsError(f"{base}: KITTI layout without {folder}/ (evaluation needs the training set)")
    pairs = []
    for left in sorted((base / "image_2").glob("*_10.png")):
        right, disparity = base / "image_3" / left.name, base / "disp_occ_0" / left.name
        if not (right.is_file() and disparity.is_file()):
            raise SbsError(f"{left}: no matching image_3/{left.name} and disp_occ_0/{left.name}")
        pairs.append(PairSource(left.stem, "kitti", left, right, disparity))
    return pairs


def _generic(root: Path) -> list[PairSource]:
    if (root / "left").is_dir() and (root / "right").is_dir():
        disparity_folder = next((root / n for n in _GENERIC_DISPARITY_FOLDERS if (root / n).is_dir()), None)
        if disparity_folder is None:
            raise SbsError(f"{root}: left/ and right/ but no disparity/ folder")
        return [
            PairSource(left.stem, "generic", left, _partner(root / "right", left.stem, IMAGE_EXTENSIONS, left),
                       _partner(disparity_folder, left.stem, GENERIC_DISPARITY, left))
            for left in sorted(p for p in (root / "left").iterdir() if _is_image(p))
        ]
    pairs = []
    for left in sorted(p for p in root.iterdir() if p.stem.endswith("_left") and _is_image(p)):
        name = left.stem[: -len("_left")]
        pairs.append(
            PairSource(name, "generic", left, _partner(root, f"{name}_right", IMAGE_EXTENSIONS, left),
                       _partner(root, f"{name}_disp", GENERIC_DISPARITY, left))
        )
    return pairs


def _is_image(path: Path) -> bool:
    return path.is_file() and is_image_path(path)


def _partner(folder: Path, stem: str, extensions: tuple[str, ...] | frozenset[str], left: Path) -> Path:
    for candidate in sorted(folder.glob(f"{stem}.*")):
        if candidate.suffix.lower() in extensions:
            return candidate
    raise SbsError(f"{left}: no {folder / stem}.* ({', '.join(sorted(extensions))}) to go with it")


def _read_rgb(path: Path) -> np.ndarray:
    return np.ascontiguousarray(load_picture(path).pixels[:, :, :3], dtype=np.float32)


def read_disparity(path: Path, kitti_png: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Disparity in pixels (0 where unknown) and the mask of known values."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".pfm":
            raw = read_pfm(path)
        elif suffix == ".npy":
            raw = np.load(path, allow_pickle=False)
        else:
            raw = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
            if raw is None:
                raise ValueError("not a readable image")
    except (ValueError, OSError, EOFError) as error:
        raise SbsError(f"disparity map {path}: cannot be read ({first_line(error)})") from None
    if raw.ndim == 3:
        raw = raw[:, :, 0]
    if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.number):
        raise SbsError(f"disparity map {path}: expected a 2-D numeric map, got {raw.dtype} of shape {raw.shape}")
    values = raw.astype(np.float32)
    if suffix == ".png":
        if raw.dtype == np.uint16 or kitti_png:
            values = values / 256.0  # KITTI's encoding
        known = raw > 0
    else:
        known = np.isfinite(values) & (values >= 0)
    return np.where(known, values, 0).astype(np.float32), known


def middlebury_max_disparity(calib: Path) -> float | None:
    """vmax (tight bound of the ground truth), else ndisp (the search range), from calib.txt."""
    fields = {}
    for line in calib.read_text(errors="replace").splitlines():
        key, _, value = line.partition("=")
        fields[key.strip()] = value.strip()
    for key in ("vmax", "ndisp"):
        try:
            value = float(fields[key])
        except (KeyError, ValueError):
            continue
        if value > 0:
            return value
    return None


def fill_unknown(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Stand-in values for unknown disparities, so a warp can still move those pixels: the farther
    (smaller) of the nearest known values left and right on the row (unknown ground truth lies
    mostly in occluded background), or the farthest known value on rows without any."""
    if known.all():
        return values
    height, width = values.shape
    columns = np.arange(width)
    left = np.maximum.accumulate(np.where(known, columns, -1), axis=1)
    right = np.minimum.accumulate(np.where(known, columns, width)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(height)[:, None]
    farthest = float(values[known].min())
    from_left = np.where(left >= 0, values[rows, left.clip(0)], np.inf)
    from_right = np.where(right < width, values[rows, right.clip(max=width - 1)], np.inf)
    stand_in = np.minimum(from_left, from_right)
    stand_in = np.where(np.isfinite(stand_in), stand_in, farthest)
    return np.where(known, values, stand_in).astype(np.float32)
