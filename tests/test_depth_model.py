"""Loading depth models (sbsconvert.depth, sbsconvert.hub) without network or downloads.

A tiny randomly initialised Depth Anything (Dinov2 backbone, DPT-style neck) is saved with
`save_pretrained` and loaded back through exactly the code path a real checkpoint takes. The
offline cases point the Hugging Face cache at an empty folder; a positive control puts the tiny
model into that folder under a hub id to show the patched cache really is the one consulted.
"""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from sbsconvert import hub
from sbsconvert.cli import main
from sbsconvert.choices import DEFAULT_DEPTH_MODEL
from sbsconvert.depth import DepthEstimator
from sbsconvert.device import select_compute
from sbsconvert.disparity import normalize
from sbsconvert.errors import SbsError

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CHELSEA = SAMPLES / "chelsea.jpg"
CPU = select_compute("cpu")


def save_tiny_depth_anything(folder: Path, depth_estimation_type: str) -> Path:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
        patch_size=14, image_size=56, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type=depth_estimation_type, max_depth=20,
    )
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(config).eval()
    with torch.no_grad():
        # The relative head ends in a ReLU: with random weights it can output zeros everywhere.
        # A positive last layer keeps the (meaningless but varying) prediction above zero.
        model.head.conv3.weight.abs_()
        model.head.conv3.bias.fill_(0.1)
    processor = DPTImageProcessor(
        size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14, resample=3,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_depth")
    return {kind: save_tiny_depth_anything(root / kind, kind) for kind in ("relative", "metric")}


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache. huggingface_hub reads these paths once at import, so the
    module constants are patched as well as the environment."""
    home = tmp_path / "hf_home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HOME", str(home))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    hub.hub_reachable.cache_clear()
    yield cache
    hub.hub_reachable.cache_clear()


@pytest.fixture
def offline(empty_hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return empty_hub_cache


def scene(height=45, width=70):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x / width, y / height, (x + y) % 7 / 7], axis=2).astype(np.float32)


def raw_prediction(estimator, pixels):
    """The model's own output, resized to the image: what the disparity must be derived from."""
    rgb = Image.fromarray(np.round(pixels * 255).astype(np.uint8))
    with torch.inference_mode():
        inputs = estimator.processor(images=rgb, return_tensors="pt")
        predicted = estimator.model(pixel_values=inputs["pixel_values"]).predicted_depth
    resized = F.interpolate(predicted[:, None].float(), size=pixels.shape[:2], mode="bicubic", align_corners=False)
    return resized[0, 0].numpy()


def test_tiny_relative_model_loads_and_predicts(tiny_models):
    estimator = DepthEstimator(str(tiny_models["relative"]), CPU)
    assert not estimator.predicts_depth
    pixels = scene()
    disparity = estimator(pixels)
    values = disparity.values
    assert values.shape == (45, 70) and not disparity.absolute
    assert np.isfinite(values).all() and values.std() > 0.01
    assert values.min() == 0.0 and values.max() == 1.0
    # Relative models predict inverse depth: used as it is, only rescaled.
    assert np.allclose(values, normalize(raw_prediction(estimator, pixels)), atol=1e-5)


def test_depth_resolution_sets_the_networks_input_size(tiny_models):
    seen = []
    for resolution in (None, 28, 112):
        estimator = DepthEstimator(str(tiny_models["relative"]), CPU, resolution)
        forward = estimator.model.forward
        estimator.model.forward = lambda pixel_values, **kwargs: seen.append(pixel_values.shape[2:]) or forward(
            pixel_values=pixel_values, **kwargs
        )
        assert estimator(scene(180, 280)).values.shape == (180, 280)  # always back at the image size
    # a downscaled image's short side is 56 (the processor's own), 28, 112; aspect kept on multiples
    # of the 14-pixel patch
    assert [tuple(shape) for shape in seen] == [(56, 84), (28, 42), (112, 168)]


def test_metric_model_output_is_inverted(tiny_models):
    estimator = DepthEstimator(str(tiny_models["metric"]), CPU)
    assert estimator.predicts_depth
    pixels = scene()
    values = estimator(pixels).values
    depth = raw_prediction(estimator, pixels)
    assert depth.min() > 0
    assert np.allclose(values, normalize(1.0 / depth), atol=1e-5)
    assert values[np.unravel_index(depth.argmin(), depth.shape)] == 1.0  # nearest point, largest disparity


def test_cached_hub_id_loads_offline(tiny_models, offline):
    """Control for the offline tests below: the patched cache is the one transformers reads."""
    snapshot = offline / "models--tiny--depth-anything" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_models["relative"], snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    estimator = DepthEstimator("tiny/depth-anything", CPU)
    assert estimator(scene()).values.shape == (45, 70)


def assert_offline_message(error, model=DEFAULT_DEPTH_MODEL):
    message = str(error.value)
    assert "\n" not in message
    assert f"'{model}'" in message
    for alternative in ("`disparity`", "local folder", "cache"):
        assert alternative in message


def test_offline_without_cache_is_one_clear_line(offline):
    with pytest.raises(SbsError) as error:
        DepthEstimator(DEFAULT_DEPTH_MODEL, CPU)
    assert_offline_message(error)
    assert str(offline) in str(error.value)  # names the cache it looked in


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def no_proxy_settings(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_unreachable_endpoint_fails_at_once(empty_hub_cache, no_proxy_settings, monkeypatch):
    # Nothing listens on the discard port: the probe is refused at once, no download is tried.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(SbsError) as error:
        DepthEstimator(DEFAULT_DEPTH_MODEL, CPU)
    assert_offline_message(error)
    assert hub.hub_reachable() is False  # it was the probe, not an offline switch, that stopped it


def test_probe_goes_through_a_configured_proxy(no_proxy_settings, monkeypatch):
    # The Hub itself is unreachable, but a proxy listens: downloads would go through it.
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")
    hub.hub_reachable.cache_clear()
    assert hub.hub_reachable() is False
    with socket.create_server(("127.0.0.1", 0)) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
        hub.hub_reachable.cache_clear()
        assert hub.hub_reachable() is True
    hub.hub_reachable.cache_clear()


def test_missing_folder_is_a_clear_error(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(SbsError, match=f"depth model folder '{missing}' does not exist"):
        DepthEstimator(str(missing), CPU)


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: (folder / "config.json").write_text("{not json"),
        lambda folder: (folder / "config.json").write_text('{"model_type": "no-such-architecture"}'),
        lambda folder: (folder / "model.safetensors").unlink(),
        lambda folder: (folder / "model.safetensors").write_bytes(b"truncated"),
        lambda folder: (folder / "config.json").write_text(
            (folder / "config.json").read_text().replace('"fusion_hidden_size": 16', '"fusion_hidden_size": 24')
        ),
    ],
    ids=["bad-json", "unknown-type", "no-weights", "bad-weights", "weights-do-not-fit"],
)
def test_broken_model_folder_is_a_clear_error(tiny_models, tmp_path, damage):
    folder = tmp_path / "broken"
    shutil.copytree(tiny_models["relative"], folder)
    damage(folder)
    with pytest.raises(SbsError, match=f"cannot load depth model from folder '{folder}'") as error:
        DepthEstimator(str(folder), CPU)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("extra", [[], ["--depth-resolution", "112"]])
def test_cli_converts_with_a_local_model_folder(tiny_models, tmp_path, extra):
    out = tmp_path / "out.jpg"
    result = CliRunner().invoke(
        main, [str(CHELSEA), "--depth-model", str(tiny_models["relative"]), "-o", str(out), *extra],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    with Image.open(CHELSEA) as photo, Image.open(out) as pair:
        assert pair.format == "JPEG"
        assert pair.size == (2 * photo.width, photo.height)
        pair.load()


def test_cli_default_model_offline_exits_with_one_error_line(tmp_path):
    # A fresh process: huggingface_hub and transformers read the environment at import, and any
    # library logging would land on the real stderr.
    home = tmp_path / "hf_home"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-m", "sbsconvert", str(CHELSEA), "-o", str(tmp_path / "out.jpg")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and DEFAULT_DEPTH_MODEL in lines[0]
    assert not (tmp_path / "out.jpg").exists()
