"""Errors name what the user knows and why it happened: the output (never its temp file), a full disk
or read-only folder once (not once per file), the options as spelled on the command line, only the
outputs that exist, and a disparity map whose shape is not its picture's."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from sbsconvert.cli import main
from sbsconvert.errors import SbsError
from sbsconvert.output import atomic_path
from test_video import disparity_map, make_clip

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
PHOTO, MAP = SAMPLES / "synthetic.png", SAMPLES / "disparity" / "synthetic.pfm"  # both 320x240


def invoke(*args):
    result = CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def album(folder: Path, count: int = 3) -> tuple[Path, Path]:
    photos, maps = folder / "photos", folder / "maps"
    photos.mkdir(), maps.mkdir()
    for index in range(count):
        shutil.copy(PHOTO, photos / f"p{index}.png")
        shutil.copy(MAP, maps / f"p{index}.pfm")
    return photos, maps


def _private_mounts_work() -> bool:
    """A user namespace of our own may mount a tmpfs nobody else sees (no root needed)."""
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                           "mount -t tmpfs none /mnt"], capture_output=True).returncode == 0


needs_private_mounts = pytest.mark.skipif(not _private_mounts_work(), reason="no user namespaces with mounts here")


def sbsconvert_on_tmpfs(folder: Path, mount_options: str, *args) -> subprocess.CompletedProcess:
    """Run sbsconvert with a tmpfs (`mount_options`: "ro", "size=300k"...) over `folder`."""
    script = 'mount -t tmpfs -o "$1" sbs-test "$2" && shift 2 && exec "$@"'
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", mount_options, str(folder),
               sys.executable, "-m", "sbsconvert", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@needs_private_mounts
def test_a_full_disk_is_named_by_its_folder_once_and_stops_the_batch(tmp_path):
    photos, maps = album(tmp_path)
    invoke(photos / "p0.png", "--disparity", maps, "-o", tmp_path / "one.png")
    room = (tmp_path / "one.png").stat().st_size * 3 // 2  # the first output fits, the second does not
    out = tmp_path / "out"
    out.mkdir()
    result = sbsconvert_on_tmpfs(out, f"size={room}", photos, "--disparity", maps, "-o", out, "--json")
    assert result.returncode == 1
    target = out / "p1_LR.png"
    error = f"cannot write {target}: no space left on the device holding {out}"
    assert [line for line in result.stderr.splitlines() if line.startswith("error")] == [f"error: {error}"]
    summary = json.loads(result.stdout)
    assert summary["stopped"] and [entry["input"] for entry in summary["failed"]] == [str(photos / "p1.png")]
    assert summary["failed"][0] == {"input": str(photos / "p1.png"), "outputs": [], "error": error}
    assert len(summary["converted"]) == 1  # p2 is not tried: it would only fill the disk again


@needs_private_mounts
def test_a_read_only_output_folder_is_refused_once_before_any_work(tmp_path):
    photos, maps = album(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    result = sbsconvert_on_tmpfs(out, "ro", photos, "--disparity", maps, "-o", out / "stereo", "--json")
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: cannot write to {out}: Read-only file system"
    summary = json.loads(result.stdout)
    assert summary["refused"] == f"cannot write to {out}: Read-only file system" and summary["failed"] == []


def _limit_file_size() -> None:
    # Writes past 20 kB fail with EFBIG (as on a FAT32 card past 4 GiB) instead of killing us.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


def test_ffmpeg_failing_to_write_names_the_output_not_its_temp_file(tmp_path):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=30, width=320, height=240, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "sbsconvert", str(clip), "--disparity", str(disparity_map(tmp_path, 320, 240)),
               "-o", str(out / "clip_LR.mp4")]
    result = subprocess.run(command, capture_output=True, text=True, preexec_fn=_limit_file_size, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: cannot write {out / 'clip_LR.mp4'}: the file outgrew the largest size "
                                      f"allowed in {out} (4 GiB on FAT32) or by this process's file size limit")
    assert list(out.iterdir()) == []


def test_a_writer_error_about_the_temp_file_names_the_output(tmp_path):
    target = tmp_path / "film_LR.mov"
    with pytest.raises(SbsError) as caught:
        with atomic_path(target, force=False) as temp:
            raise SbsError(f"{temp}: cannot finish the video (Invalid argument returned 22)")
    assert str(caught.value) == f"{target}: cannot finish the video (Invalid argument returned 22)"
    assert list(tmp_path.iterdir()) == []


def test_video_only_options_are_named_as_spelled(tmp_path):
    code, _, stderr = invoke(PHOTO, "--disparity", MAP, "--start", "3", "--end", "5", "-o", tmp_path / "o.png")
    assert code == 1 and stderr.strip() == "error: --start, --end only apply to videos, and no INPUT is a video"


def test_a_failed_job_lists_no_outputs_it_did_not_write(tmp_path):
    photos, maps = album(tmp_path, count=1)
    (photos / "p1.png").write_bytes(b"not a png")
    shutil.copy(MAP, maps / "p1.pfm")
    code, stdout, _ = invoke(photos, "--disparity", maps, "-f", "lr-pair", "-o", tmp_path / "out", "--json", "-q")
    assert code == 1
    summary = json.loads(stdout)
    assert summary["failed"][0]["outputs"] == []
    assert summary["converted"][0]["outputs"] == [str(tmp_path / "out" / name) for name in ("p0_L.png", "p0_R.png")]


def _map(path: Path, width: int, height: int) -> Path:
    np.save(path, np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1)))
    return path


def test_a_disparity_map_of_another_shape_is_refused_naming_both_sizes(tmp_path):
    wide = _map(tmp_path / "wide.npy", 320, 180)
    code, _, stderr = invoke(PHOTO, "--disparity", wide, "-o", tmp_path / "o.png")
    assert code == 1 and stderr.strip() == (
        f"error: disparity map {wide} is 320x180 but {PHOTO} is 320x240: their aspect ratios differ by more than "
        "rounding (2%); give a map of the same shape")
    assert not (tmp_path / "o.png").exists()
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=3, width=96, height=64, audio=False)
    code, _, stderr = invoke(clip, "--disparity", _map(tmp_path / "square.npy", 64, 64), "-o", tmp_path / "o.mp4")
    assert code == 1 and "is 64x64 but" in stderr and "is 96x64" in stderr and not (tmp_path / "o.mp4").exists()


def test_a_map_made_at_a_smaller_size_is_taken(tmp_path):
    """Rounding is not a shape: 320x240 made at 97x73 (72.75 rounded) converts."""
    code, _, stderr = invoke(PHOTO, "--disparity", _map(tmp_path / "small.npy", 97, 73), "-o", tmp_path / "o.png")
    assert code == 0, stderr
    assert Image.open(tmp_path / "o.png").size == (640, 240)
