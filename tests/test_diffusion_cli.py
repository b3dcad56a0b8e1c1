"""`--engine diffusion`, `--prompt` and `--depth-image` end to end through the CLI, with the tiny
random pipelines of conftest.py given as local model folders."""


import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SYNTHETIC, SYNTHETIC_DISP, run
from sbsconvert import converter
from sbsconvert.batch import JobResult



def pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255


def test_photo_with_diffusion_engine(tmp_path, tiny_sd):
    out = tmp_path / "pair.png"
    code, output = run(
        SYNTHETIC, "--disparity", SYNTHETIC_DISP, "--engine", "diffusion", "--model", tiny_sd, "--steps", "3", "-o", out, "-v"
    )
    assert code == 0, output
    pair = pixels(out)
    assert pair.shape == (240, 640, 3)
    # the left half is the photo itself; the right half is the generated view, not a copy
    assert np.abs(pair[:, :320] - pixels(SYNTHETIC)).max() <= 1 / 255
    assert np.abs(pair[:, 320:] - pair[:, :320]).mean() > 0.01
    assert "inversion" in output and "denoise" in output  # per-stage times with --verbose


def test_hybrid_right_eye_is_the_warp_engines_away_from_the_holes(tmp_path, tiny_sd):
    eyes = {}
    diffusion = ["--engine", "diffusion", "--model", tiny_sd, "--steps", "2"]
    for name, engine in (("warp", ["--engine", "warp"]), ("hybrid", diffusion), ("latent", [*diffusion, "--composite", "latent"])):
        out = tmp_path / f"{name}.png"
        code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, *engine, "-o", out, "-q")
        assert code == 0, output
        eyes[name] = pixels(out)[:, 320:]
    same = lambda view: np.all(view == eyes["warp"], axis=2).mean()
    assert same(eyes["hybrid"]) > 0.85 and same(eyes["latent"]) < 0.05


def test_every_ablation_switch_runs(tmp_path, tiny_sd):
    out = tmp_path / "ablation.png"
    code, output = run(
        SYNTHETIC, "--disparity", SYNTHETIC_DISP, "--engine", "diffusion", "--model", tiny_sd, "--steps", "2",
        "--attention", "off", "--no-spsmd", "--deblur", "--inversion", "null-text", "--guidance", "3",
        "--prompt", "a test scene", "--shift-step", "0.5", "--seed", "7", "--resolution", "96", "-o", out, "-q",
    )  # fmt: skip
    assert code == 0, output
    assert Image.open(out).size == (640, 240)


def test_same_seed_same_output(tmp_path, tiny_sd):
    outputs = []
    for name in ("a.png", "b.png"):
        out = tmp_path / name
        code, output = run(
            SYNTHETIC, "--disparity", SYNTHETIC_DISP, "--engine", "diffusion", "--model", tiny_sd, "--steps", "2",
            "--deblur", "--seed", "5", "-o", out, "-q",
        )  # fmt: skip
        assert code == 0, output
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_text_to_stereo(tmp_path, tiny_sd):
    out = tmp_path / "fox_LR.png"
    code, output = run(
        "--prompt", "a red fox", "--model", tiny_sd, "--steps", "3", "--disparity", SYNTHETIC_DISP,
        "--resolution", "128", "--divergence", "8", "-o", out, "-q",
    )  # fmt: skip
    assert code == 0, output
    pair = pixels(out)
    assert pair.shape == (128, 256, 3)  # --resolution per eye
    assert not np.array_equal(pair[:, :64], pair[:, 64:])


def test_depth_to_stereo(tmp_path, tiny_sd_depth):
    out = tmp_path / "room.png"
    code, output = run(
        "--prompt", "a room", "--depth-image", SYNTHETIC_DISP, "--model", tiny_sd_depth, "--steps", "3",
        "-f", "lr-pair", "-o", out, "-q",
    )  # fmt: skip
    assert code == 0, output
    left, right = tmp_path / "room_L.png", tmp_path / "room_R.png"
    assert Image.open(left).size == Image.open(right).size == (320, 240)  # the depth map's size


@pytest.mark.parametrize(
    "args, message",
    [
        (["--prompt", "a fox"], "name the file to write with -o"),
        (["-o", "x.jpg"], "no INPUT given"),
        ([str(SYNTHETIC), "--steps", "3"], "--steps only apply to --engine diffusion"),
        ([str(SYNTHETIC), "--seed", "0"], "--seed only apply to --engine diffusion"),  # 0 is a given value
        ([str(SYNTHETIC), "--depth-image", str(SYNTHETIC_DISP)], "--depth-image generates a new image"),
        (["--prompt", "a fox", "--engine", "warp", "-o", "x.jpg"], "drop --engine warp"),
        (["--prompt", "a fox", "-o", "x.mp3"], "give an image file name"),
        ([str(SYNTHETIC), "--engine", "diffusion", "--inversion", "exact"], "Invalid value for '--inversion'"),
        ([str(SYNTHETIC), "--engine", "diffusion", "--spsmd-every", "0"], "Invalid value for '--spsmd-every'"),
        ([str(SYNTHETIC), "--engine", "diffusion", "--spsmd-every", "5", "--no-spsmd"], "contradicts --no-spsmd"),
        ([str(SYNTHETIC), "--spsmd-every", "5"], "--spsmd-every only apply to --engine diffusion"),
        ([str(SYNTHETIC), "--composite", "latent"], "--composite only apply to --engine diffusion"),
        ([str(SYNTHETIC), "--fill-resolution", "native"], "--fill-resolution only apply to --engine diffusion"),
        ([str(SYNTHETIC), "--engine", "diffusion", "--composite", "latent", "--fill-resolution", "native"],
         "it needs --composite hybrid"),
        (["--prompt", "a fox", "--fill-resolution", "native", "-o", "x.png"], "made at the model's resolution"),
        (["--prompt", "a fox", "--input-layout", "sbs", "-o", "x.png"], "it does not apply to --prompt"),
        ([str(SYNTHETIC), "--precision", "bf16"], "--precision only apply to --engine diffusion"),
        ([str(SYNTHETIC), "--engine", "diffusion", "--precision", "fp16", "--device", "cpu"], "fp16 is not supported on the CPU"),
    ],
)
def test_option_mistakes_are_one_line(tmp_path, args, message):
    code, output = run(*[a.replace("x.", str(tmp_path / "x.")) for a in args])
    assert code != 0
    assert message in output
    assert "Traceback" not in output
    assert not list(tmp_path.iterdir())


def test_depth_image_with_a_plain_model_is_refused(tmp_path, tiny_sd):
    out = tmp_path / "x.png"
    code, output = run("--prompt", "a room", "--depth-image", SYNTHETIC_DISP, "--model", tiny_sd, "-o", out)
    assert code == 1 and "not a depth model" in output and not out.exists()


def test_missing_model_is_one_line(tmp_path):
    out = tmp_path / "x.png"
    code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "--engine", "diffusion", "--model", tmp_path / "none", "-o", out)
    assert code == 1 and "does not exist" in output and not out.exists()
    assert len([line for line in output.splitlines() if line.strip()]) <= 2


@pytest.fixture
def converted(monkeypatch):
    """What the CLI hands the still-image pipeline: (ConvertSettings, engine) per photo; nothing is rendered."""
    calls = []

    def record(job, settings, engine, disparity_for):
        calls.append((settings, engine))
        return JobResult()

    monkeypatch.setattr(converter, "convert_image", record)
    return calls


def test_paper_preset_sets_every_paper_value(tmp_path, tiny_sd, converted):
    code, output = run(SYNTHETIC, "--preset", "paper", "--model", tiny_sd, "-o", tmp_path / "p.png", "-q")
    assert code == 0, output
    ((settings, engine),) = converted
    assert engine.name == "diffusion" and settings.divergence == 8.0
    diffusion = engine.settings
    assert (diffusion.inversion, diffusion.guidance, diffusion.steps, diffusion.shift_index) == ("null-text", 7.5, 50, 10)
    assert (diffusion.spsmd, diffusion.spsmd_every, diffusion.composite) == (True, 10, "latent")
    assert engine.compute.dtype == torch.float32 and engine.model.unet.dtype == torch.float32


def test_options_override_the_paper_preset(tmp_path, tiny_sd, converted):
    code, output = run(SYNTHETIC, "--preset", "paper", "--model", tiny_sd, "--steps", "4", "--composite", "hybrid",
                       "--no-spsmd", "--precision", "bf16", "--divergence", "2", "-o", tmp_path / "p.png", "-q")
    assert code == 0, output
    ((settings, engine),) = converted
    assert (engine.settings.steps, engine.settings.composite, engine.settings.spsmd) == (4, "hybrid", False)
    assert engine.compute.dtype == torch.bfloat16 and settings.divergence == 2.0
    assert engine.settings.inversion == "null-text"  # the rest still comes from the preset


def test_paper_preset_with_the_warp_engine_is_one_line(tmp_path):
    code, output = run(SYNTHETIC, "--preset", "paper", "--engine", "warp", "-o", tmp_path / "p.png")
    assert code == 1 and output.strip() == "error: preset paper sets diffusion engine settings; it does not apply to --engine warp"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "text, message",
    [
        ('engine = "diffusion"\n[diffusion]\nstep = 50\n', "[diffusion]: unknown setting 'step'"),
        ('engine = "diffusion"\n[diffusion]\nsteps = "many"\n', "'steps' has the wrong type"),
        ('[diffusion]\nsteps = 50\n', 'a [diffusion] table needs engine = "diffusion"'),
    ],
)
def test_bad_diffusion_tables_in_presets(tmp_path, text, message):
    preset = tmp_path / "mine.toml"
    preset.write_text(text)
    code, output = run(SYNTHETIC, "--preset", preset, "-o", tmp_path / "p.png")
    assert code == 1 and message in output and len(output.strip().splitlines()) == 1
