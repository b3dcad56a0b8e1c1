"""Time the warp engine (forward warp + each fill) on synthetic scenes at common photo sizes.

    python bench/bench_warp.py [--device cpu|cuda] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from sbsconvert.engines.warp import FILL_METHODS, WarpEngine, fill_holes, forward_warp
from sbsconvert.synthetic import render_scene

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "12MP": (4032, 3024)}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def best_time(action, repeats: int, device: torch.device) -> float:
    timings = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        action()
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(f"device: {name}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    compiled = device.type == "cpu"  # the CPU also runs the compiled kernel (warp + fill in one pass)
    extra = " | compiled warp+background ms" if compiled else ""
    print("| size | warp ms | " + " | ".join(f"{fill} ms" for fill in FILL_METHODS) + extra + " |")
    print("|---|---|" + "---|" * (len(FILL_METHODS) + compiled))
    for label, (width, height) in SIZES.items():
        scene = render_scene(width, height)
        image = torch.from_numpy(scene.left).permute(2, 0, 1).to(device)
        disparity = torch.from_numpy(scene.disparity).to(device)
        # The engine warps in bands of rows (bounded memory); fills are timed on the whole picture.
        engine = WarpEngine(fill="blank", device=device, compiled=False)
        warp_s = best_time(lambda: engine.synthesize(image, disparity, disparity), args.repeats, device)
        result = forward_warp(image, disparity, disparity)
        fills = [best_time(lambda: fill_holes(result, method), args.repeats, device) for method in FILL_METHODS]
        row = f"| {label} {width}x{height} | {warp_s * 1000:.0f} | " + " | ".join(f"{f * 1000:.0f}" for f in fills)
        if compiled:
            kernel = WarpEngine(fill="background", compiled=True)
            kernel.synthesize(image, disparity, disparity)  # the first call loads (or compiles) the kernel
            row += f" | {best_time(lambda: kernel.synthesize(image, disparity, disparity), args.repeats, device) * 1000:.0f}"
        print(row + " |")


if __name__ == "__main__":
    main()
