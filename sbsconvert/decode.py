"""Decode still images into float arrays: EXIF orientation applied, 16-bit and alpha kept."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import png  # pypng: reads the colour chunks Pillow skips (cICP)
from PIL import Image, ImageOps, UnidentifiedImageError

from sbsconvert.errors import SbsError, first_line
from sbsconvert.formats.mpo import is_stereo_mpo
from sbsconvert.formats.source import SourceFile, source_path
from sbsconvert.spatial_photo import is_stereo_heic, stereo_pair_images

try:  # HEIC/HEIF (iPhone photos) through libheif, when the wheel is present.
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    pass

HEIF_EXTENSIONS = (".heic", ".heif")
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".heic", ".heif", ".gif", ".jfif", ".mpo"}
)
# 100 megapixels: a 24 GiB machine holds the float buffers of the warp engine several times over
# at this size; beyond it we refuse rather than risk running out of memory.
MAX_PIXELS = 100_000_000

# We check the size ourselves right after reading the header (before decoding pixels), with a
# clear message; Pillow's own bomb check would only warn below twice its limit.
Image.MAX_IMAGE_PIXELS = None

# PNG chunks saying how to read the colours, kept for PNG outputs as they are: coding-independent
# code points (HDR, wide gamut), chromaticities, gamma, sRGB intent (iCCP and eXIf are kept as
# icc_profile and exif).
COLOUR_CHUNKS = (b"cICP", b"cHRM", b"gAMA", b"sRGB")
# Pillow modes of one grey channel (bilevel, 8-bit, 16-bit, 32-bit integer and float).
GREY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "F")


@dataclass
class Picture:
    """A decoded image. `pixels` is HxWxC float32 in [0, 1], C = 3 (RGB) or 4 (RGBA)."""

    pixels: np.ndarray
    bit_depth: int = 8
    icc_profile: bytes | None = None
    exif: bytes | None = None  # kept for the output (date taken, camera), orientation reset to 1
    colour_chunks: tuple[tuple[bytes, bytes], ...] = ()  # a PNG's COLOUR_CHUNKS, as (type, data)
    grey: bool = False  # one grey channel in the file (the pixels hold it three times)
    source: Path | None = None
    notes: list[str] = field(default_factory=list)
    frame: int | None = None  # a video frame's timestamp (pts) in its source: per-frame maps are found by it
    depth: np.ndarray | None = None  # HxW depth that came with the pixels (--input-layout rgbd)
    file: SourceFile | None = None  # the photo's file as read: later stages look into it (embedded depth)

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[2] == 4

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.pixels.shape[:2]
        return width, height


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def read_source(path: Path) -> SourceFile:
    """The photo's file, read once for every stage that looks into it."""
    path = Path(path)
    try:
        return SourceFile.read(path)
    except FileNotFoundError:
        raise SbsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SbsError(f"{path}: is a folder, not an image") from None
    except OSError as error:
        raise SbsError(f"{path}: not a readable image ({first_line(error)})") from None


def load_picture(source: Path | SourceFile) -> Picture:
    """Decode a photo, from its path or from its file already read."""
    file = source if isinstance(source, SourceFile) else read_source(source)
    path = file.path
    try:
        with Image.open(file.stream()) as image:
            notes = []
            # (MPO frames and a spatial photo's two images are eyes, not an animation)
            if getattr(image, "n_frames", 1) > 1 and image.format != "MPO" and not is_stereo_heic(file):
                notes.append(f"{path.name} is animated: only its first frame is converted")
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise SbsError(_too_large(path, width, height))
            icc = image.info.get("icc_profile")
            colour_chunks = _png_colour_chunks(file) if image.format == "PNG" else ()
            grey = image.mode in GREY_MODES
            exif_tags = image.getexif()
            orientation = exif_tags.get(0x0112, 1)
            exif = _upright_exif(exif_tags)
            image.seek(0)
            pixels = _high_bit_depth_pixels(file, orientation)
            bit_depth = 16
            if pixels is None:
                pixels = _pillow_pixels(ImageOps.exif_transpose(image))
                bit_depth = 8
    except SbsError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, png.Error) as error:
        raise SbsError(f"{path}: not a readable image ({first_line(error)})") from None
    if min(pixels.shape[:2]) < 2:
        raise SbsError(f"{path}: image is {pixels.shape[1]}x{pixels.shape[0]}, too small to convert")
    return Picture(pixels=pixels, bit_depth=bit_depth, icc_profile=icc, exif=exif, colour_chunks=colour_chunks,
                   grey=grey, source=path, notes=notes, file=file)


def load_stereo_eyes(source: Path | SourceFile) -> tuple[np.ndarray, np.ndarray] | None:
    """The left and right eyes (HxWx3 float32) of a photo that already holds a stereo pair: the
    first two images of a stereo MPO (3D cameras, the Nintendo 3DS; numbered from the left), or
    the images a HEIF stereo group names, left then right (Apple spatial photos). None for any
    other photo."""
    path = source_path(source)
    try:
        file = SourceFile.of(source)
        if is_stereo_mpo(file.stream()):
            with Image.open(file.stream()) as image:
                eyes = []
                for index in (0, 1):
                    image.seek(index)
                    eyes.append(_pillow_pixels(ImageOps.exif_transpose(image)))
        elif path.suffix.lower() in HEIF_EXTENSIONS and is_stereo_heic(file):
            eyes = [_pillow_pixels(ImageOps.exif_transpose(image)) for image in stereo_pair_images(file)]
        else:
            return None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise SbsError(f"{path}: not a readable stereo photo ({first_line(error)})") from None
    left, right = (eye[..., :3] for eye in eyes)
    if left.shape != right.shape:
        raise SbsError(f"{path}: its two eyes differ in size ({left.shape[1]}x{left.shape[0]} and "
                       f"{right.shape[1]}x{right.shape[0]})")
    return left, right


def _too_large(path: Path, width: int, height: int) -> str:
    return (
        f"{path}: {width}x{height} is larger than the {MAX_PIXELS // 1_000_000} megapixel limit; "
        "downscale it first"
    )



def _png_colour_chunks(file: SourceFile) -> tuple[tuple[bytes, bytes], ...]:
    """The COLOUR_CHUNKS of a PNG, which all come before its pixels."""
    kept = []
    for tag, data in png.Reader(file=file.stream()).chunks():
        if tag == b"IDAT":
            break
        if tag in COLOUR_CHUNKS:
            kept.append((tag, data))
    return tuple(kept)


def _upright_exif(tags: Image.Exif) -> bytes | None:
    """EXIF for the output, with orientation 1 since the pixels are already turned upright."""
    if not tags:
        return None
    try:
        upright = Image.Exif()
        upright.load(tags.tobytes())  # a copy: the source image's own tags stay as they are
        upright[0x0112] = 1
        return upright.tobytes()
    except (ValueError, TypeError, OverflowError, struct.error):  # malformed maker notes: drop EXIF
        return None


def _pillow_pixels(image: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to float RGB(A) in [0, 1]."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        gray = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if mode.startswith("I;16") or gray.max() > 255 else 255.0
        gray = np.clip(gray / peak, 0.0, 1.0)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return np.repeat(gray[:, :, None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info)
    converted = image.convert("RGBA" if has_alpha else "RGB")  # CMYK, L, P, YCbCr... -> RGB
    return np.asarray(converted, dtype=np.float32) / 255.0


def _high_bit_depth_pixels(file: SourceFile, orientation: int) -> np.ndarray | None:
    """16-bit PNG/TIFF, colour or grey: Pillow would reduce these to 8 bits, OpenCV keeps them.
    Grey becomes three equal channels (the stereo pair is written as RGB)."""
    if file.path.suffix.lower() not in (".png", ".tif", ".tiff"):
        return None
    decoded = cv2.imdecode(np.frombuffer(file.data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16:
        return None
    channels = 1 if decoded.ndim == 2 else decoded.shape[2]
    if channels == 4:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
    elif channels == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    elif channels == 1:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_GRAY2RGB)
    else:
        return None
    pixels = decoded.astype(np.float32) / 65535.0
    return apply_exif_orientation(pixels, orientation)


def apply_exif_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1..8 to an HxWxC array (same result as Pillow's exif_transpose)."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    transform = transforms.get(orientation)
    return pixels if transform is None else np.ascontiguousarray(transform(pixels))
