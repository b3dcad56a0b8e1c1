"""Planning outputs for inputs, and presets."""

from pathlib import Path

import pytest

from sbsconvert.core import natural_key
from sbsconvert.errors import SbsError
from sbsconvert.jobs import images_in_folder, plan_jobs
from sbsconvert.layout import LAYOUTS
from sbsconvert.presets import load_preset, preset_names


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_file_output_next_to_input_with_layout_suffix(tmp_path):
    photo = touch(tmp_path / "beach.jpg")
    (job,) = plan_jobs([photo], None, "sbs", None, recursive=False)
    assert job.outputs == [tmp_path / "beach_LR.jpg"]
    (job,) = plan_jobs([photo], None, "hsbs", "png", recursive=False)
    assert job.outputs == [tmp_path / "beach_HSBS.png"]
    (job,) = plan_jobs([photo], None, "lr-pair", None, recursive=False)
    assert job.outputs == [tmp_path / "beach_L.jpg", tmp_path / "beach_R.jpg"]


def test_explicit_output_file_and_pair(tmp_path):
    photo = touch(tmp_path / "a.heic")
    (job,) = plan_jobs([photo], tmp_path / "x.png", "tb", None, recursive=False)
    assert job.outputs == [tmp_path / "x.png"]
    (job,) = plan_jobs([photo], tmp_path / "x.png", "lr-pair", None, recursive=False)
    assert job.outputs == [tmp_path / "x_L.png", tmp_path / "x_R.png"]
    (job,) = plan_jobs([photo], tmp_path / "outdir", "sbs", None, recursive=False)
    assert job.outputs == [tmp_path / "outdir" / "a_LR.jpg"]  # HEIC is written as JPEG


def test_folder_mirrors_tree_and_skips_our_outputs(tmp_path):
    album = tmp_path / "Album"
    for name in ("b10.jpg", "b2.jpg", "sub/c.png", ".hidden/d.jpg", "b2_LR.jpg", "notes.txt"):
        touch(album / name)
    flat = plan_jobs([album], None, "sbs", None, recursive=False)
    assert [job.source.name for job in flat] == ["b2.jpg", "b10.jpg"]
    deep = plan_jobs([album], None, "sbs", None, recursive=True)
    assert [job.outputs[0] for job in deep] == [
        tmp_path / "Album_stereo" / "b2_LR.jpg",
        tmp_path / "Album_stereo" / "b10_LR.jpg",
        tmp_path / "Album_stereo" / "sub" / "c_LR.png",
    ]
    into = plan_jobs([album], tmp_path / "out", "sbs", None, recursive=True)
    assert into[2].outputs == [tmp_path / "out" / "sub" / "c_LR.png"]


def test_empty_folder_non_image_and_missing_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SbsError, match="holds no images"):
        plan_jobs([tmp_path / "empty"], None, "sbs", None, recursive=False)
    with pytest.raises(SbsError, match="not an image type"):
        plan_jobs([touch(tmp_path / "doc.pdf")], None, "sbs", None, recursive=False)
    with pytest.raises(SbsError, match="no such file"):
        plan_jobs([tmp_path / "ghost.jpg"], None, "sbs", None, recursive=False)


def test_output_equal_to_input_and_collisions(tmp_path):
    photo = touch(tmp_path / "p.jpg")
    with pytest.raises(SbsError, match="overwrite an input"):
        plan_jobs([photo], photo, "sbs", None, recursive=False)
    other = touch(tmp_path / "sub" / "p.jpg")
    with pytest.raises(SbsError, match="both be written"):
        plan_jobs([photo, other], tmp_path / "out", "sbs", None, recursive=False)


def test_natural_order():
    names = [Path(n) for n in ("f10.png", "f2.png", "F1.png")]
    assert [p.name for p in sorted(names, key=natural_key)] == ["F1.png", "f2.png", "f10.png"]


def test_images_in_folder_ignores_non_images(tmp_path):
    touch(tmp_path / "a.JPG")
    touch(tmp_path / "b.txt")
    assert [p.name for p in images_in_folder(tmp_path, recursive=False)] == ["a.JPG"]


def test_shipped_presets_load():
    names = preset_names()
    assert {"vision-pro", "quest3", "cardboard"} <= set(names)
    for name in names:
        preset = load_preset(name)
        assert preset["format"] in LAYOUTS
        assert 0 < preset["divergence"] <= 10


def test_bad_presets(tmp_path):
    with pytest.raises(SbsError, match="unknown preset 'nope'.*quest3"):
        load_preset("nope")
    (tmp_path / "typo.toml").write_text('formatt = "sbs"\n')
    with pytest.raises(SbsError, match="unknown setting 'formatt'"):
        load_preset(str(tmp_path / "typo.toml"))
    (tmp_path / "type.toml").write_text('divergence = "lots"\n')
    with pytest.raises(SbsError, match="wrong type"):
        load_preset(str(tmp_path / "type.toml"))
    (tmp_path / "broken.toml").write_text("format = \n")
    with pytest.raises(SbsError, match="not valid TOML"):
        load_preset(str(tmp_path / "broken.toml"))
