"""Write results atomically: encode to a temp file beside the target, then rename into place."""

from __future__ import annotations

import contextlib
import errno
import glob
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

import cv2
import numpy as np
from PIL import Image

from sbsconvert.errors import BatchStop, SbsError

_UMASK = os.umask(0)
os.umask(_UMASK)
_DEFAULT_FILE_MODE = 0o666 & ~_UMASK

IMAGE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")  # the others hold 8 bits per channel


def check_writable_target(path: Path, force: bool) -> None:
    """Refuse early (before any work) when `path` exists and --force was not given."""
    if path.exists() and not force:
        raise SbsError(f"{path} already exists (use --force to overwrite, --skip-existing to keep it)")
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
        raise SbsError(f"{path} already exists (use --force to overwrite)") from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # File systems without hard links (FAT, exFAT on SD cards): check, then rename.
        if path.exists():
            raise SbsError(f"{path} already exists (use --force to overwrite)") from None
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
) -> None:
    """Encode HxWxC float [0, 1] pixels to `path` (format from the extension), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_FORMATS:
        raise SbsError(f"{path}: unsupported output image type '{suffix}' (use {', '.join(IMAGE_FORMATS)})")
    with atomic_path(path, force) as temp:
        _encode(pixels, temp, IMAGE_FORMATS[suffix], bit_depth, quality, icc_profile, exif)


def encode_jpeg(
    pixels: np.ndarray, *, quality: int = 95, icc_profile: bytes | None = None, exif: bytes | None = None
) -> bytes:
    """One 8-bit JPEG in memory, encoded as write_image would write it (for containers such as MPO)."""
    buffer = io.BytesIO()
    _encode(pixels, buffer, "JPEG", 8, quality, icc_profile, exif)
    return buffer.getvalue()


def _encode(
    pixels: np.ndarray,
    path: Path | BinaryIO,
    image_format: str,
    bit_depth: int,
    quality: int,
    icc_profile: bytes | None,
    exif: bytes | None,
) -> None:
    if image_format == "JPEG" and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3] * np.clip(pixels[:, :, 3:4], 0.0, 1.0)  # JPEG has no alpha: composite over black
    if image_format in SIXTEEN_BIT_FORMATS and bit_depth == 16:
        _encode_16bit(pixels, path)
        return
    image = Image.fromarray(_quantize(pixels, 255, np.uint8), "RGBA" if pixels.shape[2] == 4 else "RGB")
    options: dict[str, object] = {}
    if icc_profile:
        options["icc_profile"] = icc_profile
    if exif and image_format in ("JPEG", "PNG", "WEBP", "TIFF"):
        options["exif"] = exif
    if image_format == "JPEG":
        options.update(quality=quality, subsampling=0, optimize=True)
    elif image_format == "WEBP":
        options.update(quality=quality)
    image.save(path, format=image_format, **options)


def _quantize(pixels: np.ndarray, top: int, dtype: type) -> np.ndarray:
    """round(clip(pixels, 0, 1) * top) as integers, computed in place on one float32 copy so large
    photos need no further full-size temporaries."""
    scaled = np.multiply(pixels, top, dtype=np.float32)
    np.clip(scaled, 0, top, out=scaled)
    np.round(scaled, out=scaled)
    return scaled.astype(dtype)


def _encode_16bit(pixels: np.ndarray, path: Path) -> None:
    data = _quantize(pixels, 65535, np.uint16)
    conversion = cv2.COLOR_RGBA2BGRA if data.shape[2] == 4 else cv2.COLOR_RGB2BGR
    ok, encoded = cv2.imencode(".png" if path.suffix.lower() == ".png" else ".tiff", cv2.cvtColor(data, conversion))
    if not ok:
        raise OSError(errno.EIO, "16-bit encoder failed")
    encoded.tofile(path)

