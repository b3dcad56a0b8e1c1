"""`sbsconvert eval`: score stereo engines against real right views of a stereo dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sbsconvert.choices import DEFAULT_DEPTH_MODEL, FILL_METHODS
from sbsconvert.device import DEVICE_CHOICES, select_compute
from sbsconvert.engines import ENGINES, create_engine
from sbsconvert.engines.diffusion.settings import COMPOSITES, DEFAULT_SD_MODEL, FILL_RESOLUTIONS
from sbsconvert.errors import SbsError, option_spelling, run_command
from sbsconvert.evaluate.datasets import find_pairs
from sbsconvert.evaluate.metrics import SSIM_CHANNELS, Lpips
from sbsconvert.evaluate.protocol import PAPER_SIZE, PROTOCOLS
from sbsconvert.evaluate.report import PSNR_CAP_DB, check_report_paths, markdown_table, summarize, write_report
from sbsconvert.evaluate.runner import DISPARITY_SOURCES, build_runs, evaluate, expand
from sbsconvert.media import is_video_path
from sbsconvert.video.temporal import DEFAULT_STRENGTH, TEMPORAL_METHODS

# How errors from below name the settings to change (`output` is -o).
SPELLING = option_spelling({"output": "-o"})


@click.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("dataset", metavar="DATASET_DIR", type=click.Path(path_type=Path))
@click.option("--engine", "engines", multiple=True, type=click.Choice([*ENGINES, "all"]), default=("warp",),
              show_default=True, help="Engine to evaluate; repeat it or give 'all' for several. diffusion needs the "
              "Stable Diffusion weights (default settings, except the diffusion options below).")
@click.option("--fill", "fills", multiple=True, type=click.Choice([*FILL_METHODS, "all"]),
              help="Warp engine hole fills to evaluate, one run each; repeat it or give 'all'. stretch and blank "
              "are the paper's baselines [default: all].")
@click.option("--disparity", "disparity_source", type=click.Choice(DISPARITY_SOURCES), default="gt", show_default=True,
              help="gt: the engines get the true disparity. model: they get the depth model's relative disparity, "
              "scaled by the pair's true maximum disparity (the occlusion masks still come from the truth).")
@click.option("--depth-model", default=DEFAULT_DEPTH_MODEL, show_default=True,
              help="With --disparity model: transformers depth model, hub id or local folder.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="native", show_default=True,
              help=f"native: full resolution, true disparity in pixels as the shift. paper: StereoDiffusion's protocol, "
              f"views resized to {PAPER_SIZE}x{PAPER_SIZE} (KITTI: scaled, then centre-cropped), Middlebury disparity "
              "blurred (Gaussian, sigma 3), shift = true maximum disparity x normalised disparity.")
@click.option("--model", help="Diffusion engine: Stable Diffusion checkpoint, hub id or local diffusers folder "
              f"[default: {DEFAULT_SD_MODEL}].")
@click.option("--steps", type=click.IntRange(1, 1000), help="Diffusion engine: DDIM steps [default: 50].")
@click.option("--composite", "composites", multiple=True, type=click.Choice([*COMPOSITES, "all"]),
              help="Diffusion engine composites to evaluate side by side, one run each (one model load): hybrid (warp "
              "of the photo, diffusion in the holes) and latent (the paper's output); repeat it or give 'all' "
              "[default: hybrid].")
@click.option("--spsmd-every", type=click.IntRange(1, None), help="Diffusion engine: SPSMD at the shift step and every "
              "N steps [default: 10].")
@click.option("--fill-resolution", type=click.Choice(FILL_RESOLUTIONS), help="Diffusion engine, hybrid: paint the holes "
              "at the model's resolution or, with native, again in crops at the pair's own scale [default: model].")
@click.option("--limit", type=click.IntRange(1, None), help="Evaluate only the first N pairs (sorted by name).")
@click.option("--ssim", "ssim_channels", type=click.Choice(SSIM_CHANNELS), default="luma", show_default=True,
              help="SSIM on the luminance (BT.601 luma) or averaged over the RGB channels.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Report folder: results.md, results.csv, pairs.csv, contact_RUN.png [default: DATASET_DIR_eval "
              "beside the dataset].")
@click.option("--force", is_flag=True, help="Overwrite an existing report's files.")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True,
              help="Where the engines and models run: auto picks CUDA, then Apple MPS, then CPU.")
@click.option("--maps", type=click.Path(path_type=Path), help="DATASET_DIR a video: its clean per-frame disparity "
              "(a folder of maps, one per frame in natural order; a depth video; or one map for every frame). The "
              "maps are spoiled as per-frame depth models spoil them (per-frame scale and offset, slow drift, noise), "
              "and each --temporal method is scored on steadying them.")
@click.option("--temporal", "temporal_methods", multiple=True, type=click.Choice([*TEMPORAL_METHODS, "all"]),
              help="A video: temporal methods to score, one run each; repeat it or give 'all' [default: all].")
@click.option("--temporal-strength", type=click.FloatRange(0.0, 1.0), default=DEFAULT_STRENGTH, show_default=True,
              help="A video: the --temporal-strength of every method.")
@click.option("--seed", type=int, default=0, show_default=True, help="A video: seed of the spoiling of the maps.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors (no progress, no table).")
def eval_command(dataset: Path, **options: Any) -> None:
    """Score stereo engines on a stereo dataset with true disparity (DATASET_DIR).

    Each engine makes the right view from the left view and the disparity; PSNR, SSIM and LPIPS
    (when the lpips package and its weights are installed) compare it with the real right view over
    all scored pixels, the non-occluded ones (visible in the left view) and the disoccluded ones.
    Pixels whose disparity is unknown (Middlebury inf, KITTI 0) are left out.

    \b
    Layouts: Middlebury 2014 scene folders (im0.png, im1.png, disp0.pfm, calib.txt), KITTI 2015
    (training/image_2, image_3, disp_occ_0), or NAME_left.*, NAME_right.*, NAME_disp.{pfm,npy,png}.

    A video with --maps (its clean per-frame disparity) instead scores the temporal methods on
    flicker: the right eye's PSNR against the run on the clean maps, and its frame-to-frame change
    where the scene is still, as a ratio to the clean run's (written to -o FOLDER/flicker.md).

    \b
    Examples:
      sbsconvert eval samples/eval -o eval-report
      sbsconvert eval MiddEval/trainingF --protocol paper --fill stretch --fill blank
      sbsconvert eval kitti2015 --engine all --limit 20 --protocol paper
      sbsconvert eval clip.mp4 --maps clip_maps/ --temporal all
    """
    if options["maps"] is not None or (dataset.is_file() and is_video_path(dataset)):
        run_command(lambda: _evaluate_video(dataset, options), spelling=SPELLING)
    else:
        run_command(lambda: _evaluate(dataset, options), spelling=SPELLING)


def _evaluate_video(video: Path, options: dict[str, Any]) -> int:
    from sbsconvert.evaluate.flicker import evaluate_flicker, flicker_table

    if options["maps"] is None:
        raise SbsError(f"{video}: a video is scored against its clean per-frame maps; give them with --maps")
    if not video.is_file():
        raise SbsError(f"{video}: --maps scores a video file; this is not one")
    engine = create_engine("warp", select_compute(options["device"]), fill=(options["fills"] or ("background",))[0])
    methods = expand(options["temporal_methods"] or ("all",), TEMPORAL_METHODS)
    say = (lambda message: None) if options["quiet"] else (lambda message: click.echo(message, err=True))
    scores, frames = evaluate_flicker(video, options["maps"], methods, engine, strength=options["temporal_strength"],
                                      seed=options["seed"], progress=say)
    table = flicker_table(video, scores, frames)
    if options["output"] is not None:
        target = options["output"] / "flicker.md"
        if target.exists() and not options["force"]:
            raise SbsError(f"{target} exists (use --force to overwrite)")
        options["output"].mkdir(parents=True, exist_ok=True)
        target.write_text(table)
    if not options["quiet"]:
        click.echo(table, nl=False)
    return 0


def _evaluate(dataset: Path, options: dict[str, Any]) -> int:
    quiet = options["quiet"]
    say = (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))
    layout, sources = find_pairs(dataset)
    if options["limit"]:
        sources = sources[: options["limit"]]
    report_dir = options["output"] or dataset.resolve().parent / f"{dataset.resolve().name}_eval"
    compute = select_compute(options["device"])
    diffusion_options = {
        key: options[key] for key in ("model", "steps", "spsmd_every", "fill_resolution") if options[key] is not None
    }
    runs, failures = build_runs(
        options["engines"], options["fills"], compute, warn=lambda m: click.echo(m, err=True),
        diffusion_options=diffusion_options, composites=options["composites"],
    )
    check_report_paths(report_dir, runs, options["force"])
    estimate = None
    if options["disparity_source"] == "model":
        from sbsconvert.depth import DepthEstimator

        estimator = DepthEstimator(options["depth_model"], compute)
        estimate = lambda pixels: estimator(pixels).values
    say(f"{dataset}: {len(sources)} {layout} pairs, {len(runs)} runs, protocol {options['protocol']}")
    lpips = Lpips(compute.device, notice=say)
    evaluation = evaluate(
        sources,
        layout,
        runs,
        protocol=options["protocol"],
        lpips=lpips,
        ssim_channels=options["ssim_channels"],
        estimate=estimate,
        progress=not quiet,
    )
    disparity = "true disparity" if estimate is None else f"disparity from {options['depth_model']}"
    notes = [
        f"Dataset `{dataset}` ({layout}, {len(sources)} pairs), protocol `{options['protocol']}`, {disparity}, "
        f"SSIM on {options['ssim_channels']}, device {compute.device}.",
        "Means over pairs; non-occl. = right-view pixels visible in the left view, disoccl. = the rest "
        f"(unknown-disparity pixels excluded); identical pixels (PSNR inf) count as {PSNR_CAP_DB:g} dB.",
    ]
    if lpips.unavailable:
        notes.append(f"{lpips.unavailable}.")
    notes += [f"{failure}" for failure in failures]
    write_report(report_dir, evaluation, runs, "sbsconvert eval", notes, options["force"])
    if not quiet:
        click.echo(markdown_table(summarize(evaluation, runs)), nl=False)
        say(f"report: {report_dir}")
    return 1 if failures else 0
