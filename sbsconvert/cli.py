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
from click.core import ParameterSource
from sbsconvert import __version__
from sbsconvert.batch import BatchSummary
from sbsconvert.convert import DEPTH_SOURCES
from sbsconvert.converter import DEFAULT_GPU_BATCH, Models, run
from sbsconvert.depth import DEFAULT_DEPTH_MODEL
from sbsconvert.device import DEVICE_CHOICES, PRECISIONS
from sbsconvert.disparity import DISPARITY_KINDS
from sbsconvert.engines import ENGINES
from sbsconvert.engines.base import EYES
from sbsconvert.engines.diffusion.settings import (
    ATTENTION_MODES,
    COMPOSITES,
    DEFAULT_SD_DEPTH_MODEL,
    DEFAULT_SD_MODEL,
    FILL_RESOLUTIONS,
    INVERSIONS,
)
from sbsconvert.engines.warp import FILL_CHOICES
from sbsconvert.errors import SbsError, option_spelling, run_command
from sbsconvert.evaluate.command import eval_command
from sbsconvert.layout import INPUT_LAYOUTS, LAYOUTS
from sbsconvert.output import DEFAULT_PNG_COMPRESSION
from sbsconvert.presets import preset_names
from sbsconvert.serve import serve_command
from sbsconvert.settings import MAX_DIVERGENCE, build_settings
from sbsconvert.spatial_photo import DEFAULT_BASELINE_MM, DEFAULT_HFOV
from sbsconvert.video.audio import AUDIO_CHOICES
from sbsconvert.video.encoders import CODEC_CHOICES
from sbsconvert.video.temporal import DEFAULT_CUT_THRESHOLD, DEFAULT_STRENGTH, DEFAULT_TEMPORAL, TEMPORAL_METHODS

# Click parameters named otherwise in the settings (sbsconvert.settings.FIELDS).
SETTING_OF = {"layout": "format", "disparity_path": "disparity", "jpeg_quality": "quality", "pix_fmt": "pixel_format",
              "trim_start": "start", "trim_end": "end"}
NOT_SETTINGS = ("preset", "output", "quiet", "verbose", "json_summary", "no_spsmd")
# Options of settings that errors name (`max_eye_width`) where the option is not --NAME-WITH-DASHES.
OPTION_OF = {"output": "-o", "max_eye_width": "--max-width", "image_type": "--type", "pixel_format": "--pix-fmt",
             "spsmd=False": "--no-spsmd", "resume=False": "--no-resume"}
SPELLING = option_spelling(OPTION_OF)


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
            arguments = kwargs.get("args", args[0] if args else None)
            arguments = sys.argv[1:] if arguments is None else list(arguments)
            if "--json" in arguments and (arguments[0] not in self.commands or arguments[0] == "convert"):
                echo_refusal(error.format_message())
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
    return "; ".join(f"{name}: {layout.description} ({layout.naming})" for name, layout in LAYOUTS.items())


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
@click.option("--input-layout", type=click.Choice(INPUT_LAYOUTS), default="auto", show_default=True,
              help="Whether the INPUT already holds both eyes. auto: a stereo MPO, spatial HEIC or MV-HEVC video "
              "keeps its own eyes, other inputs are 2D, and a video whose file says it packs both eyes in each "
              "frame is refused until you say how. 2d: always one picture (a stereo file's left eye), made "
              "stereo from depth. sbs, hsbs, tb, htb, crosseye: each frame packs both eyes as --format writes "
              "them (hsbs/htb: squeezed eyes, stretched back); a packed 3D movie or photo is then re-laid-out, "
              "e.g. side by side to Apple spatial video, with no depth model. rgbd, rgbd-tb: each frame is colour "
              "and grey depth side by side (colour left) or over-under (colour on top), as iw3 and Owl3D export; "
              "the depth half is the disparity (read as --disparity-kind says).")
@click.option("--eye", type=click.Choice(EYES), default="right", show_default=True,
              help="right: the input is the left eye, only the right eye is synthesised. both: the input is "
              "the centre, each eye is shifted by half (smaller holes per eye).")
@click.option("--fill", type=click.Choice(FILL_CHOICES),
              help="How the warp engine fills disocclusions: inpaint (OpenCV Telea), background (stretch the "
              "far side across the hole), stretch (interpolate across the hole, paper baseline), blank "
              "(leave black, paper baseline), plate (videos: the background the video's frames around it saw, "
              "aligned to the camera's motion; background where none saw it, and for photos) "
              "[default: background, the lowest error in the holes on the samples].")
@click.option("--disparity", "disparity_path", type=click.Path(path_type=Path),
              help="Disparity map to use instead of a depth model: PNG 8/16-bit, TIFF, .npy, .npz or .pfm, any "
              "size. For several photos, a folder of maps named like the photos (NAME.png, NAME_disp.png...). A video "
              "takes one map file for every frame (a fixed camera); a folder of maps, one per frame in natural order "
              "(or its subfolder NAME/; a map named NAME.* is used for every frame); or a depth video (8/16-bit grey, "
              "one frame per frame). Per-frame maps must number the video's frames.")
@click.option("--disparity-kind", type=click.Choice(DISPARITY_KINDS), default="relative", show_default=True,
              help="What --disparity holds: relative (brighter = nearer, rescaled to 0-1), depth (brighter = "
              "farther, inverted), pixels (true pixel disparities; --divergence is then ignored).")
@click.option("--depth-source", type=click.Choice(DEPTH_SOURCES), default="auto", show_default=True,
              help="Without --disparity: auto uses the depth map embedded in portrait photos (iPhone HEIC, "
              "Android GDepth/Dynamic Depth) when present, else the depth model; embedded or model force one.")
@click.option("--depth-model", default=DEFAULT_DEPTH_MODEL, show_default=True,
              help="transformers depth-estimation model: Hugging Face hub id or local folder; or Video Depth "
              "Anything (vda-small, its hub id, or its .pth), consistent over a video's frames.")
@click.option("--depth-resolution", type=click.IntRange(56, 4096),
              help="Short side, in pixels, of the image the depth model sees. Lower is faster and coarser: "
              "364 takes about a third of the time of Depth Anything's own 518 (see bench/RESULTS.md), which "
              "matters for video on a CPU "
              "[default: the model's own].")
@click.option("--temporal", type=click.Choice(TEMPORAL_METHODS), default=DEFAULT_TEMPORAL, show_default=True,
              help="Videos: how per-frame depth is steadied over time. flow: each frame's map is blended with the "
              "previous one carried along the image motion (optical flow), where the motion is reliable, and "
              "aligned to it by robust anchors: flicker goes, moving things keep their depth; ema: a centred moving "
              "average at fixed pixels (moving things leave a short trail); none: each frame's own map. Restarts "
              "at scene cuts.")
@click.option("--temporal-strength", type=click.FloatRange(0.0, 1.0), default=DEFAULT_STRENGTH, show_default=True,
              help="Videos: how strongly --temporal steadies depth, 0 (not at all) to 1 (most; slower to follow a "
              "real change of depth).")
@click.option("--cut-threshold", type=click.FloatRange(0.0, 1.0, min_open=True), default=DEFAULT_CUT_THRESHOLD,
              show_default=True, help="Videos: mean grey change between two frames (0-1) that counts as a scene "
              "cut, where --temporal starts afresh; lower finds more cuts.")
@click.option("--prompt", help="Diffusion engine. Without INPUT: generate a new stereo image from this text (write it "
              "with -o OUT). With INPUT: a caption of the photo, which guides the inversion and what fills the "
              "disocclusions.")
@click.option("--negative-prompt", help="Diffusion engine: text to steer away from (the unconditional half of "
              "classifier-free guidance) [default: empty].")
@click.option("--depth-image", type=click.Path(path_type=Path),
              help="Diffusion engine, with --prompt and no INPUT: generate from this depth map (read like --disparity, "
              "see --disparity-kind) with an SD 2 depth model; it shapes the image and gives the disparity.")
@click.option("--model", help="Diffusion engine: Stable Diffusion 1.x/2.x checkpoint, Hugging Face hub id or local "
              f"diffusers folder [default: {DEFAULT_SD_MODEL}; with --depth-image {DEFAULT_SD_DEPTH_MODEL}].")
@click.option("--steps", type=click.IntRange(1, 1000), help="Diffusion engine: DDIM steps [default: 50].")
@click.option("--guidance", type=click.FloatRange(1.0, None), help="Diffusion engine: classifier-free guidance "
              "scale, 1 = none; it acts only with a --prompt (or null-text inversion) [default: 7.5].")
@click.option("--shift-step", type=click.FloatRange(0.0, 1.0, max_open=True),
              help="Diffusion engine: fraction of the denoising after which the left view's latent is shifted into "
              "the right view; earlier lets the content drift, later leaves artefacts [default: 0.2].")
@click.option("--inversion", type=click.Choice(INVERSIONS),
              help="Diffusion engine, photos: ddim: DDIM inversion, the left view follows its inverted trajectory "
              "exactly (fast); null-text: the paper's null-text inversion, many times slower [default: ddim].")
@click.option("--attention", type=click.Choice(ATTENTION_MODES),
              help="Diffusion engine: uni: the right view's self-attention reads the left view's (the left is "
              "unchanged); bi: both views read each other (better aligned, but changes the left); off: no sharing, "
              "for ablation [default: uni].")
@click.option("--no-spsmd", is_flag=True, help="Diffusion engine: never re-impose the shifted left view outside the "
              "disocclusions (Symmetric Pixel Shift Masking Denoise off, for ablation).")
@click.option("--spsmd-every", type=click.IntRange(1, None), help="Diffusion engine: re-impose the shifted left view "
              "(SPSMD) at the shift step and then every N steps, as the paper's code does; the last steps stay free, "
              "which smooths the seams. 1: after every step [default: 10].")
@click.option("--composite", type=click.Choice(COMPOSITES), help="Diffusion engine: hybrid: the right eye is the warp "
              "engine's sub-pixel forward warp of the photo at its own resolution (identical to --engine warp away from "
              "the holes) and only the disocclusions are painted by the diffusion, colour-matched; latent: the paper's "
              "output, the whole right eye decoded from the model's latent and resized [default: hybrid].")
@click.option("--fill-resolution", type=click.Choice(FILL_RESOLUTIONS), help="Diffusion engine, --composite hybrid: "
              "model: the holes come from the whole view diffused at the model's resolution, upscaled; native: up to "
              "8 model-sized crops around the holes are diffused again at the photo's own scale (full detail in the "
              "holes of a large photo, each crop costs about one more run) [default: model].")
@click.option("--precision", type=click.Choice(PRECISIONS), help="Diffusion engine: number format of the networks; "
              "fp16 and bf16 halve the memory and are faster on GPUs, fp32 is the reference (fp16 needs a GPU) "
              "[default: bf16 on CUDA GPUs that support it, else fp16 there; fp32 on CPU].")
@click.option("--deblur", is_flag=True, help="Diffusion engine: start the disocclusions from noise instead of zeros "
              "(helps wide baselines, hurts small ones in the paper).")
@click.option("--seed", type=int, help="Diffusion engine: seed of every random draw; the same seed gives the same "
              "output [default: 0].")
@click.option("--resolution", type=click.IntRange(64, None),
              help="Diffusion engine: the model works on about RES x RES pixels (aspect kept) and the result is "
              "resized back; --prompt images are RES x RES [default: the model's own, 512 for SD 1.5].")
@click.option("--max-width", "max_eye_width", type=click.IntRange(16, None),
              help="Downscale each eye to at most this width in pixels (presets set it per headset).")
@click.option("--type", "image_type", type=click.Choice(["jpg", "png", "webp", "tif"]),
              help="Output image type [default: same as the input when possible, else jpg].")
@click.option("--quality", "jpeg_quality", type=click.IntRange(1, 100), help="JPEG/WebP/HEIC quality [default: 95].")
@click.option("--png-compression", type=click.IntRange(0, 9), default=DEFAULT_PNG_COMPRESSION, show_default=True,
              help="zlib level of PNG (and 16-bit TIFF) output, photos and --frames-out frames: 0 none, 9 smallest; "
              "the default is several times faster than 6, for about 10 % larger files.")
@click.option("--codec", type=click.Choice(CODEC_CHOICES), help="Videos: h264 (libx264, plays everywhere), hevc "
              "(libx265, smaller files, 10-bit; Apple Vision Pro), auto (a hardware encoder when one works here: "
              "NVENC, VideoToolbox, Quick Sync, AMF; HEVC for 10-bit, else H.264; software otherwise) or an FFmpeg "
              "encoder by name (a hardware one that does not work falls back to software, saying so) "
              "[default: the preset's, else h264].")
@click.option("--crf", type=click.IntRange(0, 51), help="Videos: constant quality, lower is better and larger (18 is "
              "near transparent for h264, 20 for hevc) [default: 18/20, unless the preset sets a rate].")
@click.option("--bitrate", help="Videos: target bitrate such as 12M or 800k instead of constant quality "
              "[default: the preset's bits per pixel x width x height x frames/s, if it sets one].")
@click.option("--pix-fmt", "pix_fmt", type=click.Choice(["yuv420p", "yuv420p10le"]),
              help="Videos: yuv420p (8-bit, widest support) or yuv420p10le (10-bit, less banding) "
              "[default: the preset's, else yuv420p].")
@click.option("--audio", type=click.Choice(AUDIO_CHOICES), help="Videos: auto copies each audio stream where the "
              "output container holds it and re-encodes it as AAC where it cannot (Opus or FLAC in .mov, say; an Apple "
              "spatial video gets AAC); copy refuses, before any encoding, audio the container cannot hold; aac always "
              "re-encodes; none leaves the audio out [default: the preset's, else auto].")
@click.option("--batch-size", type=click.IntRange(1, 256), help="Videos: frames the depth model sees in one pass; "
              f"more keeps a GPU busy, and costs memory [default: {DEFAULT_GPU_BATCH} on CUDA, else 1].")
@click.option("--baseline-mm", type=click.FloatRange(0.0, 1000.0, min_open=True),
              help="With --format spatial: the distance between the two eyes' cameras the file states, in "
              f"millimetres (for the player's sense of scale) [default: a spatial INPUT's own; else "
              f"{DEFAULT_BASELINE_MM:g}, an average adult's interpupillary distance].")
@click.option("--hfov", type=click.FloatRange(0.0, 180.0, min_open=True, max_open=True),
              help="With --format spatial: the horizontal field of view of the picture the file states, in degrees "
              "(for how wide the player shows it) [default: a spatial INPUT's own; a photo's own, from the 35 mm "
              f"equivalent focal length in its EXIF; else, and for videos, {DEFAULT_HFOV:g}, about a phone's main "
              "camera].")
@click.option("--mvhevc-structure", type=click.Choice(["apple", "independent"]),
              help="With --format spatial, videos: how the right eye's layer is coded. apple: as Apple's encoder "
              "codes it (it names the left eye's layer as its reference, and starts with a CRA picture); "
              "independent: two independent layers (no reference layer, IDR pictures in both) [default: apple].")
@click.option("--sequence", is_flag=True, help="Each folder INPUT is one video: its images are numbered frames "
              "(frame1.png ... frame10.png, in natural order, all the same size), written as NAME_LR.mp4 next to "
              "the folder (or -o FILE), encoded with the video options. Without it a folder is an album of photos.")
@click.option("--fps", help="With --sequence: frame rate of the frames, e.g. 25, 30000/1001 or 29.97 "
              "(read as 30000/1001) [default: 30].")
@click.option("--frames-out", is_flag=True, help="Write a video's (or a --sequence's) stereo frames as numbered "
              "images NAME_LR/000001.png ... (--type sets png or jpg [default: png]) instead of a video file; -o "
              "names the folder. Audio is not written. With --skip-existing finished frames are kept (resume).")
@click.option("--resume/--no-resume", default=True, show_default=True, help="Videos: a long video is converted in "
              "segments kept in a hidden work folder beside the output; a run that was killed goes on from its last "
              "finished segment when run again with the same source and settings (they are checked). --no-resume "
              "starts over.")
@click.option("--segment-seconds", type=click.FloatRange(1, None), help="Videos: length of the segments (each starts "
              "at a keyframe); a kill loses at most one, and --cluster spreads them over workers [default: 30].")
@click.option("--start", "trim_start", help="Videos: convert from this time on (seconds or [HH:]MM:SS); the output "
              "starts at 0, audio trimmed alike.")
@click.option("--end", "trim_end", help="Videos: convert up to this time (seconds or [HH:]MM:SS).")
@click.option("--preview", is_flag=True, help="Videos: convert only 10 seconds from the middle, to try settings.")
@click.option("--max-fps", type=click.FloatRange(1, 1000), help="Videos: drop frames so that at most this many per "
              "second remain (e.g. 30 for a 60 fps clip); timestamps of the kept frames are kept.")
@click.option("--cluster", metavar="auto|ADDRESS", help="Run the jobs of the batch (photos, videos, and the segments "
              "of long videos) on Ray workers: auto joins the Ray cluster of this machine (ray start --head) or starts "
              "a local one; ADDRESS joins another (e.g. ray://head:10001). Needs pip install \"sbsconvert[cluster]\"; "
              "inputs and outputs must be on a file system all workers share.")
@click.option("--workers", type=click.IntRange(1, None), help="With --cluster: how many workers [default: one per GPU "
              "of the cluster, else one per CPU].")
@click.option("-r", "--recursive", is_flag=True, help="Look for photos in sub-folders of folder INPUTs too; "
              "outputs mirror the folder tree.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True,
              help="Where models and the warp run: auto picks CUDA, then Apple MPS, then CPU.")
@click.option("--skip-existing", is_flag=True, help="Skip photos whose outputs already exist and write only "
              "missing ones: run the same command again to finish an interrupted batch (outputs are only ever "
              "published complete, so an existing one is finished). Runs started together on one folder share "
              "the work (each job is locked while converted).")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@click.option("-v", "--verbose", is_flag=True, help="Also print where each disparity came from and the time per stage.")
@click.option("--json", "json_summary", is_flag=True, help="Print a machine-readable summary on stdout at the end: "
              "converted, skipped and failed inputs with their outputs and errors; for a run refused before it "
              "starts, \"refused\" gives the reason.")
def convert(inputs: tuple[Path, ...], **options: Any) -> None:
    """Convert photos, videos, or folders of them (INPUT...) into stereo images and videos.
    Inputs that are already stereo (a 3D camera's MPO, Apple spatial photos and videos) keep
    their own two eyes, laid out in the chosen format.

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


main.add_command(eval_command)
main.add_command(serve_command)


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
    click.echo(json.dumps(BatchSummary(refused=message).as_json(), indent=2))


def _convert(inputs: list[Path], options: dict[str, Any]) -> int:
    """Map the options to settings, run the library's conversion and report its summary."""
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
