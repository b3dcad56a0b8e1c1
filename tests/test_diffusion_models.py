"""A tiny, randomly initialised Stable Diffusion saved as a diffusers pipeline folder, loaded
through the engine's real from_pretrained path; loading and offline errors.

Other diffusion test files import the fixtures from here (`from test_diffusion_models import ...`).
"""

import json

import numpy as np
import pytest
import torch

from sbsconvert.device import Compute
from sbsconvert.engines import create_engine
from sbsconvert.engines.diffusion import DiffusionEngine, DiffusionSettings
from sbsconvert.engines.diffusion.settings import DEFAULT_SD_MODEL
from sbsconvert.errors import SbsError

CPU = Compute(torch.device("cpu"), torch.float32)
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def write_tokenizer_files(folder):
    """A CLIP BPE vocabulary of single letters (no merges): enough to tokenise any lower-case prompt."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in LETTERS:
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return len(vocab)


def build_tiny_pipeline(folder, depth=False):
    """Save a random SD-shaped pipeline (UNet 32/64 channels, 8-times VAE, 2-layer CLIP) to `folder`."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=5 if depth else 4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
    )
    vocab_folder = folder / "vocab"
    vocab_size = write_tokenizer_files(vocab_folder)
    tokenizer = CLIPTokenizer(
        vocab_file=str(vocab_folder / "vocab.json"), merges_file=str(vocab_folder / "merges.txt"), model_max_length=77
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    """Folder of a tiny random SD 1.x-shaped pipeline (native size 64x64)."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="session")
def tiny_sd_depth(tmp_path_factory):
    """Folder of a tiny random SD 2 depth-shaped pipeline (UNet takes latent + depth channels)."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny_sd_depth"), depth=True)


def make_engine(folder, **options):
    options = {"steps": 10, "progress": False, **options}
    return DiffusionEngine(DiffusionSettings(model=str(folder), **options), CPU)


def test_pipeline_folder_loads_through_create_engine(tiny_sd):
    engine = create_engine("diffusion", CPU, model=str(tiny_sd), steps=5, progress=False)
    model = engine.model
    assert (model.vae_scale, model.size_multiple, model.native_size, model.extra_channels) == (8, 16, 64, 0)
    assert not any(p.requires_grad for p in model.unet.parameters())
    processors = model.unet.attn_processors
    attn1 = [name for name in processors if name.endswith("attn1.processor")]
    assert len(attn1) == 4 and all(type(processors[n]).__name__ == "StereoAttnProcessor" for n in attn1)
    assert all(type(p).__name__ != "StereoAttnProcessor" for n, p in processors.items() if n not in attn1)


def test_processing_size_keeps_aspect_on_model_multiples(tiny_sd):
    engine = make_engine(tiny_sd)
    assert engine._processing_size(64, 64) == (64, 64)
    assert engine._processing_size(741, 500) == (80, 48)  # area ~64^2, sides multiples of 16
    assert engine._processing_size(4000, 100) == (400, 16)
    assert make_engine(tiny_sd, resolution=128)._processing_size(100, 100) == (128, 128)


@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks`")  # diffusers' call into huggingface_hub
def test_missing_model_offline_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(SbsError) as caught:
        DiffusionEngine(DiffusionSettings(), CPU)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert f"Stable Diffusion model '{DEFAULT_SD_MODEL}'" in message and "--engine warp" in message


def test_missing_local_folder_and_non_model_folder(tmp_path):
    with pytest.raises(SbsError, match="does not exist"):
        DiffusionEngine(DiffusionSettings(model=str(tmp_path / "nope")), CPU)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SbsError, match="cannot load Stable Diffusion model from folder"):
        DiffusionEngine(DiffusionSettings(model=str(tmp_path / "empty")), CPU)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"inversion": "exact"}, "unknown inversion"),
        ({"attention": "both"}, "unknown attention mode"),
        ({"steps": 0}, "steps must be"),
        ({"shift_step": 1.0}, "shift step"),
        ({"guidance": 0.5}, "guidance must be"),
    ],
)
def test_bad_settings_are_clear_errors(options, message):
    with pytest.raises(SbsError, match=message):
        DiffusionSettings(**options)


def test_shift_index_leaves_at_least_one_joint_step():
    assert DiffusionSettings(steps=50).shift_index == 10
    assert DiffusionSettings(steps=3, shift_step=0.9).shift_index == 2
    assert DiffusionSettings(steps=10, shift_step=0.0).shift_index == 0


def test_depth_model_and_plain_model_refuse_the_other_mode(tiny_sd, tiny_sd_depth):
    from sbsconvert.engines.base import StereoRequest

    image = np.zeros((64, 64, 3), np.float32)
    request = StereoRequest(image=image, nearness=np.zeros((64, 64), np.float32), shift=np.zeros((64, 64), np.float32))
    with pytest.raises(SbsError, match="depth-conditioned model"):
        make_engine(tiny_sd_depth).render(request)
    from sbsconvert.disparity import Disparity

    depth = Disparity(np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64))
    with pytest.raises(SbsError, match="not a depth model"):
        make_engine(tiny_sd).generate(divergence=3, depth=depth)
