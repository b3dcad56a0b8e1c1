"""The command line end to end on the shipped samples: files, folders, presets, errors."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES, SYNTHETIC, SYNTHETIC_DISP, run, size_of
from sbsconvert.decode import load_picture



def test_help_explains_every_option():
    code, output = run("--help")
    assert code == 0
    assert "Usage: sbsconvert [OPTIONS] INPUT..." in output
    for option in ("--format", "--engine", "--preset", "--divergence", "--force", "--disparity", "--eye", "--fill"):
        assert option in output


def test_single_photo_with_true_disparity_gives_exact_right_view(tmp_path):
    out = tmp_path / "pair.png"
    code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "--disparity-kind", "pixels", "-o", out)
    assert code == 0, output
    frame = load_picture(out).pixels
    left, right = frame[:, :320], frame[:, 320:]
    truth = np.asarray(Image.open(SAMPLES / "truth" / "synthetic_right.png"), np.float32) / 255
    visible = np.asarray(Image.open(SAMPLES / "truth" / "synthetic_nonocc.png")) > 0
    assert np.array_equal(left, load_picture(SYNTHETIC).pixels)
    # 8-bit PNG round trip: at most one code value apart where the view is predictable.
    assert np.abs(right - truth)[visible].max() <= 4 / 255


def test_default_output_name_next_to_the_photo(tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(SYNTHETIC.read_bytes())
    code, output = run(photo, "--disparity", SYNTHETIC_DISP, "-f", "hsbs")
    assert code == 0, output
    assert size_of(tmp_path / "photo_HSBS.png") == (320, 240)


@pytest.mark.parametrize(
    "layout, names, size",
    [
        ("sbs", ["m_LR.jpg"], (640, 240)),
        ("tb", ["m_TB.jpg"], (320, 480)),
        ("htb", ["m_HOU.jpg"], (320, 240)),
        ("anaglyph", ["m_anaglyph.jpg"], (320, 240)),
        ("crosseye", ["m_RL.jpg"], (640, 240)),
        ("lr-pair", ["m_L.jpg", "m_R.jpg"], (320, 240)),
    ],
)
def test_every_layout_from_the_cli(tmp_path, layout, names, size):
    photo = tmp_path / "m.jpg"
    Image.open(SYNTHETIC).save(photo)
    code, output = run(photo, "--disparity", SYNTHETIC_DISP, "--format", layout)
    assert code == 0, output
    for name in names:
        assert size_of(tmp_path / name) == size


def test_album_folder_with_disparity_folder(tmp_path):
    code, output = run(SAMPLES, "--disparity", SAMPLES / "disparity", "-o", tmp_path / "out", "--quiet")
    assert code == 0, output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["chelsea_LR.jpg", "clip_LR.mp4", "coffee_LR.jpg", "motorcycle_LR.png", "synthetic_LR.png"]
    assert size_of(tmp_path / "out" / "chelsea_LR.jpg") == (2 * 451, 300)


def test_existing_output_needs_force_and_nothing_is_touched(tmp_path):
    out = tmp_path / "o.png"
    out.write_bytes(b"keep me")
    code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "-o", out)
    assert code == 1 and "already exists (use --force" in output
    assert out.read_bytes() == b"keep me"
    code, _ = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "-o", out, "--force")
    assert code == 0 and out.read_bytes().startswith(b"\x89PNG")


def test_preset_sets_layout_and_size_and_flags_override(tmp_path):
    code, output = run(SAMPLES / "motorcycle.png", "--disparity", SAMPLES / "disparity" / "motorcycle.pfm",
                       "--preset", "cardboard", "-o", tmp_path / "c.jpg")
    assert code == 0, output
    assert size_of(tmp_path / "c.jpg") == (740, 500)  # half SBS: two halves of 741 // 2, players split in the middle
    code, output = run(SAMPLES / "motorcycle.png", "--disparity", SAMPLES / "disparity" / "motorcycle.pfm",
                       "--preset", "cardboard", "--format", "sbs", "--max-width", "300", "-o", tmp_path / "d.jpg")
    assert code == 0, output
    assert size_of(tmp_path / "d.jpg") == (600, 202)


def test_divergence_changes_the_right_view(tmp_path):
    outputs = []
    for divergence in ("1", "6"):
        out = tmp_path / f"d{divergence}.png"
        assert run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "--divergence", divergence, "-f", "lr-pair", "-o", out)[0] == 0
        outputs.append(load_picture(tmp_path / f"d{divergence}_R.png").pixels)
    left = load_picture(SYNTHETIC).pixels
    assert np.abs(outputs[0] - left).mean() < np.abs(outputs[1] - left).mean()


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.jpg"], "no such file"),
        (["{tmp}/empty"], "holds no images"),
        (["{tmp}/notes.txt"], "not an image type"),
        (["{tmp}/broken.jpg", "--disparity", str(SYNTHETIC_DISP)], "not a readable image"),
        ([str(SYNTHETIC), "--disparity", "{tmp}/notes.txt"], "not a readable image, .npy"),
        ([str(SYNTHETIC), "--disparity", str(SYNTHETIC)], "colour channels"),
        ([str(SYNTHETIC), "--preset", "nope"], "unknown preset"),
        ([str(SYNTHETIC), "--divergence", "50"], "--divergence"),
        ([str(SYNTHETIC), "-o", str(SYNTHETIC)], "overwrite an input"),
        ([str(SYNTHETIC), "--disparity", str(SYNTHETIC_DISP), "-o", "{tmp}/notes.txt/x.png"], "cannot write"),
    ],
)
def test_bad_input_gives_one_line_and_writes_nothing(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, output = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert code != 0
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], output
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_batch_goes_on_after_a_bad_photo(tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    Image.open(SYNTHETIC).save(album / "good.png")
    (album / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    maps = tmp_path / "maps"
    maps.mkdir()
    for name in ("good", "bad"):
        (maps / f"{name}.pfm").write_bytes(SYNTHETIC_DISP.read_bytes())
    code, output = run(album, "--disparity", maps, "-o", tmp_path / "out")
    assert code == 1
    assert "bad.png: not a readable image" in output and "1 converted, 0 skipped, 1 failed" in output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good_LR.png"]


def test_offline_depth_model_error_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    code, output = run(SYNTHETIC, "-o", tmp_path / "x.png", "--depth-source", "model")
    assert code == 1
    (line,) = output.strip().splitlines()
    assert "depth model 'depth-anything/Depth-Anything-V2-Small-hf'" in line and "--disparity" in line
    assert not (tmp_path / "x.png").exists()


def test_real_process_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sbsconvert", str(tmp_path / "nothing.jpg")], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'nothing.jpg'}: no such file or folder"
    assert "Traceback" not in result.stderr
