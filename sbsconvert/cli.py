"""Command line: `sbsconvert INPUT... [options]` converts; `sbsconvert COMMAND` runs other tools."""

from __future__ import annotations

import importlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import rich_click as click
from click.core import ParameterSource

from sbsconvert import __version__
from sbsconvert.choices import (
    ATTENTION_MODES,
    AUDIO_CHOICES,
    CODEC_CHOICES,
    COMPOSITES,
    DEFAULT_BASELINE_MM,
    DEFAULT_CUT_THRESHOLD,
    DEFAULT_DEPTH_MODEL,
    DEFAULT_GPU_BATCH,
    DEFAULT_HFOV,
    DEFAULT_PNG_COMPRESSION,
    DEFAULT_REPAINT_AREA,
    DEFAULT_SD_MODEL,
    DEFAULT_STRENGTH,
    DEFAULT_TEMPORAL,
    DEPTH_SOURCES,
    DEVICE_CHOICES,
    DISPARITY_KINDS,
    ENGINES,
    EYES,
    FILL_CHOICES,
    FILL_RESOLUTIONS,
    IMAGE_TYPES,
    INPUT_LAYOUTS,
    INVERSIONS,
    LAYOUTS,
    MAX_DIVERGENCE,
    MVHEVC_STRUCTURES,
    PIXEL_FORMATS,
    PRECISIONS,
    TEMPORAL_METHODS,
    VIDEO_PAINTS,
)
from sbsconvert.errors import SbsError, option_spelling, run_command
from sbsconvert.presets import preset_names

# Only what --help, --version and a refusal need is imported here: the stages (numpy, OpenCV,
# PyAV, torch...) load when a command runs (bench/RESULTS.md, "Start-up").

# Click parameters named otherwise in the settings (sbsconvert.settings.FIELDS).
SETTING_OF = {"layout": "format", "disparity_path": "disparity", "jpeg_quality": "quality", "pix_fmt": "pixel_format",
              "trim_start": "start", "trim_end": "end"}
NOT_SETTINGS = ("preset", "output", "quiet", "verbose", "json_summary", "no_spsmd")
# Options of settings that errors name (`max_eye_width`) where the option is not --NAME-WITH-DASHES.
OPTION_OF = {"output": "-o", "max_eye_width": "--max-width", "image_type": "--type", "pixel_format": "--pix-fmt",
             "spsmd=False": "--no-spsmd", "resume=False": "--no-resume"}
SPELLING = option_spelling(OPTION_OF)


class ConvertByDefault(click.RichGroup):
    """A group whose unknown first word is an INPUT for the default `convert` command. Commands
    other than `convert` are imported when asked for (their modules load the stages)."""

    default_command = "convert"
    lazy_commands = {"eval": "sbsconvert.evaluate.command:eval_command", "serve": "sbsconvert.serve:serve_command"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_commands:
            module, attribute = self.lazy_commands[name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        known = {*self.commands, *self.lazy_commands}
        if not args or args[0] in ("--help", "-h") or args[0] not in known and args[0] != "--version":
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # Usage mistakes get the same one-line "error: ..." as every other problem.
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.ClickException as error:
            click.echo(f"error: {error.format_message()}", err=True)
            arguments = kwargs.get("args", args[0] if args else None)
            arguments = sys.argv[1:] if arguments is None else list(arguments)
            if "--json" in arguments and (arguments[0] not in self.list_commands(click.get_current_context(silent=True))
                                          or arguments[0] == "convert"):
                echo_refusal(error.format_message())
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(130)


@click.group(cls=ConvertByDefault, context_settings={"help_option_names": ["-h", "--help"]})
# One line an option where the terminal allows: the choices follow the help (no metavar column),
# the details are in docs/options.md.
@click.rich_config(help_config=click.RichHelpConfiguration(
    options_table_column_types=["required", "opt_short", "opt_long", "help"],
    options_table_help_sections=["help", "deprecated", "envvar", "default", "required", "metavar"],
    max_width=120, text_markup="ansi"))
@click.version_option(__version__, prog_name="sbsconvert")
def main() -> None:
    """sbsconvert: turn 2D photos into stereo pairs for XR headsets."""
    quiet_libraries()


def quiet_libraries() -> None:
    """Library chatter (Pillow's corrupt-EXIF warnings, OpenCV's decoder log, transformers' notices)
    would break the one-line-per-problem output; what matters reaches the user as notes or errors."""
    warnings.filterwarnings("ignore")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")  # read when OpenCV loads (not yet, on a command line)
    if "cv2" in sys.modules:
        sys.modules["cv2"].utils.logging.setLogLevel(sys.modules["cv2"].utils.logging.LOG_LEVEL_SILENT)
    for variable in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
        os.environ.setdefault(variable, "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # weight loading bars; ours show the work


class ConvertCommand(click.RichCommand):
    """The default command: its help is the program's help, so it shows the real usage line."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage("sbsconvert", "[OPTIONS] INPUT...")

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        others = [name for name in main.list_commands(ctx) if name != "convert"]
        self.epilog = f"Other commands ({', '.join(others)}): see `sbsconvert COMMAND --help`."
        super().format_help(ctx, formatter)


@main.command("convert", cls=ConvertCommand)
@click.argument("inputs", metavar="INPUT...", nargs=-1, type=click.Path(path_type=Path))
@click.option_panel("Output", options=["--output", "--format", "--preset", "--type", "--quality", "--png-compression",
                                       "--max-width", "--force"])
@click.option_panel("Stereo", options=["--engine", "--divergence", "--convergence", "--eye", "--fill", "--input-layout"])
@click.option_panel("Depth", options=["--disparity", "--disparity-kind", "--depth-source", "--depth-model",
                                      "--depth-resolution", "--temporal", "--temporal-strength", "--cut-threshold",
                                      "--batch-size", "--device"])
@click.option_panel("Diffusion", options=["--prompt", "--negative-prompt", "--depth-image", "--model", "--steps",
                                          "--guidance", "--shift-step", "--inversion", "--attention", "--no-spsmd",
                                          "--spsmd-every", "--composite", "--fill-resolution", "--video-paint",
                                          "--repaint-area", "--precision", "--deblur",
                                          "--seed", "--resolution"])
@click.option_panel("Video", options=["--codec", "--crf", "--bitrate", "--pix-fmt", "--audio", "--sequence", "--fps",
                                      "--frames-out", "--start", "--end", "--preview", "--max-fps"])
@click.option_panel("Apple spatial", options=["--baseline-mm", "--hfov", "--mvhevc-structure"])
@click.option_panel("Batch and scale-out", options=["--recursive", "--skip-existing", "--resume", "--segment-seconds",
                                                    "--cluster", "--workers", "--quiet", "--verbose", "--json", "--help"])
# Output
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output file, or folder for several inputs [default: beside each input, with the layout's suffix].")
@click.option("-f", "--format", "layout", type=click.Choice(list(LAYOUTS)),
              help="Frame layout [default: sbs]: " + ", ".join(f"{name} ({layout.naming})" for name, layout in LAYOUTS.items())
              + ".")
@click.option("--preset", help=f"Settings for a headset ({', '.join(preset_names())}) or a .toml file.")
@click.option("--type", "image_type", type=click.Choice(IMAGE_TYPES),
              help="Image type of photo outputs [default: the input's, else jpg].")
@click.option("--quality", "jpeg_quality", type=click.IntRange(1, 100), help="JPEG/WebP/HEIC quality [default: 95].")
@click.option("--png-compression", type=click.IntRange(0, 9), default=DEFAULT_PNG_COMPRESSION, show_default=True,
              help="zlib level of PNG and 16-bit TIFF outputs (9: smallest, slowest).")
@click.option("--max-width", "max_eye_width", type=click.IntRange(16, None), help="Downscale each eye to at most this "
              "width.")
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
# Stereo
@click.option("--engine", type=click.Choice(ENGINES), default="warp", show_default=True,
              help="warp: fast forward warp and hole filling; diffusion: StereoDiffusion paints the holes.")
@click.option("--divergence", type=click.FloatRange(0.0, MAX_DIVERGENCE, min_open=True),
              help="Stereo strength: shift of the nearest point, % of the width [default: 3].")
@click.option("--convergence", type=click.FloatRange(0.0, 1.0),
              help="Disparity that sits on the screen (0 farthest, 1 nearest) [default: 0].")
@click.option("--eye", type=click.Choice(EYES), default="right", show_default=True,
              help="right: the input is the left eye; both: the input is the centre.")
@click.option("--fill", type=click.Choice(FILL_CHOICES),
              help="How the warp fills holes [default: background]; plate: from a video's other frames.")
@click.option("--input-layout", type=click.Choice(INPUT_LAYOUTS), default="auto", show_default=True,
              help="How the input holds its eyes: auto, 2d, a packed 3D layout, or RGB+depth.")
# Depth
@click.option("--disparity", "disparity_path", type=click.Path(path_type=Path),
              help="A disparity map (or folder of maps, or depth video) instead of a depth model.")
@click.option("--disparity-kind", type=click.Choice(DISPARITY_KINDS), default="relative", show_default=True,
              help="What --disparity holds: relative (bright = near), depth (bright = far) or pixels.")
@click.option("--depth-source", type=click.Choice(DEPTH_SOURCES), default="auto", show_default=True,
              help="auto: a photo's embedded depth map when it has one, else the model.")
@click.option("--depth-model", default=DEFAULT_DEPTH_MODEL, show_default=True,
              help="Depth model: hub id, local folder, or vda-small (Video Depth Anything).")
@click.option("--depth-resolution", type=click.IntRange(56, 4096),
              help="Short side the depth model sees; lower is faster [default: the model's].")
@click.option("--temporal", type=click.Choice(TEMPORAL_METHODS), default=DEFAULT_TEMPORAL, show_default=True,
              help="Videos: how depth is steadied over time.")
@click.option("--temporal-strength", type=click.FloatRange(0.0, 1.0), default=DEFAULT_STRENGTH, show_default=True,
              help="Videos: how strongly (0 none, 1 most).")
@click.option("--cut-threshold", type=click.FloatRange(0.0, 1.0, min_open=True), default=DEFAULT_CUT_THRESHOLD,
              show_default=True, help="Videos: frame change that counts as a scene cut.")
@click.option("--batch-size", type=click.IntRange(1, 256),
              help=f"Videos: frames per depth model pass [default: {DEFAULT_GPU_BATCH} on CUDA, else 1].")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True,
              help="Where models and the warp run (auto: CUDA, then MPS, then CPU).")
# Diffusion
@click.option("--prompt", help="Without INPUT: text to generate a stereo image from; with INPUT: a caption of it.")
@click.option("--negative-prompt", help="Text to steer away from.")
@click.option("--depth-image", type=click.Path(path_type=Path),
              help="With --prompt and no INPUT: generate from this depth map (SD 2 depth).")
@click.option("--model", help=f"Stable Diffusion checkpoint [default: {DEFAULT_SD_MODEL}].")
@click.option("--steps", type=click.IntRange(1, 1000), help="DDIM steps [default: 50].")
@click.option("--guidance", type=click.FloatRange(1.0, None), help="Classifier-free guidance scale [default: 7.5].")
@click.option("--shift-step", type=click.FloatRange(0.0, 1.0, max_open=True),
              help="Fraction of the denoising before the latent shift [default: 0.2].")
@click.option("--inversion", type=click.Choice(INVERSIONS), help="ddim (fast) or null-text [default: ddim].")
@click.option("--attention", type=click.Choice(ATTENTION_MODES), help="Attention sharing between views [default: uni].")
@click.option("--no-spsmd", is_flag=True, help="Never re-impose the shifted left view (ablation).")
@click.option("--spsmd-every", type=click.IntRange(1, None), help="Re-impose the shifted left view every N steps "
              "[default: 10].")
@click.option("--composite", type=click.Choice(COMPOSITES),
              help="hybrid: paint only the holes of the warp; latent: the paper's output [default: hybrid].")
@click.option("--fill-resolution", type=click.Choice(FILL_RESOLUTIONS),
              help="native: repaint holes at the photo's scale [default: model].")
@click.option("--video-paint", type=click.Choice(VIDEO_PAINTS),
              help="Videos: keyframes: holes from the video's other frames, diffusion only where none saw them, "
                   "on keyframes; every-frame: diffuse every frame [default: keyframes].")
@click.option("--repaint-area", type=click.FloatRange(0.0, 1.0),
              help="Videos, keyframes: paint a frame when its unpainted holes exceed this share of it "
                   f"[default: {DEFAULT_REPAINT_AREA}].")
@click.option("--precision", type=click.Choice(PRECISIONS), help="Number format of the networks [default: by device].")
@click.option("--deblur", is_flag=True, help="Start the holes from noise (wide baselines).")
@click.option("--seed", type=int, help="Seed of every random draw [default: 0].")
@click.option("--resolution", type=click.IntRange(64, None), help="Pixels the model works at [default: the model's].")
# Video
@click.option("--codec", type=click.Choice(CODEC_CHOICES),
              help="h264, hevc, auto (hardware when it works) or an FFmpeg encoder [default: the preset's, else h264].")
@click.option("--crf", type=click.IntRange(0, 51), help="Constant quality, lower is better [default: 18 h264, 20 hevc].")
@click.option("--bitrate", help="Target bitrate, e.g. 12M, instead of constant quality.")
@click.option("--pix-fmt", "pix_fmt", type=click.Choice(PIXEL_FORMATS),
              help="8-bit yuv420p or 10-bit yuv420p10le [default: the preset's, else by source].")
@click.option("--audio", type=click.Choice(AUDIO_CHOICES),
              help="auto: copy, or AAC where the container cannot hold it [default: auto].")
@click.option("--sequence", is_flag=True, help="A folder INPUT is one video of numbered frames.")
@click.option("--fps", help="With --sequence: frame rate of the frames [default: 30].")
@click.option("--frames-out", is_flag=True, help="Write numbered images instead of a video file.")
@click.option("--start", "trim_start", help="Convert from this time on (seconds or [HH:]MM:SS).")
@click.option("--end", "trim_end", help="Convert up to this time.")
@click.option("--preview", is_flag=True, help="Convert 10 seconds from the middle, to try settings.")
@click.option("--max-fps", type=click.FloatRange(1, 1000), help="Drop frames down to at most this rate.")
# Apple spatial
@click.option("--baseline-mm", type=click.FloatRange(0.0, 1000.0, min_open=True),
              help=f"Camera distance the file states [default: a spatial input's, else {DEFAULT_BASELINE_MM:g}].")
@click.option("--hfov", type=click.FloatRange(0.0, 180.0, min_open=True, max_open=True),
              help=f"Horizontal field of view the file states, degrees [default: the source's, else {DEFAULT_HFOV:g}].")
@click.option("--mvhevc-structure", type=click.Choice(MVHEVC_STRUCTURES),
              help="Videos: code the right eye as Apple's encoder does, or as an independent layer [default: apple].")
# Batch and scale-out
@click.option("-r", "--recursive", is_flag=True, help="Also convert photos in sub-folders of folder INPUTs.")
@click.option("--skip-existing", is_flag=True, help="Keep finished outputs and make the missing ones (resume a batch).")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Videos: go on from the last finished segment of a killed run.")
@click.option("--segment-seconds", type=click.FloatRange(1, None), help="Videos: segment length [default: 30].")
@click.option("--cluster", metavar="auto|ADDRESS", help="Run the batch on Ray workers (pip install "
              "\"sbsconvert[cluster]\").")
@click.option("--workers", type=click.IntRange(1, None), help="With --cluster: how many workers [default: one per GPU, "
              "else per CPU].")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@click.option("-v", "--verbose", is_flag=True, help="Also print where depth came from and the time per stage.")
@click.option("--json", "json_summary", is_flag=True, help="Print a machine-readable summary at the end.")
def convert(inputs: tuple[Path, ...], **options: Any) -> None:
    """Convert photos, videos, or folders of them (INPUT...) into stereo images and videos.
    Stereo inputs (a 3D camera's MPO, Apple spatial photos and videos) keep their own eyes.
    Every option in full: docs/options.md.

    \b
    Examples:
      sbsconvert photo.jpg                         # photo_LR.jpg next to it
      sbsconvert album/ --preset quest3 -r         # album_stereo/... for Meta Quest
      sbsconvert photo.jpg --disparity depth.png -f anaglyph -o out.jpg
      sbsconvert photo.jpg --engine diffusion      # StereoDiffusion fills the disocclusions
      sbsconvert clip.mp4 --preset vision-pro      # clip_spatial.mp4: Apple spatial video (MV-HEVC)
      sbsconvert IMG_0001.mov --preset quest3      # an iPhone spatial video, side by side for Quest
      sbsconvert --prompt "a fox in snow" -o fox_LR.jpg   # text -> stereo
      sbsconvert eval samples/eval -o report       # score engines on a stereo dataset (sbsconvert eval --help)
      sbsconvert info IMG_0001.MOV                 # what a file says about its stereo (sbsconvert info --help)
    """
    run_command(lambda: _convert(list(inputs), options), on_refusal=echo_refusal if options["json_summary"] else None,
                spelling=SPELLING)


@main.command("info", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per file (an unreadable file: "
              "its path and \"error\").")
def info_command(files: tuple[Path, ...], as_json: bool) -> None:
    """Show what photos or videos (FILE...) say about their stereo, as a headset or player reads them.

    Container and streams (codec, profile, size, frames, duration, bit depth, colour); stereo
    signalling (MP4 st3d, Matroska StereoMode, MV-HEVC views and base eye, Apple's baseline, field of
    view and disparity adjustment, SEI messages; a HEIC's stereo group and camera, an MPO's images);
    the layout a name suffix implies; whether Apple shows it as spatial; how a Quest player shows
    it. Files are only read. Exits 1 when a file cannot be read.

    \b
    Examples:
      sbsconvert info IMG_0001.MOV
      sbsconvert info clip_LR.mp4 photo_spatial.heic --json
    """
    from sbsconvert.info import inspect

    def show() -> int:
        reports, failed = [], False
        for path in files:
            try:
                report = inspect(path)
            except SbsError as error:
                failed = True
                click.echo(f"error: {error}", err=True)
                reports.append({"path": str(path), "error": str(error)})
                continue
            reports.append(report.as_json())
            if not as_json:
                click.echo("\n".join(report.lines()))
        if as_json:
            click.echo(json.dumps(reports, indent=2))
        return 1 if failed else 0

    run_command(show)


def echo_refusal(message: str) -> None:
    """--json's summary of a run refused before any work: nothing converted, and why."""
    from sbsconvert.core import BatchSummary

    click.echo(json.dumps(BatchSummary(refused=message).as_json(), indent=2))


def _convert(inputs: list[Path], options: dict[str, Any]) -> int:
    """Map the options to settings, run the library's conversion and report its summary."""
    from sbsconvert.converter import Models, run
    from sbsconvert.settings import build_settings

    if options["quiet"] and options["verbose"]:
        raise SbsError("--quiet and --verbose contradict each other; give one")
    context = click.get_current_context()
    values = {SETTING_OF.get(name, name): value for name, value in options.items()
              if name not in NOT_SETTINGS and context.get_parameter_source(name) != ParameterSource.DEFAULT}
    if options["no_spsmd"]:
        values["spsmd"] = False
    values["verbosity"] = 0 if options["quiet"] else 2 if options["verbose"] else 1
    summary = run(inputs, options["output"], build_settings(values, options["preset"]), Models())
    if options["json_summary"]:
        click.echo(json.dumps(summary.as_json(), indent=2))
    if summary.interrupted:
        raise KeyboardInterrupt
    return 1 if summary.with_status("failed") else 0
