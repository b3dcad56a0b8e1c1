"""The Python API (sbsconvert.StereoConverter): the same outputs as the command line, models loaded
once, every image type in, every layout out; and errors below the CLI in the domain's words."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SAMPLES, SYNTHETIC, SYNTHETIC_DISP, run
from sbsconvert import StereoConverter
from sbsconvert.cli import OPTION_OF, convert as convert_command
from sbsconvert.errors import SbsError
from sbsconvert.layout import LAYOUTS, compose
from sbsconvert.output import quantize
from test_depth_model import save_tiny_depth_anything

PACKAGE = Path(__file__).resolve().parent.parent / "sbsconvert"
CLIP, CLIP_DISP = SAMPLES / "clip.mp4", SAMPLES / "disparity" / "clip.png"


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("source, disparity, options, api", [
    (SYNTHETIC, SYNTHETIC_DISP, ["-f", "anaglyph", "--divergence", "4"], {"format": "anaglyph", "divergence": 4}),
    (SYNTHETIC, SYNTHETIC_DISP, ["--preset", "quest3", "--max-width", "200"], {"preset": "quest3", "max_eye_width": 200}),
    (CLIP, CLIP_DISP, ["-f", "tb", "--crf", "30"], {"format": "tb", "crf": 30}),
])
def test_api_writes_what_the_cli_writes(tmp_path, source, disparity, options, api):
    cli_out, api_out = tmp_path / "cli", tmp_path / "api"
    code, output = run(source, "--disparity", disparity, "-o", cli_out, *options)
    assert code == 0, output
    preset = api.pop("preset", None)
    summary = StereoConverter(preset=preset, disparity=disparity, **api).convert(source, api_out)
    assert [outcome.status for outcome in summary.outcomes] == ["converted"]
    cli_files, api_files = files_of(cli_out), files_of(api_out)
    assert cli_files and cli_files == api_files


def test_api_album_equals_cli_album(tmp_path):
    album, maps = tmp_path / "album", tmp_path / "maps"
    album.mkdir(), maps.mkdir()
    for name in ("synthetic.png", "chelsea.jpg"):
        shutil.copy(SAMPLES / name, album / name)
    shutil.copy(SYNTHETIC_DISP, maps / "synthetic.pfm")
    shutil.copy(SAMPLES / "disparity" / "chelsea.png", maps / "chelsea.png")
    code, output = run(album, "--disparity", maps, "-o", tmp_path / "cli", "-f", "hsbs")
    assert code == 0, output
    done = []
    conv = StereoConverter(disparity=maps, format="hsbs")
    summary = conv.convert([album], tmp_path / "api", progress=lambda count, total: done.append((count, total)))
    assert len(summary.with_status("converted")) == 2 and done[-1] == (2, 2)
    assert files_of(tmp_path / "cli") == files_of(tmp_path / "api") != {}
    again = conv.convert(album, tmp_path / "api", skip_existing=True)  # overrides per call
    assert [outcome.status for outcome in again.outcomes] == ["skipped", "skipped"]


@pytest.mark.parametrize("segment_seconds", [None, 1])
def test_progress_follows_a_videos_frames(tmp_path, segment_seconds):
    """While a video is written, `progress` hears the share of its frames done: it rises from 0 to
    the whole job, in one piece and in segments (counted over the whole video, not per segment)."""
    heard = []
    extra = {} if segment_seconds is None else {"segment_seconds": segment_seconds}
    conv = StereoConverter(disparity=CLIP_DISP)
    summary = conv.convert(CLIP, tmp_path / "clip_LR.mp4", progress=lambda done, total: heard.append((done, total)),
                           **extra)
    assert len(summary.with_status("converted")) == 1
    shares = [done for done, total in heard]
    assert all(total == 1 for _, total in heard) and shares == sorted(shares) and shares[-1] == 1
    assert len([share for share in shares if 0 < share < 1]) >= 10  # frame by frame, not only at the end


def test_converter_loads_its_depth_model_once(tmp_path, monkeypatch):
    from transformers import AutoModelForDepthEstimation

    model = save_tiny_depth_anything(tmp_path / "tiny", "relative")
    loads = []
    original = AutoModelForDepthEstimation.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(args[0])
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForDepthEstimation, "from_pretrained", classmethod(counting))
    conv = StereoConverter(depth_model=str(model), device="cpu")
    assert loads == []  # lazily, on first use
    image = np.asarray(Image.open(SYNTHETIC))
    first, second = conv(image), conv(image)
    conv.convert(SYNTHETIC, tmp_path / "out.png")
    assert loads == [str(model)]
    np.testing.assert_array_equal(first.right, second.right)
    assert (tmp_path / "out.png").is_file()


def test_numpy_pil_and_torch_images_give_one_pair():
    conv = StereoConverter(disparity=SYNTHETIC_DISP)
    photo = Image.open(SYNTHETIC).convert("RGB")
    as_numpy = np.asarray(photo)
    pairs = [conv(photo), conv(as_numpy), conv(as_numpy.astype(np.float32) / 255),
             conv(torch.from_numpy(as_numpy.copy()).permute(2, 0, 1)),
             conv(torch.from_numpy(as_numpy.copy()).permute(2, 0, 1).float() / 255)]
    for pair in pairs[1:]:
        np.testing.assert_allclose(pair.left, pairs[0].left, atol=1e-6)
        np.testing.assert_allclose(pair.right, pairs[0].right, atol=1e-6)
    assert pairs[0].right.shape == (240, 320, 3) and not np.array_equal(pairs[0].left, pairs[0].right)


def test_a_given_disparity_replaces_the_model_and_the_cli_agrees(tmp_path):
    from sbsconvert.disparity import read_pfm

    pair = StereoConverter()(Image.open(SYNTHETIC), disparity=read_pfm(SYNTHETIC_DISP))
    code, _ = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "-o", tmp_path / "cli.png")
    assert code == 0
    np.testing.assert_array_equal(np.asarray(pair.compose("sbs")), np.asarray(Image.open(tmp_path / "cli.png")))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_compose_matches_layout_compose(layout):
    pair = StereoConverter(disparity=SYNTHETIC_DISP)(Image.open(SYNTHETIC))
    frames = compose(pair.left, pair.right, layout)
    assert all(np.array_equal(a, b) for a, b in zip(pair.frames(layout), frames)) and len(pair.frames(layout)) == len(frames)
    if len(frames) == 1:
        np.testing.assert_array_equal(np.asarray(pair.compose(layout)), quantize(frames[0], 255, np.uint8))
    else:
        with pytest.raises(SbsError, match="holds two images"):
            pair.compose(layout)


def test_library_errors_name_settings_and_the_cli_names_options(tmp_path):
    (tmp_path / "out.png").write_bytes(b"taken")
    conv = StereoConverter(disparity=SYNTHETIC_DISP)
    with pytest.raises(SbsError) as refused:
        conv.convert(SYNTHETIC, tmp_path / "out.png")
    assert str(refused.value) == f"{tmp_path / 'out.png'} already exists (use `force` to overwrite, `skip_existing` to keep it)"
    code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "-o", tmp_path / "out.png")
    assert code == 1 and "already exists (use --force to overwrite, --skip-existing to keep it)" in output
    with pytest.raises(SbsError, match=r"^`spsmd_every` sets how often SPSMD runs; it contradicts `spsmd=False`$"):
        StereoConverter(engine="diffusion", spsmd=False, spsmd_every=3)


FLAG = re.compile(r"(?<![\w-])--?[a-z][a-z0-9-]*\b")


def raised_texts(path: Path) -> list[tuple[int, str]]:
    """The string pieces of every `raise` in a module, with the module-level and local string
    constants the raise names (hints and alternatives built before it)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assigned: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            pieces = [sub.value for sub in ast.walk(node.value) if isinstance(sub, ast.Constant) and isinstance(sub.value, str)]
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).extend(pieces)
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for sub in ast.walk(node.exc):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    texts.append((node.lineno, sub.value))
                elif isinstance(sub, ast.Name):
                    texts.extend((node.lineno, text) for text in assigned.get(sub.id, []))
    return texts


def test_no_error_below_the_command_line_names_an_option():
    """Messages raised below the command line (cli.py, the eval and serve commands) name settings,
    never options; the command line spells them as options (OPTION_OF)."""
    commands = {PACKAGE / "cli.py", PACKAGE / "evaluate" / "command.py", PACKAGE / "serve" / "__init__.py"}
    found = [f"{path.relative_to(PACKAGE)}:{line}: {text!r}" for path in sorted(PACKAGE.rglob("*.py"))
             if path not in commands for line, text in raised_texts(path) if FLAG.search(text.replace("`", " "))]
    assert found == []
    # The scan sees what it looks for: cli.py's own messages name options.
    assert any(FLAG.search(text) for _, text in raised_texts(PACKAGE / "cli.py"))


def test_every_setting_named_in_an_error_is_an_option_of_the_command_line():
    options = {option for parameter in convert_command.params for option in parameter.opts + parameter.secondary_opts}
    named = {match for path in PACKAGE.rglob("*.py") for _, text in raised_texts(path)
             for match in re.findall(r"`([a-z_]+(?:=\w+)?)`", text)}
    named -= {"settings"}  # the Python API's own (a converter built from a Settings object)
    assert named
    spelled = {name: OPTION_OF.get(name, "--" + name.replace("_", "-")) for name in named}
    assert {name: option for name, option in spelled.items() if option not in options} == {}


def test_import_is_light():
    """Neither importing sbsconvert nor naming its converter loads torch: a converter's first
    image or conversion does."""
    code = ("import sys, numpy, sbsconvert; assert 'torch' not in sys.modules; conv = sbsconvert.StereoConverter(); "
            "assert 'torch' not in sys.modules; conv(numpy.zeros((8, 8, 3), numpy.uint8), disparity=numpy.eye(8)); "
            "assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)


def test_cluster_workers_get_picklable_settings_and_build_the_same_converter(tmp_path):
    """--cluster hands each worker an Assembly (settings, no closures): plain pickle carries it and
    the worker's rebuilt converter writes what the command line writes."""
    import pickle

    from sbsconvert.converter import Assembly
    from sbsconvert.core import Job
    from sbsconvert.settings import build_settings

    assembly = Assembly(build_settings({"disparity": SYNTHETIC_DISP, "format": "tb", "verbosity": 0}))
    _, convert_photo, convert_part = pickle.loads(pickle.dumps(assembly))()
    convert_photo(Job(SYNTHETIC, [tmp_path / "worker.png"]))
    code, _ = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "-f", "tb", "-o", tmp_path / "cli.png")
    assert code == 0 and convert_part is None
    assert (tmp_path / "worker.png").read_bytes() == (tmp_path / "cli.png").read_bytes()
