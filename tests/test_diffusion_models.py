"""Loading a Stable Diffusion checkpoint through the real from_pretrained path (the tiny random
pipeline of conftest.py); offline and bad-folder errors; settings validation."""

import numpy as np
import pytest
import torch

from conftest import CPU, make_engine
from sbsconvert.engines import create_engine
from sbsconvert.engines.diffusion import DiffusionEngine, DiffusionSettings
from sbsconvert.engines.diffusion.settings import DEFAULT_SD_MODEL
from sbsconvert.errors import SbsError


def test_pipeline_folder_loads_through_create_engine(tiny_sd):
    engine = create_engine("diffusion", CPU, model=str(tiny_sd), steps=5, progress=False)
    model = engine.model
    assert (model.vae_scale, model.size_multiple, model.native_size, model.extra_channels) == (8, 16, 64, 0)
    assert not any(p.requires_grad for p in model.unet.parameters())
    processors = model.unet.attn_processors
    attn1 = [name for name in processors if name.endswith("attn1.processor")]
    assert len(attn1) == 4 and all(type(processors[n]).__name__ == "StereoAttnProcessor" for n in attn1)
    assert all(type(p).__name__ != "StereoAttnProcessor" for n, p in processors.items() if n not in attn1)


def test_the_cross_attention_and_the_vaes_attention_use_scaled_dot_product_attention(tiny_sd):
    model = make_engine(tiny_sd).model
    # diffusers' own processor, which calls F.scaled_dot_product_attention like the stereo attn1 one
    for net in (model.unet, model.vae):
        others = [p for name, p in net.attn_processors.items() if not name.endswith("attn1.processor")]
        assert others and all(type(p).__name__ == "AttnProcessor2_0" for p in others)


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
    assert f"Stable Diffusion model '{DEFAULT_SD_MODEL}'" in message and "`engine` warp" in message


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


def test_prompts_reach_the_text_encoder(tiny_sd):
    # Guards the test model itself: a tokenizer that read no vocabulary maps every prompt to
    # end-of-text, and every prompt-dependent test would then pass without testing anything.
    model = make_engine(tiny_sd).model
    assert model.tokenizer("ab").input_ids != model.tokenizer("ba").input_ids
    assert model.tokenizer.unk_token_id not in model.tokenizer("a red fox").input_ids[1:-1]
    assert not torch.equal(model.encode_text("a red fox"), model.encode_text(""))
