"""Time per frame of the default depth model (Depth Anything V2 Small architecture) at video sizes.

    python bench/bench_depth.py [--device cpu|cuda] [--repeats 3]

The weights are random (no hub here; the cost does not depend on them). The model and its image
processor are saved to a temp folder and loaded through sbsconvert's DepthEstimator, the path a
real checkpoint takes, so the time includes preprocessing (resize to a 518-pixel short side,
normalise), the network and the resize of the prediction back to the frame.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from bench_warp import SIZES, best_time, cpu_name
from sbsconvert.depth import DepthEstimator
from sbsconvert.device import Compute, select_compute
from sbsconvert.synthetic import render_scene


def save_depth_anything_v2_small(folder: Path) -> Path:
    """A random model with Depth Anything V2 Small's published architecture (24.8 M parameters)."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
        patch_size=14, image_size=518, out_indices=[3, 6, 9, 12], reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=384, reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64, head_hidden_size=32,
        depth_estimation_type="relative",
    )
    model = DepthAnythingForDepthEstimation(config)
    processor = DPTImageProcessor(
        size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14, resample=3,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def announced_compute(device: str) -> Compute:
    """The device and dtype to time on, printed with the machine's name."""
    compute = select_compute(device)
    name = torch.cuda.get_device_name(compute.device) if compute.device.type == "cuda" else cpu_name()
    print(f"device: {name}, {compute.dtype}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    return compute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    compute = announced_compute(args.device)
    with tempfile.TemporaryDirectory() as folder:
        model = save_depth_anything_v2_small(Path(folder))
        parameters = sum(p.numel() for p in DepthEstimator(str(model), compute).model.parameters()) / 1e6
        print(f"Depth Anything V2 Small architecture ({parameters:.1f} M parameters), random weights")
        print("| frame | --depth-resolution | network input | ms per frame | frames/s |")
        print("|---|---|---|---|---|")
        for resolution in (None, 364):
            estimator = DepthEstimator(str(model), compute, resolution)
            seen = []
            forward = estimator.model.forward
            estimator.model.forward = lambda pixel_values, **kw: seen.append(pixel_values.shape) or forward(
                pixel_values=pixel_values, **kw
            )
            for label, (width, height) in SIZES.items():
                if label == "12MP":
                    continue
                frame = render_scene(width, height).left
                estimator(frame)  # warm-up
                seconds = best_time(lambda: estimator(frame), args.repeats, compute.device)
                network = f"{seen[-1][3]}x{seen[-1][2]}"
                print(f"| {label} {width}x{height} | {resolution or 'default (518)'} | {network} | "
                      f"{seconds * 1000:.0f} | {1 / seconds:.2f} |")


if __name__ == "__main__":
    main()
