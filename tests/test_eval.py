"""Quality evaluation: metrics against known values, dataset loaders, protocols, `sbsconvert eval` end to end."""

import csv
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import run
from sbsconvert.disparity import write_pfm
from sbsconvert.errors import SbsError
from sbsconvert.evaluate.datasets import fill_unknown, find_pairs
from sbsconvert.evaluate.metrics import Lpips, psnr, right_view_masks, ssim, ssim_map
from sbsconvert.evaluate.protocol import PAPER_SIZE, prepare
from sbsconvert.synthetic import render_scene

EVAL_SET = Path(__file__).resolve().parent.parent / "samples" / "eval"
SYNTHETIC_PAIRS = ("layers", "pillars", "slope")


def noise_image(seed=0, shape=(64, 80, 3)):
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


# --- metrics ---------------------------------------------------------------------------------


def test_identical_images_give_infinite_psnr_and_ssim_one():
    image = noise_image()
    assert psnr(image, image) == float("inf")
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-9)
    assert ssim(image, image, channels="rgb") == pytest.approx(1.0, abs=1e-9)


def test_constant_offset_gives_its_psnr():
    image = np.full((32, 32, 3), 0.4, dtype=np.float32)
    # MSE = 0.1^2 = 0.01 -> 20 dB; 0.01^2 -> 40 dB
    assert psnr(image + 0.1, image) == pytest.approx(20.0, abs=1e-4)
    assert psnr(image - 0.01, image) == pytest.approx(40.0, abs=1e-3)


def test_gaussian_noise_psnr_matches_its_sigma():
    image = np.full((256, 256, 3), 0.5)
    sigma = 0.05  # no clipping at 0.5 +- 10 sigma
    noisy = image + np.random.default_rng(1).normal(0, sigma, image.shape)
    assert psnr(noisy, image) == pytest.approx(-20 * np.log10(sigma), abs=0.05)


def test_ssim_of_flat_images_is_the_luminance_term():
    # No variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) with C1 = 0.01^2.
    a, b, c1 = 0.5, 0.6, 0.01**2
    first, second = np.full((20, 20, 3), a), np.full((20, 20, 3), b)
    assert ssim(first, second) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-6)


def test_ssim_map_matches_scikit_image_inside_the_borders():
    metrics = pytest.importorskip("skimage.metrics")
    first = noise_image(2)
    second = np.clip(first + np.random.default_rng(3).normal(0, 0.1, first.shape), 0, 1)
    ours = ssim_map(first, second, channels="rgb")
    _, theirs = metrics.structural_similarity(
        first, second, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=1.0, full=True,
    )
    inside = (slice(5, -5), slice(5, -5))
    assert np.abs(ours[inside] - theirs.mean(axis=2)[inside]).max() < 1e-3


def test_masks_restrict_the_metrics():
    truth = noise_image(4)
    damaged = truth.copy()
    damaged[:, 40:] = np.clip(damaged[:, 40:] + 0.1, 0, 1)
    left_half = np.zeros(truth.shape[:2], dtype=bool)
    left_half[:, :40] = True
    assert psnr(damaged, truth, left_half) == float("inf")
    away_from_damage = np.zeros_like(left_half)
    away_from_damage[:, :30] = True  # beyond the SSIM window's reach (5 pixels)
    assert ssim(damaged, truth, away_from_damage) == pytest.approx(1.0, abs=1e-9)
    assert ssim(damaged, truth, ~left_half) < 0.99
    assert np.isnan(psnr(damaged, truth, np.zeros_like(left_half)))
    # Masked PSNR is over the masked pixels only: a 0.1 offset on all damaged pixels not clipped.
    unclipped = ~left_half & (truth[..., 0] < 0.9) & (truth[..., 1] < 0.9) & (truth[..., 2] < 0.9)
    assert psnr(damaged, truth, unclipped) == pytest.approx(20.0, abs=1e-3)


@pytest.mark.skipif(importlib.util.find_spec("lpips") is not None, reason="lpips is installed")
def test_lpips_without_the_package_says_so_once_and_scores_nan():
    messages = []
    lpips = Lpips(notice=messages.append)
    image = noise_image()
    assert len(messages) == 1 and "LPIPS unavailable" in messages[0]
    assert np.isnan(Lpips.score(lpips.distance_map(image, image)))
    assert len(messages) == 1


def test_occlusion_masks_of_a_hand_made_row():
    # Columns 4-7 are a near strip (disparity 3) in front of a far plane (disparity 1).
    disparity = np.ones((2, 16), dtype=np.float32)
    disparity[:, 4:8] = 3
    masks = right_view_masks(disparity)
    row_hidden = ~masks.non_occluded[0]
    # The strip lands on 1-4, the plane on 0-2 (partly behind the strip) and 7-14: right pixels 5
    # and 6 see the plane where the strip hides it in the left view; 15 lies beyond the left edge.
    assert list(np.flatnonzero(row_hidden)) == [5, 6, 15]
    assert (masks.disoccluded == ~masks.non_occluded).all()


def test_occlusion_masks_agree_with_the_synthetic_scene():
    scene = render_scene(256, 192)
    masks = right_view_masks(scene.disparity)
    assert masks.non_occluded[scene.non_occluded].all()
    assert not (masks.disoccluded & scene.non_occluded).any()
    # Nearly all true disocclusions are found (the rest are sub-pixel slivers at edges).
    assert masks.disoccluded.sum() >= 0.9 * (~scene.non_occluded).sum()


def test_right_pixels_from_unknown_disparity_are_not_scored():
    disparity = np.full((4, 20), 2.0, dtype=np.float32)
    known = np.ones_like(disparity, dtype=bool)
    known[:, 10:12] = False
    masks = right_view_masks(disparity, known)
    assert not masks.scored[:, 8:10].any()  # left 10-11 land on right 8-9
    assert masks.non_occluded[:, :8].all() and masks.non_occluded[:, 10:18].all()
    assert masks.disoccluded[:, 18:].all()


# --- datasets and protocols ------------------------------------------------------------------


def save_rgb(path, pixels):
    Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(path)


def make_middlebury_scene(folder, width=60, height=40, vmax=12.5):
    folder.mkdir(parents=True)
    save_rgb(folder / "im0.png", noise_image(5, (height, width, 3)))
    save_rgb(folder / "im1.png", noise_image(6, (height, width, 3)))
    disparity = np.tile(np.linspace(2, 12, width, dtype=np.float32), (height, 1))
    disparity[:5, :7] = np.inf
    write_pfm(folder / "disp0.pfm", disparity)
    (folder / "calib.txt").write_text(f"cam0=[1 0 0; 0 1 0; 0 0 1]\nndisp=64\nvmin=2\nvmax={vmax}\n")
    return disparity


def test_middlebury_layout(tmp_path):
    disparity = make_middlebury_scene(tmp_path / "Adirondack-perfect")
    make_middlebury_scene(tmp_path / "Bicycle1-perfect", vmax=0)  # no usable vmax: ndisp
    layout, pairs = find_pairs(tmp_path)
    assert layout == "middlebury"
    assert [pair.name for pair in pairs] == ["Adirondack-perfect", "Bicycle1-perfect"]
    sample = pairs[0].load()
    assert sample.left.shape == (40, 60, 3) and sample.left.dtype == np.float32
    assert not sample.known[:5, :7].any() and sample.known[5:].all()
    assert np.allclose(sample.disparity[sample.known], disparity[np.isfinite(disparity)])
    assert (sample.disparity[~sample.known] == 0).all()
    assert sample.max_disparity == 12.5
    assert pairs[1].load().max_disparity == 64
    # One scene folder on its own works too.
    assert find_pairs(tmp_path / "Adirondack-perfect")[1][0].name == "Adirondack-perfect"


def test_kitti_layout(tmp_path):
    training = tmp_path / "training"
    for folder in ("image_2", "image_3", "disp_occ_0"):
        (training / folder).mkdir(parents=True)
    for frame in ("000001_10", "000000_10"):
        save_rgb(training / "image_2" / f"{frame}.png", noise_image(7, (30, 90, 3)))
        save_rgb(training / "image_3" / f"{frame}.png", noise_image(8, (30, 90, 3)))
        encoded = np.zeros((30, 90), dtype=np.uint16)
        encoded[10:, :] = np.round(np.linspace(5, 40, 90) * 256).astype(np.uint16)
        cv2.imwrite(str(training / "disp_occ_0" / f"{frame}.png"), encoded)
    save_rgb(training / "image_2" / "000000_11.png", noise_image(9, (30, 90, 3)))  # not a _10 frame
    layout, pairs = find_pairs(tmp_path)
    assert layout == "kitti"
    assert [pair.name for pair in pairs] == ["000000_10", "000001_10"]
    sample = pairs[0].load()
    assert not sample.known[:10].any() and sample.known[10:].all()
    assert sample.disparity[20, 0] == pytest.approx(5.0) and sample.disparity[20, -1] == pytest.approx(40.0)
    assert sample.max_disparity == pytest.approx(40.0)
    # KITTI under the paper's protocol: scaled to 512 high, then centre-cropped to 512x512.
    pair = prepare(sample, layout, "paper")
    factor = PAPER_SIZE / 30
    assert pair.left.shape == (PAPER_SIZE, PAPER_SIZE, 3) and pair.disparity.shape == (PAPER_SIZE, PAPER_SIZE)
    assert pair.scale == pytest.approx(40.0 * factor, rel=1e-3)
    centre = (5 + 35 * 0.5) * factor  # the crop keeps the middle columns
    assert pair.disparity[400, PAPER_SIZE // 2] == pytest.approx(centre, rel=0.01)
    assert not pair.known[:150].any() and pair.known[200:].all()


def test_generic_layouts(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    save_rgb(flat / "cat_left.png", noise_image(1, (20, 30, 3)))
    save_rgb(flat / "cat_right.png", noise_image(2, (20, 30, 3)))
    values = np.full((20, 30), 4.5, dtype=np.float32)
    values[0, 0] = np.nan
    np.save(flat / "cat_disp.npy", values)
    layout, pairs = find_pairs(flat)
    sample = pairs[0].load()
    assert layout == "generic" and pairs[0].name == "cat"
    assert not sample.known[0, 0] and sample.known.sum() == 20 * 30 - 1
    assert sample.max_disparity == 4.5

    folders = tmp_path / "folders"
    for name in ("left", "right", "disparity"):
        (folders / name).mkdir(parents=True)
    save_rgb(folders / "left" / "a.png", noise_image(1, (20, 30, 3)))
    save_rgb(folders / "right" / "a.png", noise_image(2, (20, 30, 3)))
    write_pfm(folders / "disparity" / "a.pfm", np.full((20, 30), 3.0, dtype=np.float32))
    layout, pairs = find_pairs(folders)
    assert layout == "generic" and pairs[0].load().max_disparity == 3.0

    (flat / "cat_disp.npy").unlink()
    with pytest.raises(SbsError, match="cat_disp"):
        find_pairs(flat)


def test_middlebury_paper_protocol_resizes_and_blurs(tmp_path):
    make_middlebury_scene(tmp_path / "scene", width=100, height=50, vmax=12.5)
    layout, pairs = find_pairs(tmp_path)
    sample = pairs[0].load()
    pair = prepare(sample, layout, "paper")
    assert pair.right.shape == (PAPER_SIZE, PAPER_SIZE, 3)
    assert pair.scale == pytest.approx(12.5 * PAPER_SIZE / 100)
    # Disparities scale with the width; the engines get a blurred copy of the (filled) truth.
    assert pair.disparity[300, 256] == pytest.approx(sample.disparity[25, 50] * PAPER_SIZE / 100, rel=0.02)
    assert not np.allclose(pair.engine_disparity, pair.disparity)
    assert abs(pair.engine_disparity.mean() - pair.disparity.mean()) < 0.05 * pair.disparity.mean()
    native = prepare(sample, layout, "native")
    assert native.left.shape == (50, 100, 3) and (native.engine_disparity == native.disparity).all()


def test_unknown_disparities_take_the_farther_neighbour():
    values = np.array([[5, 0, 0, 2, 2], [0, 0, 0, 0, 0], [0, 7, 0, 0, 0]], dtype=np.float32)
    known = values > 0
    filled = fill_unknown(values, known)
    assert filled[0].tolist() == [5, 2, 2, 2, 2]
    assert filled[1].tolist() == [2] * 5  # no known value on the row: the farthest known
    assert filled[2].tolist() == [7] * 5


# --- the command -----------------------------------------------------------------------------


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_eval_command_on_the_shipped_set(tmp_path):
    report = tmp_path / "report"
    code, output = run("eval", EVAL_SET, "--fill", "background", "--fill", "blank", "-o", report, "-q")
    assert code == 0, output
    assert {p.name for p in report.iterdir()} == {
        "results.md", "results.csv", "pairs.csv", "contact_warp-background.png", "contact_warp-blank.png"
    }
    table = {row["run"]: row for row in read_csv(report / "results.csv")}
    assert set(table) == {"warp/background", "warp/blank"}
    assert table["warp/blank"]["note"] == "paper baseline"
    assert table["warp/blank"]["lpips_all"] == "" or importlib.util.find_spec("lpips")
    pairs = read_csv(report / "pairs.csv")
    assert len(pairs) == 2 * len(list(EVAL_SET.glob("*_left.png")))
    for row in pairs:
        nonocc = float(row["psnr_nonocc"])
        if row["pair"] in SYNTHETIC_PAIRS:
            assert nonocc > 50  # exact disparity on exact data: only interpolation error remains
        else:
            assert 20 < nonocc < 45  # a real pair: exposure and rectification differ a little
        assert float(row["psnr_disocc"]) < float(row["psnr_all"]) < nonocc
    background, blank = (float(table[name]["psnr_disocc"]) for name in ("warp/background", "warp/blank"))
    assert background > blank + 5  # filling beats black holes by far
    assert "| warp/blank (paper baseline) | 4 |" in (report / "results.md").read_text()
    with Image.open(report / "contact_warp-background.png") as sheet:
        assert sheet.width == 4 * 192 + 3 * 4 and sheet.height > 3 * 100

    code, output = run("eval", EVAL_SET, "--fill", "background", "-o", report, "-q")
    assert code == 1 and "already exists" in output and output.count("\n") == 1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda folder: None, "the folder is empty"),
        (lambda folder: save_rgb(folder / "photo.png", noise_image()), "no stereo pairs with disparity found"),
        (lambda folder: (folder / "left").mkdir() or (folder / "right").mkdir(), "no disparity/ folder"),
    ],
)
def test_bad_datasets_give_one_line(tmp_path, make, message):
    dataset = tmp_path / "data"
    dataset.mkdir()
    make(dataset)
    code, output = run("eval", dataset, "-o", tmp_path / "report")
    assert code == 1
    assert output.startswith("error: ") and message in output and output.count("\n") == 1
    assert not (tmp_path / "report").exists()


def test_diffusion_without_weights_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, output = run("eval", EVAL_SET, "--engine", "diffusion", "-o", tmp_path / "report")
    assert code == 1 and output.startswith("error: ") and output.count("\n") == 1


def test_main_help_points_to_eval_and_eval_help_works():
    code, output = run("--help")
    assert code == 0 and "sbsconvert eval --help" in output
    code, output = run("eval", "--help")
    assert code == 0 and "eval [OPTIONS] DATASET_DIR" in output
    for option in ("--engine", "--fill", "--disparity", "--limit", "--protocol", "--output"):
        assert option in output


def test_eval_runs_the_diffusion_engine_with_a_local_model(tmp_path, tiny_sd):
    # A tiny random Stable Diffusion (tests/conftest.py): the numbers mean nothing, the plumbing does.
    report = tmp_path / "report"
    code, output = run("eval", EVAL_SET, "--engine", "all", "--fill", "background", "--model", tiny_sd,
                       "--steps", "2", "--composite", "all", "--spsmd-every", "1", "--limit", "1", "-o", report, "-q")
    assert code == 0, output
    table = {row["run"]: row for row in read_csv(report / "results.csv")}
    assert list(table) == ["warp/background", "diffusion/hybrid", "diffusion/latent"]
    assert 0 < float(table["diffusion/latent"]["psnr_all"]) < 100
    # the hybrid is the warp away from the holes (the random model's noise reaches only the seam band)
    visible = lambda name: float(table[name]["psnr_nonocc"])
    assert visible("diffusion/hybrid") > visible("diffusion/latent") + 10, table
    assert (report / "contact_diffusion-hybrid.png").is_file()


def test_diffusion_options_need_the_diffusion_engine(tmp_path):
    code, output = run("eval", EVAL_SET, "--steps", "3", "-o", tmp_path / "report")
    assert code == 1 and "--steps only apply to --engine diffusion" in output
    code, output = run("eval", EVAL_SET, "--composite", "latent", "--spsmd-every", "2", "-o", tmp_path / "report")
    assert code == 1 and "--spsmd-every, --composite only apply to --engine diffusion" in output
