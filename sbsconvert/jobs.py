"""Turn the INPUT arguments into a list of jobs: which file to read, which files to write."""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from sbsconvert.decode import is_image_path
from sbsconvert.errors import SbsError
from sbsconvert.layout import LAYOUTS, get_layout
from sbsconvert.mpo import MPO_EXTENSION, is_stereo_mpo
from sbsconvert.output import IMAGE_FORMATS
from sbsconvert.spatial_photo import SPATIAL_EXTENSION
from sbsconvert.video import VIDEO_EXTENSIONS, VIDEO_OUTPUT_EXTENSIONS, is_video_path, not_a_video, video_output_extension

FOLDER_OUTPUT_SUFFIX = "_stereo"
_OUR_SUFFIXES = tuple(sorted({suffix.lower() for layout in LAYOUTS.values() for suffix in layout.suffixes if suffix}))
# Layouts whose photo is one file of a type of its own holding both eyes: that file type, the codec
# of the images inside and the --type values that name it.
PHOTO_CONTAINERS = {"mpo": (MPO_EXTENSION, "JPEG", ("jpg", "jpeg")), "spatial": (SPATIAL_EXTENSION, "HEVC", ())}


@dataclass
class Job:
    source: Path
    outputs: list[Path]  # one file, or left and right for lr-pair


@dataclass
class PassedOver:
    """A file (or, without --recursive, a sub-folder) a folder scan does not convert, and why."""

    path: Path
    reason: str


def natural_key(path: Path) -> list[object]:
    """Sort key that puts frame2 before frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def looks_like_our_output(path: Path) -> bool:
    """Named with a layout suffix, or a stereo MPO beside a photo of the same name (ours are named
    like their source: photo.jpg -> photo.mpo). A 3D camera's MPO, or a spatial HEIC not named like
    ours (an iPhone's), is a photo to convert: its own eyes are laid out."""
    if path.suffix.lower() == MPO_EXTENSION:
        beside = (other for other in path.parent.glob(glob.escape(path.stem) + ".*") if other != path)
        return any(is_image_path(other) for other in beside) and is_stereo_mpo(path)
    stem = path.stem.lower()
    return any(stem.endswith(suffix) for suffix in _OUR_SUFFIXES)


def images_in_folder(
    folder: Path, recursive: bool, skip_named_outputs: bool = True, passed_over: list[PassedOver] | None = None
) -> list[Path]:
    """Images and videos in a folder (natural order), skipping hidden files and (unless told not to:
    a folder of packed 3D files to re-lay-out) files that look like our outputs. A file named as no
    photo or video type is taken when its content is a video (.mpg, .ts, .MTS...). What else the
    folder holds is added to `passed_over` with the reason."""
    found, skipped = [], []
    for path in folder.glob("**/*" if recursive else "*"):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue  # hidden: the user's or ours (locks, temp files), never theirs to convert
        reason = _why_not_taken(path, recursive, skip_named_outputs)
        if reason is None:
            found.append(path)
        elif reason:
            skipped.append(PassedOver(path, reason))
    if passed_over is not None:
        passed_over.extend(sorted(skipped, key=lambda skip: natural_key(skip.path)))
    return sorted(found, key=natural_key)


def _why_not_taken(path: Path, recursive: bool, skip_named_outputs: bool) -> str | None:
    """Why a folder scan leaves `path` out (None: it is converted; "": nothing worth saying)."""
    if path.is_dir():
        return "" if recursive else "a sub-folder (--recursive looks inside)"
    if not path.is_file():
        return "not a regular file"
    why = not_media(path)
    if why is not None:
        return why
    if skip_named_outputs and looks_like_our_output(path):
        return "named like an sbsconvert output (to convert packed 3D files, give --input-layout)"
    return None


# Camera RAW photos (undeveloped sensor data): common beside the JPEGs in a camera's folders, never
# videos, and slow to rule out by content (15-50 ms each), so named for what they are.
RAW_PHOTO_EXTENSIONS = frozenset({".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".raf",
                                  ".rw2", ".orf", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".mrw", ".rwl"})


def not_media(path: Path) -> str | None:
    """Why the file `path` is neither a photo type sbsconvert reads nor a video (None: it is one)."""
    if is_image_path(path) or path.suffix.lower() in VIDEO_EXTENSIONS:
        return None
    if path.suffix.lower() in RAW_PHOTO_EXTENSIONS:
        return f"a camera RAW photo ({path.suffix}): develop it into a JPEG, TIFF or PNG first"
    why = not_a_video(path)
    return None if why is None else f"not an image type sbsconvert reads, nor a video ({path.suffix or 'no extension'}: {why})"


def output_extension(source: Path, image_type: str | None) -> str:
    if image_type:
        extension = "." + image_type.lower().lstrip(".")
        if extension not in IMAGE_FORMATS:
            raise SbsError(f"unsupported output type '{image_type}' (choose from jpg, png, webp, tif)")
        return extension
    extension = source.suffix.lower()
    return extension if extension in IMAGE_FORMATS else ".jpg"


def photo_container(layout_name: str) -> str | None:
    """The file type of a photo of this layout when it has one of its own (.mpo, .heic), else None."""
    container = PHOTO_CONTAINERS.get(get_layout(layout_name).name)
    return container[0] if container else None


def output_types(layout_name: str) -> tuple[str, ...]:
    """File extensions an output of this layout may have: its own (.mpo, .heic), else any image type."""
    container = photo_container(layout_name)
    return (container,) if container else tuple(IMAGE_FORMATS)


def plan_jobs(
    inputs: list[Path], output: Path | None, layout_name: str, image_type: str | None, recursive: bool,
    skip_named_outputs: bool = True, passed_over: list[PassedOver] | None = None,
) -> list[Job]:
    """The jobs for INPUT files and folders; files the folders hold but that are not converted go
    into `passed_over`, with the reason."""
    if not inputs:
        raise SbsError("no INPUT given (a photo, or a folder of photos)")
    layout = get_layout(layout_name)
    types = output_types(layout_name)
    container = PHOTO_CONTAINERS.get(layout.name)
    if container and image_type and image_type.lower().lstrip(".") not in container[2]:
        raise SbsError(f"`format` {layout.name} writes {container[1]} images into a {container[0]} file; "
                       f"drop `image_type` {image_type}")
    pairs: list[tuple[Path, Path | None]] = []  # (source file, folder it was found in)
    for given in inputs:
        if given.is_dir():
            skipped: list[PassedOver] = []
            found = images_in_folder(given, recursive, skip_named_outputs, skipped)
            if not found:
                raise SbsError(f"folder {given} holds no images or videos{_empty_folder_hint(skipped, recursive)}")
            pairs.extend((path, given) for path in found)
            if passed_over is not None:
                passed_over.extend(skipped)
        elif given.is_file():
            why = not_media(given)
            if why is not None:
                raise SbsError(f"{given}: {why}")
            pairs.append((given, None))
        else:
            raise SbsError(f"{given}: no such file or folder")
    videos = [source for source, _ in pairs if is_video_path(source)]
    if layout.extension and videos:
        raise SbsError(f"`format` {layout.name} is for photos; {videos[0]} is a video (use sbs, tb, lr-pair...)")
    if len(pairs) == 1 and is_video_path(pairs[0][0]):
        types = VIDEO_OUTPUT_EXTENSIONS  # a video keeps its container (see sbsconvert.video)

    single_file_target = (
        output is not None and len(pairs) == 1 and pairs[0][1] is None and output.suffix.lower() in types
    )
    if output is not None and not single_file_target and not output.is_dir() and _looks_like_file_name(output):
        if output.suffix.lower() in types:
            raise SbsError(f"`output` {output} names one file but there are {len(pairs)} photos; give a folder")
        if types is VIDEO_OUTPUT_EXTENSIONS:
            raise SbsError(f"`output` {output}: give a video file name ({', '.join(types)}) or a folder")
        raise SbsError(_wrong_type(output, layout_name))
    jobs = []
    for source, folder in pairs:
        if single_file_target:
            assert output is not None
            names = file_outputs(output, layout_name)
        else:
            if is_video_path(source):
                extension = video_output_extension(source, layout.name)
            else:
                extension = photo_container(layout.name) or output_extension(source, image_type)
            target_folder = _target_folder(source, folder, output)
            names = [target_folder / f"{source.stem}{suffix}{extension}" for suffix in layout.suffixes]
        jobs.append(Job(source=source, outputs=names))
    _check_collisions(jobs)
    return jobs


def plan_stream_jobs(
    inputs: list[Path], output: Path | None, layout_name: str, *, sequence: bool, frames_out: bool
) -> list[Job]:
    """Jobs for --sequence (a folder of numbered frames is one video) and --frames-out (a video or a
    sequence becomes a folder of numbered frames, NAME_LR/, named like the video it replaces)."""
    if not inputs:
        raise SbsError("no INPUT given (a folder of frames with `sequence`, or a video with `frames_out`)")
    layout = get_layout(layout_name)
    if layout.extension:
        raise SbsError(f"`format` {layout.name} is for photos; `sequence` and `frames_out` make video frames")
    for given in inputs:
        if sequence and not given.is_dir():
            what = "a file" if given.exists() else "missing"
            raise SbsError(f"{given}: `sequence` reads a folder of numbered frames, and this is {what}")
        if not sequence and not (given.is_file() and is_video_path(given)):
            raise SbsError(f"{given}: `frames_out` writes the frames of a video file (or of a folder with `sequence`)")
    one_target = output is not None and len(inputs) == 1 and (frames_out or output.suffix.lower() in VIDEO_OUTPUT_EXTENSIONS)
    if output is not None and not one_target and not frames_out and _looks_like_file_name(output):
        raise SbsError(f"`output` {output}: give a video file name ({', '.join(VIDEO_OUTPUT_EXTENSIONS)}) for one INPUT, "
                       "or a folder")
    jobs = []
    for source in inputs:
        if one_target:
            assert output is not None
            names = file_outputs(output, layout_name)
        else:
            name = source.resolve().name if sequence else source.stem
            extension = "" if frames_out else ".mp4" if sequence else video_output_extension(source, layout.name)
            folder = output if output is not None else source.parent
            names = [folder / f"{name}{suffix}{extension}" for suffix in layout.suffixes]
        jobs.append(Job(source=source, outputs=names))
    _check_collisions(jobs)
    return jobs


def file_outputs(output: Path, layout_name: str) -> list[Path]:
    """The file(s) written for `-o FILE`: FILE itself, or FILE_L / FILE_R for a two-file layout."""
    layout = get_layout(layout_name)
    if len(layout.suffixes) == 1:
        return [output]
    return [_with_suffix(output, suffix, output.suffix) for suffix in layout.suffixes]


def _wrong_type(output: Path, layout_name: str) -> str:
    """Why `-o OUTPUT` cannot hold this layout: a .mpo needs --format mpo, which needs a .mpo."""
    container = photo_container(layout_name)
    if container:
        return f"`output` {output}: `format` {layout_name} writes a {container} file; name it {output.stem}{container}"
    suffix = output.suffix.lower()
    owner = next((name for name, (extension, _, _) in PHOTO_CONTAINERS.items() if extension == suffix), None)
    hint = f"; {suffix} needs `format` {owner}" if owner else ""
    return f"`output` {output}: unsupported output type '{output.suffix}' (use {', '.join(IMAGE_FORMATS)}, or a folder{hint})"


def _empty_folder_hint(skipped: list[PassedOver], recursive: bool) -> str:
    if skipped:
        more = f", and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        return f" (skipped {skipped[0].path.name}: {skipped[0].reason}{more})"
    return "" if recursive else " (use `recursive` to look in sub-folders)"


def _looks_like_file_name(path: Path) -> bool:
    # "out.png" or "out.bmp" name files; "photos.2024" or "out" name folders.
    extension = path.suffix[1:]
    return 0 < len(extension) <= 5 and extension.isalpha()


def _with_suffix(path: Path, suffix: str, extension: str) -> Path:
    return path.with_name(f"{path.stem}{suffix}{extension}")


def _target_folder(source: Path, folder: Path | None, output: Path | None) -> Path:
    if folder is None:
        return output if output is not None else source.parent
    base = output if output is not None else folder.parent / f"{folder.resolve().name}{FOLDER_OUTPUT_SUFFIX}"
    return base / source.parent.relative_to(folder)


def _check_collisions(jobs: list[Job]) -> None:
    sources = {job.source.resolve() for job in jobs}
    seen: dict[Path, Path] = {}
    for job in jobs:
        for target in job.outputs:
            resolved = target.resolve()
            if resolved in sources:
                raise SbsError(f"output {target} would overwrite an input file; choose another `output`")
            if resolved in seen:
                raise SbsError(f"{job.source} and {seen[resolved]} would both be written to {target}")
            seen[resolved] = job.source
