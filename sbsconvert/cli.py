"""Command line: `sbsconvert INPUT... [options]` converts; `sbsconvert COMMAND` runs other tools."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import click
import cv2
from sbsconvert import __version__
from sbsconvert.batch import Reporter, check_targets, run_batch
from sbsconvert.convert import DEPTH_SOURCES, ConvertSettings, DisparityProvider, convert_image
from sbsconvert.depth import DEFAULT_DEPTH_MODEL
from sbsconvert.device import DEVICE_CHOICES, Compute, select_compute
from sbsconvert.disparity import DISPARITY_KINDS
from sbsconvert.engines import ENGINES, create_engine
from sbsconvert.engines.base import EYES
from sbsconvert.engines.warp import FILL_METHODS
from sbsconvert.errors import SbsError
from sbsconvert.jobs import plan_jobs
from sbsconvert.layout import LAYOUTS
from sbsconvert.presets import load_preset, preset_names

MAX_DIVERGENCE = 10.0
DEFAULTS: dict[str, Any] = {
    "format": "sbs",
    "divergence": 3.0,
    "convergence": 0.0,
    "fill": "background",
    "max_eye_width": None,
    "image_type": None,
    "jpeg_quality": 95,
}


class ConvertByDefault(click.Group):
    """A group whose unknown first word is an INPUT for the default `convert` command."""

    default_command = "convert"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] in ("--help", "-h") or args[0] not in self.commands and args[0] != "--version":
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # Usage mistakes get the same one-line "error: ..." as every other problem.
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.ClickException as error:
            click.echo(f"error: {error.format_message()}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(130)


@click.group(cls=ConvertByDefault, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sbsconvert")
def main() -> None:
    """sbsconvert: turn 2D photos into stereo pairs for XR headsets."""
    quiet_libraries()


def quiet_libraries() -> None:
    """Library chatter (Pillow's corrupt-EXIF warnings, OpenCV's decoder log, transformers' notices)
    would break the one-line-per-problem output; what matters reaches the user as notes or errors."""
    warnings.filterwarnings("ignore")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    for variable in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
        os.environ.setdefault(variable, "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # weight loading bars; ours show the work


def _layout_help() -> str:
    return "; ".join(f"{name}: {layout.description} ({'/'.join(layout.suffixes)})" for name, layout in LAYOUTS.items())


class ConvertCommand(click.Command):
    """The default command: its help is the program's help, so it shows the real usage line."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage("sbsconvert", "[OPTIONS] INPUT...")

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        others = sorted(name for name in main.commands if name != "convert")
        if others:
            formatter.write_paragraph()
            formatter.write_text(f"Other commands ({', '.join(others)}): see `sbsconvert COMMAND --help`.")


@main.command("convert", cls=ConvertCommand)
@click.argument("inputs", metavar="INPUT...", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output file (one input) or folder (several inputs or a folder). Default: next to each "
              "photo, named with the layout's suffix; for a folder INPUT, a sibling folder NAME_stereo.")
@click.option("-f", "--format", "layout", type=click.Choice(list(LAYOUTS)),
              help=f"Frame layout [default: sbs]. {_layout_help()}.")
@click.option("--engine", type=click.Choice(ENGINES), default="warp", show_default=True,
              help="warp: fast model-free forward warp plus hole filling. diffusion: StereoDiffusion "
              "(Stable Diffusion fills disocclusions in context; needs the model weights).")
@click.option("--preset", help=f"Named settings for a headset ({', '.join(preset_names())}) or a .toml file; "
              "explicit options override it.")
@click.option("--divergence", type=click.FloatRange(0.0, MAX_DIVERGENCE, min_open=True),
              help="Stereo strength: shift of the nearest point in percent of the image width "
              f"(0-{MAX_DIVERGENCE:g}) [default: 3].")
@click.option("--convergence", type=click.FloatRange(0.0, 1.0),
              help="Disparity (0 = farthest, 1 = nearest) that sits on the screen plane; nearer things pop "
              "out, farther things recede [default: 0].")
@click.option("--eye", type=click.Choice(EYES), default="right", show_default=True,
              help="right: the input is the left eye, only the right eye is synthesised. both: the input is "
              "the centre, each eye is shifted by half (smaller holes per eye).")
@click.option("--fill", type=click.Choice(FILL_METHODS),
              help="How the warp engine fills disocclusions: inpaint (OpenCV Telea), background (stretch the "
              "far side across the hole), stretch (interpolate across the hole, paper baseline), blank "
              "(leave black, paper baseline) [default: background, the lowest error in the holes on the samples].")
@click.option("--disparity", "disparity_path", type=click.Path(path_type=Path),
              help="Disparity map to use instead of a depth model: PNG 8/16-bit, TIFF, .npy, .npz or .pfm, any "
              "size. For several photos, a folder of maps named like the photos (NAME.png, NAME_disp.png...).")
@click.option("--disparity-kind", type=click.Choice(DISPARITY_KINDS), default="relative", show_default=True,
              help="What --disparity holds: relative (brighter = nearer, rescaled to 0-1), depth (brighter = "
              "farther, inverted), pixels (true pixel disparities; --divergence is then ignored).")
@click.option("--depth-source", type=click.Choice(DEPTH_SOURCES), default="auto", show_default=True,
              help="Without --disparity: auto uses the depth map embedded in portrait photos (iPhone HEIC, "
              "Android GDepth/Dynamic Depth) when present, else the depth model; embedded or model force one.")
@click.option("--depth-model", default=DEFAULT_DEPTH_MODEL, show_default=True,
              help="transformers depth-estimation model: Hugging Face hub id or local folder.")
@click.option("--max-width", "max_eye_width", type=click.IntRange(16, None),
              help="Downscale each eye to at most this width in pixels (presets set it per headset).")
@click.option("--type", "image_type", type=click.Choice(["jpg", "png", "webp", "tif"]),
              help="Output image type [default: same as the input when possible, else jpg].")
@click.option("--quality", "jpeg_quality", type=click.IntRange(1, 100), help="JPEG/WebP quality [default: 95].")
@click.option("-r", "--recursive", is_flag=True, help="Look for photos in sub-folders of folder INPUTs too; "
              "outputs mirror the folder tree.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True,
              help="Where models and the warp run: auto picks CUDA, then Apple MPS, then CPU.")
@click.option("--skip-existing", is_flag=True, help="Skip photos whose outputs already exist and write only "
              "missing ones: run the same command again to finish an interrupted batch (outputs are only ever "
              "published complete, so an existing one is finished).")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@click.option("-v", "--verbose", is_flag=True, help="Also print where each disparity came from and the time per stage.")
@click.option("--json", "json_summary", is_flag=True, help="Print a machine-readable summary on stdout at the end: "
              "converted, skipped and failed inputs with their outputs and errors.")
def convert(inputs: tuple[Path, ...], **options: Any) -> None:
    """Convert photos or folders of photos (INPUT...) into stereo images.

    \b
    Examples:
      sbsconvert photo.jpg                         # photo_LR.jpg next to it
      sbsconvert album/ --preset quest3 -r         # album_stereo/... for Meta Quest
      sbsconvert photo.jpg --disparity depth.png -f anaglyph -o out.jpg
    """
    _run_cli(lambda: _convert(list(inputs), options))


def _run_cli(action: Any) -> None:
    try:
        code = action()
    except SbsError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted: finished outputs are complete, unfinished ones were not written", err=True)
        sys.exit(130)
    sys.exit(code or 0)


def _merge_preset(options: dict[str, Any]) -> dict[str, Any]:
    preset = load_preset(options["preset"]) if options.get("preset") else {}
    merged = dict(DEFAULTS)
    merged.update({key: value for key, value in preset.items() if key in DEFAULTS})
    merged.update({key: value for key, value in options.items() if key in DEFAULTS and value is not None})
    if options.get("layout") is not None:
        merged["format"] = options["layout"]
    if preset.get("fill") and options.get("fill") is None:
        merged["fill"] = preset["fill"]
    return merged


def _convert(inputs: list[Path], options: dict[str, Any]) -> int:
    if options["quiet"] and options["verbose"]:
        raise SbsError("--quiet and --verbose contradict each other; give one")
    if options["force"] and options["skip_existing"]:
        raise SbsError("--force and --skip-existing contradict each other; give one")
    reporter = Reporter(0 if options["quiet"] else 2 if options["verbose"] else 1)
    merged = _merge_preset(options)
    if not 0 < merged["divergence"] <= MAX_DIVERGENCE and options["disparity_kind"] != "pixels":
        raise SbsError(f"divergence must be between 0 and {MAX_DIVERGENCE:g} percent, got {merged['divergence']}")
    jobs = plan_jobs(inputs, options["output"], merged["format"], merged["image_type"], options["recursive"])
    if options["disparity_path"] is not None and len(jobs) > 1 and not options["disparity_path"].is_dir():
        raise SbsError("--disparity FILE works with one photo; for several photos give a folder of maps")
    check_targets(jobs, options["force"], options["skip_existing"])
    settings = ConvertSettings(
        layout=merged["format"],
        divergence=merged["divergence"],
        convergence=merged["convergence"],
        eye=options["eye"],
        max_eye_width=merged["max_eye_width"],
        image_type=merged["image_type"],
        quality=merged["jpeg_quality"],
        force=options["force"],
        skip_existing=options["skip_existing"],
    )
    compute = select_compute(options["device"])
    engine = create_engine(options["engine"], compute, **_engine_options(options["engine"], merged))
    disparity_for = DisparityProvider(
        options["disparity_path"],
        options["disparity_kind"],
        options["depth_source"],
        make_estimator=lambda: _make_estimator(options["depth_model"], compute),
        report=reporter.info,
    )
    summary = run_batch(
        jobs,
        lambda job: convert_image(job, settings, engine, disparity_for),
        reporter,
        skip_existing=options["skip_existing"],
    )
    if len(jobs) > 1 or summary.interrupted:
        reporter.info(summary.line())
    if options["json_summary"]:
        click.echo(json.dumps(summary.as_json(), indent=2))
    if summary.interrupted:
        raise KeyboardInterrupt
    return 1 if summary.with_status("failed") else 0


def _engine_options(name: str, merged: dict[str, Any]) -> dict[str, Any]:
    if name == "warp":
        return {"fill": merged["fill"]}
    return {}


def _make_estimator(model_name: str, compute: Compute) -> Any:
    from sbsconvert.depth import DepthEstimator

    return DepthEstimator(model_name, compute)
