"""Shared test helpers: the shipped samples, a CLI runner, and tiny randomly initialised Stable
Diffusion pipelines saved as diffusers folders, so every diffusion test loads them through the
engine's real from_pretrained path."""

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from sbsconvert.cli import main
from sbsconvert.device import Compute
from sbsconvert.engines.diffusion import DiffusionEngine, DiffusionSettings
from sbsconvert.engines.diffusion.random_model import TINY, save_random_pipeline

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SYNTHETIC = SAMPLES / "synthetic.png"
SYNTHETIC_DISP = SAMPLES / "disparity" / "synthetic.pfm"
CPU = Compute(torch.device("cpu"), torch.float32)

# The test models are tiny: with several threads their calls spend more time synchronising threads
# than computing (measured 11 ms per tiny UNet call on one thread, over 1 s on two threads of a busy
# 2-core machine).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    """Folder of a tiny random SD 1.x-shaped pipeline (native size 64x64)."""
    return save_random_pipeline(tmp_path_factory.mktemp("tiny_sd"), TINY)


@pytest.fixture(scope="session")
def tiny_sd_depth(tmp_path_factory):
    """Folder of a tiny random SD 2 depth-shaped pipeline (UNet takes latent + depth channels)."""
    return save_random_pipeline(tmp_path_factory.mktemp("tiny_sd_depth"), TINY, depth=True)


def make_engine(folder, **options):
    options = {"steps": 10, "progress": False, **options}
    return DiffusionEngine(DiffusionSettings(model=str(folder), **options), CPU)


def run(*args):
    """Run the CLI in-process: (exit code, output)."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def size_of(path):
    with Image.open(path) as image:
        return image.size
