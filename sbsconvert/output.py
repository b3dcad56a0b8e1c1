"""Write results atomically: encode to a temp file beside the target, then rename into place."""

from __future__ import annotations

import contextlib
import errno
import glob
import io
import os
import itertools
import struct
import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

import numpy as np
import png  # pypng: 16-bit colour PNG with any chunk (Pillow writes 8 bits per colour channel)
import tifffile
from PIL import Image, PngImagePlugin, TiffImagePlugin, TiffTags

from sbsconvert.errors import BatchStop, SbsError

_UMASK = os.umask(0)
os.umask(_UMASK)
_DEFAULT_FILE_MODE = 0o666 & ~_UMASK

IMAGE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")  # the others hold 8 bits per channel
# zlib level of PNG (and 16-bit TIFF) output: level 6, libpng's default, took 5x the time of level 1 for
# about 11 % fewer bytes (bench/RESULTS.md); --png-compression trades the time back for size.
DEFAULT_PNG_COMPRESSION = 1


def check_writable_target(path: Path, force: bool) -> None:
    """Refuse early (before any work) when `path` exists and --force was not given."""
    if path.exists() and not force:
        raise SbsError(f"{path} already exists (use `force` to overwrite, `skip_existing` to keep it)")
    if path.exists() and path.is_dir():
        raise SbsError(f"{path} is a folder; cannot write an image there")


@contextlib.contextmanager
def atomic_path(path: Path, force: bool) -> Iterator[Path]:
    """Yield a temp path in the target folder; on success it replaces `path` in one rename.

    Without `force`, an existing target is never replaced, even if it appeared after the
    check at start-up. On any failure the temp file is removed, so no partial output remains.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        handle, temp_name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=f".part{path.suffix}", dir=folder)
    except OSError as error:
        raise SbsError(f"cannot write to {folder}: {write_failure(error, folder)}") from None
    os.close(handle)
    temp = Path(temp_name)
    os.chmod(temp, _DEFAULT_FILE_MODE)  # mkstemp creates 0600; outputs get the usual permissions
    try:
        yield temp
        _publish(temp, path, force)
    except OSError as error:
        raise _write_error(error, path, folder) from None
    except SbsError as error:
        # Writers (FFmpeg's muxers...) know only the temp file: the user knows the output, and a
        # full disk by the folder it fills.
        cause = _os_cause(error)
        if cause is not None and cause.errno in _NO_ROOM:
            raise _write_error(cause, path, folder) from None
        raise type(error)(str(error).replace(str(temp), str(path)).replace(temp.name, path.name)) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_failure(error: OSError, folder: Path) -> str:
    """Why writing into `folder` failed, in the user's terms."""
    if error.errno == errno.ENOSPC:
        return f"no space left on the device holding {folder}"
    if error.errno == errno.EDQUOT:
        return f"the disk quota on the device holding {folder} is used up"
    if error.errno == errno.EFBIG:
        return f"the file outgrew the largest size allowed in {folder} (4 GiB on FAT32) or by this process's file size limit"
    return error.strerror or str(error)


def _write_error(error: OSError, path: Path, folder: Path) -> SbsError:
    """A full disk stops the batch: every file after this one would fail the same way."""
    kind = BatchStop if error.errno in (errno.ENOSPC, errno.EDQUOT) else SbsError
    return kind(f"cannot write {path}: {write_failure(error, folder)}")


def _os_cause(error: BaseException) -> OSError | None:
    """The operating-system error (with its errno) behind `error`, if one is chained to it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def temp_prefix(path: Path, pid: int | None = None) -> str:
    """Temp files carry the writer's process id, so a later run can tell a killed writer's leftovers
    (removed) from a temp file another running process is still writing (kept)."""
    return f".{path.stem}.{os.getpid() if pid is None else pid}."


def remove_stale_temps(path: Path) -> None:
    """Delete temp files for `path` left by processes that no longer run (e.g. killed with SIGKILL)."""
    for temp in path.parent.glob(f".{glob.escape(path.stem)}.*.part{glob.escape(path.suffix)}"):
        owner = temp.name[len(path.stem) + 2 :].split(".", 1)[0]
        if owner.isdigit() and not process_alive(int(owner)):
            with contextlib.suppress(OSError):
                temp.unlink()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _publish(temp: Path, path: Path, force: bool) -> None:
    if force:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)  # atomic and fails if the target exists
    except FileExistsError:
        raise SbsError(f"{path} already exists (use `force` to overwrite)") from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # File systems without hard links (FAT, exFAT on SD cards): check, then rename.
        if path.exists():
            raise SbsError(f"{path} already exists (use `force` to overwrite)") from None
        os.replace(temp, path)


def write_image(
    pixels: np.ndarray,
    path: Path,
    *,
    force: bool,
    bit_depth: int = 8,
    quality: int = 95,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    colour_chunks: Sequence[tuple[bytes, bytes]] = (),
    png_compression: int = DEFAULT_PNG_COMPRESSION,
) -> None:
    """Encode HxWxC float [0, 1] pixels to `path` (format from the extension), atomically. C is 1
    (grey), 3 (RGB) or 4 (RGBA); `colour_chunks` (PNG chunks such as cICP, see decode.COLOUR_CHUNKS)
    go into PNG outputs, after the ICC profile, which overrides an sRGB chunk (that is then left out)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_FORMATS:
        raise SbsError(f"{path}: unsupported output image type '{suffix}' (use {', '.join(IMAGE_FORMATS)})")
    with atomic_path(path, force) as temp:
        _encode(pixels, temp, IMAGE_FORMATS[suffix], bit_depth, quality, icc_profile, exif, colour_chunks,
                png_compression)


def encode_jpeg(
    pixels: np.ndarray, *, quality: int = 95, icc_profile: bytes | None = None, exif: bytes | None = None
) -> bytes:
    """One 8-bit JPEG in memory, encoded as write_image would write it (for containers such as MPO)."""
    buffer = io.BytesIO()
    _encode(pixels, buffer, "JPEG", 8, quality, icc_profile, exif, (), DEFAULT_PNG_COMPRESSION)
    return buffer.getvalue()


def _encode(
    pixels: np.ndarray,
    path: Path | BinaryIO,
    image_format: str,
    bit_depth: int,
    quality: int,
    icc_profile: bytes | None,
    exif: bytes | None,
    colour_chunks: Sequence[tuple[bytes, bytes]],
    png_compression: int,
) -> None:
    if image_format == "JPEG" and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3] * np.clip(pixels[:, :, 3:4], 0.0, 1.0)  # JPEG has no alpha: composite over black
    grey = pixels.shape[2] == 1
    if icc_profile and icc_profile[16:20] != (b"GRAY" if grey else b"RGB "):
        icc_profile = None  # e.g. a grey photo's profile cannot describe its anaglyph, nor CMYK one RGB pixels
    if image_format in SIXTEEN_BIT_FORMATS and bit_depth == 16:
        data = _quantize(pixels, 65535, np.uint16)
        if image_format == "PNG":
            _write_png_16bit(data, path, _png_chunks(icc_profile, exif, colour_chunks), png_compression)
        else:
            _write_tiff_16bit(data, path, icc_profile, exif, png_compression)
        return
    data = _quantize(pixels, 255, np.uint8)
    image = Image.fromarray(data[:, :, 0] if grey else data, {1: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[2]])
    options: dict[str, object] = {}
    if icc_profile:
        options["icc_profile"] = icc_profile
    if exif and image_format in ("JPEG", "PNG", "WEBP", "TIFF"):
        options["exif"] = exif
    if image_format == "JPEG":
        options.update(quality=quality, subsampling=0, optimize=True)
    elif image_format == "WEBP":
        options.update(quality=quality)
    elif image_format == "PNG":
        options["compress_level"] = png_compression
        if colour_chunks:
            options["pnginfo"] = PngImagePlugin.PngInfo()
            for tag, chunk in colour_chunks:
                options["pnginfo"].add(tag, chunk)  # Pillow leaves sRGB out when it writes an ICC profile
    image.save(path, format=image_format, **options)


def _quantize(pixels: np.ndarray, top: int, dtype: type) -> np.ndarray:
    """round(clip(pixels, 0, 1) * top) as integers, computed in place on one float32 copy so large
    photos need no further full-size temporaries."""
    scaled = np.multiply(pixels, top, dtype=np.float32)
    np.clip(scaled, 0, top, out=scaled)
    np.round(scaled, out=scaled)
    return scaled.astype(dtype)


def _png_chunks(
    icc_profile: bytes | None, exif: bytes | None, colour_chunks: Sequence[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The metadata chunks of a PNG, in the order the PNG specification asks (all before the pixels)."""
    chunks = []
    if icc_profile:
        chunks.append((b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile)))  # name, method 0 (zlib)
    chunks += [(tag, chunk) for tag, chunk in colour_chunks if not (icc_profile and tag == b"sRGB")]
    if exif:
        chunks.append((b"eXIf", exif.removeprefix(b"Exif\0\0")))  # the chunk holds the TIFF structure only
    return chunks


def _write_png_16bit(data: np.ndarray, path: Path, chunks: list[tuple[bytes, bytes]], compression: int) -> None:
    height, width, planes = data.shape
    writer = png.Writer(width, height, greyscale=planes == 1, alpha=planes == 4, bitdepth=16, compression=compression)
    pixels = io.BytesIO()
    writer.write_packed(pixels, data.astype(">u2").view(np.uint8).reshape(height, -1))  # PNG samples are big-endian
    header, *rest = png.Reader(bytes=pixels.getvalue()).chunks()
    with open(path, "wb") as file:
        png.write_chunks(file, [header, *chunks, *rest])


def _write_tiff_16bit(
    data: np.ndarray, path: Path, icc_profile: bytes | None, exif: bytes | None, compression: int
) -> None:
    """tifffile compresses the pixels; it writes no EXIF (it refuses the tags pointing to EXIF's
    sub-directories), so the file is laid out again: its directory by Pillow, which writes those
    and the profile, followed by tifffile's compressed strips."""
    grey = data.shape[2] == 1
    encoded = io.BytesIO()
    tifffile.imwrite(encoded, data[:, :, 0] if grey else data, photometric="minisblack" if grey else "rgb",
                     compression="zlib", compressionargs={"level": compression}, predictor=True, metadata=None,
                     software=False, bigtiff=False)
    view = encoded.getbuffer()
    header = bytes(view[:8])
    written = TiffImagePlugin.ImageFileDirectory_v2(header)
    encoded.seek(written.next)
    written.load(encoded)
    directory = TiffImagePlugin.ImageFileDirectory_v2(header)
    for tag, value in written.items():  # read and typed as they were, so Pillow writes them again
        directory.tagtype[tag] = written.tagtype[tag]
        directory[tag] = value
    offsets, counts = (np.atleast_1d(written[tag]).tolist() for tag in (TiffImagePlugin.STRIPOFFSETS,
                                                                        TiffImagePlugin.STRIPBYTECOUNTS))
    # Pillow counts strip offsets from the end of the directory it writes, where the strips will follow.
    directory[TiffImagePlugin.STRIPOFFSETS] = tuple(itertools.accumulate(counts[:-1], initial=0))
    if icc_profile:
        directory[TiffImagePlugin.ICCPROFILE] = icc_profile
    tags = Image.Exif()
    if exif:
        tags.load(exif)
    for tag in tags:
        if tag not in directory:  # the pixels' own description (size, samples, strips) stays tifffile's
            # as Pillow's TIFF writer does: a sub-directory (Exif, GPS) is given as a dict of its tags
            directory[tag] = tags.get_ifd(tag) if tag in TiffTags.TAGS_V2_GROUPS else tags[tag]
    with open(path, "wb") as file:
        file.write(header[:4] + struct.pack("<L" if header[:2] == b"II" else ">L", len(header)))  # then the directory
        file.write(directory.tobytes(len(header)))
        for offset, count in zip(offsets, counts):
            file.write(view[offset : offset + count])
