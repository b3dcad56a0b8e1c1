"""Command line: `sbsconvert INPUT... [options]` converts; `sbsconvert COMMAND` runs other tools."""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Iterable

import click
import cv2
from click.core import ParameterSource
from sbsconvert import __version__
from sbsconvert.batch import BatchSummary, JobResult, Reporter, check_output_folders, check_targets, report_passed_over, run_batch
from sbsconvert.convert import DEPTH_SOURCES, ConvertSettings, DisparityProvider, convert_image, write_pair
from sbsconvert.decode import Picture
from sbsconvert.depth import DEFAULT_DEPTH_MODEL
from sbsconvert.device import DEVICE_CHOICES, PRECISIONS, Compute, select_compute
from sbsconvert.disparity import DISPARITY_KINDS, Disparity, load_disparity_file
from sbsconvert.engines import ENGINES, create_engine
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
from sbsconvert.errors import SbsError, run_command
from sbsconvert.evaluate.command import eval_command
from sbsconvert.jobs import Job, PassedOver, file_outputs, output_types, photo_container, plan_jobs, plan_stream_jobs
from sbsconvert.layout import INPUT_LAYOUTS, LAYOUTS, PACKED_LAYOUTS, RGBD_LAYOUTS
from sbsconvert.output import DEFAULT_PNG_COMPRESSION
from sbsconvert.presets import load_preset, preset_names
from sbsconvert.spatial_photo import DEFAULT_BASELINE_MM, DEFAULT_HFOV
from sbsconvert.video import SPATIAL_CODECS, is_video_path
from sbsconvert.video.audio import AUDIO_CHOICES
from sbsconvert.video.encoders import CODEC_CHOICES
from sbsconvert.video.temporal import DEFAULT_CUT_THRESHOLD, DEFAULT_STRENGTH, DEFAULT_TEMPORAL, TEMPORAL_METHODS

DEFAULT_GPU_BATCH = 8  # video frames per depth model pass on CUDA

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
    run_command(lambda: _convert(list(inputs), options), on_refusal=echo_refusal if options["json_summary"] else None)


main.add_command(eval_command)


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


def _converters(
    options: dict[str, Any], merged: dict[str, Any], video: Any, frame_rate: Any, generating: bool, verbosity: int
) -> tuple[Any, Any, Any]:
    """(engine, convert photo or generated image, convert a video or one segment of it): built once per
    process, here or in each --cluster worker."""
    reporter = Reporter(verbosity)
    settings = ConvertSettings(
        layout=merged["format"],
        divergence=merged["divergence"],
        convergence=merged["convergence"],
        eye=options["eye"],
        max_eye_width=merged["max_eye_width"],
        image_type=merged["image_type"],
        quality=merged["jpeg_quality"],
        png_compression=options["png_compression"],
        force=options["force"],
        skip_existing=options["skip_existing"],
        **_spatial_camera(options, merged),
        input_layout=options["input_layout"],
    )
    compute = select_compute(options["device"])
    engine_name = "diffusion" if generating else options["engine"]
    engine_compute = select_compute(options["device"], options["precision"]) if options["precision"] else compute
    engine = create_engine(engine_name, engine_compute, **_engine_options(engine_name, merged, options))
    disparity_for = DisparityProvider(
        options["disparity_path"],
        options["disparity_kind"],
        "model" if generating else options["depth_source"],
        make_estimator=lambda: _make_estimator(options["depth_model"], compute, options["depth_resolution"]),
        report=reporter.info,
        frame_rate=frame_rate,
    )
    if generating:
        depth = load_disparity_file(options["depth_image"], options["disparity_kind"]) if options["depth_image"] else None
        convert_photo = lambda job: _generate_image(job, settings, engine, disparity_for, depth)
    else:
        convert_photo = lambda job: convert_image(job, settings, engine, disparity_for)
    convert_part = None
    if video is not None:
        from sbsconvert.video.pipeline import convert_video

        from sbsconvert.video.temporal import make_smoother

        # Per-frame maps (a model's, or given per frame) get each shot's range steadied; one given map is kept as it is.
        path = options["disparity_path"]
        smoother = lambda: make_smoother(options["temporal"], options["temporal_strength"], options["cut_threshold"],
                                         normalize_range=path is None or path.is_dir() or is_video_path(path))
        batch_size = options["batch_size"] or (DEFAULT_GPU_BATCH if compute.device.type == "cuda" else 1)
        convert_part = lambda job, segment: convert_video(
            job, settings, engine, disparity_for, video, smoother=smoother(), progress=verbosity > 0 and segment is None,
            frame_rate=frame_rate, frames_out=options["frames_out"], segment=segment, batch_size=batch_size)
    return engine, convert_photo, convert_part


def _merge_preset(options: dict[str, Any]) -> dict[str, Any]:
    preset = load_preset(options["preset"]) if options.get("preset") else {}
    merged = dict(DEFAULTS)
    merged.update({key: value for key, value in preset.items() if key in DEFAULTS})
    merged.update({key: value for key, value in options.items() if key in DEFAULTS and value is not None})
    if options.get("layout") is not None:
        merged["format"] = options["layout"]
    if preset.get("fill") and options.get("fill") is None:
        merged["fill"] = preset["fill"]
    if options.get("image_type") is None and photo_container(merged["format"]):
        merged["image_type"] = None  # a preset's image type is for plain images, not .mpo/.heic files
    _preset_engine(options, preset)
    return merged


def _preset_engine(options: dict[str, Any], preset: dict[str, Any]) -> None:
    """The preset's engine and [diffusion] settings, for those the command line does not give."""
    if "engine" not in preset:
        return
    if preset["engine"] not in ENGINES:
        raise SbsError(f"preset {options['preset']}: unknown engine '{preset['engine']}' (choose from {', '.join(ENGINES)})")
    if click.get_current_context().get_parameter_source("engine") != ParameterSource.COMMANDLINE:
        options["engine"] = preset["engine"]
    elif options["engine"] != preset["engine"] and "diffusion" in preset:
        raise SbsError(f"preset {options['preset']} sets diffusion engine settings; it does not apply to --engine {options['engine']}")
    for name, value in preset.get("diffusion", {}).items():
        if options[name] is None and not (name == "spsmd_every" and options["no_spsmd"]):  # --no-spsmd wins
            options[name] = value


def _convert(inputs: list[Path], options: dict[str, Any]) -> int:
    if options["quiet"] and options["verbose"]:
        raise SbsError("--quiet and --verbose contradict each other; give one")
    if options["force"] and options["skip_existing"]:
        raise SbsError("--force and --skip-existing contradict each other; give one")
    reporter = Reporter(0 if options["quiet"] else 2 if options["verbose"] else 1)
    merged = _merge_preset(options)
    if not 0 < merged["divergence"] <= MAX_DIVERGENCE and options["disparity_kind"] != "pixels":
        raise SbsError(f"divergence must be between 0 and {MAX_DIVERGENCE:g} percent, got {merged['divergence']}")
    generating = _generating(inputs, options)
    frame_rate = _sequence_rate(options)
    passed_over: list[PassedOver] = []  # files the INPUT folders hold that are not converted
    if generating:
        jobs = [_generation_job(options, merged)]
    elif options["sequence"] or options["frames_out"]:
        jobs = plan_stream_jobs(inputs, options["output"], merged["format"], sequence=options["sequence"],
                                frames_out=options["frames_out"])
    else:
        jobs = plan_jobs(inputs, options["output"], merged["format"], merged["image_type"], options["recursive"],
                         skip_named_outputs=options["input_layout"] not in PACKED_LAYOUTS, passed_over=passed_over)
        report_passed_over(passed_over, reporter)
    if options["disparity_path"] is not None and options["input_layout"] in RGBD_LAYOUTS:
        raise SbsError(f"--input-layout {options['input_layout']} carries its own depth; drop --disparity")
    if options["disparity_path"] is not None and len(jobs) > 1 and not options["disparity_path"].is_dir():
        raise SbsError("--disparity FILE works with one photo; for several photos give a folder of maps")
    video = _video_settings(options, merged, jobs)
    check_output_folders(jobs)
    if options["frames_out"]:
        from sbsconvert.video.encode import check_frame_folder

        for job in jobs:
            for folder in job.outputs:
                check_frame_folder(folder, options["force"], options["skip_existing"])
    else:
        check_targets(jobs, options["force"], options["skip_existing"])
    setup = functools.partial(_converters, options, merged, video, frame_rate, generating, reporter.verbosity)
    is_video = lambda job: is_video_path(job.source) or options["sequence"]
    convert_video_job = None
    if video is not None:
        from sbsconvert.video.decode import refuse_unsaid_packing
        from sbsconvert.video.segments import convert_in_segments

        segmenting = _segment_options(options)

        def convert_video_job(job: Job, convert_part: Any, runner: Any = None) -> Any:
            if options["input_layout"] == "auto":
                refuse_unsaid_packing(job.source)
            return convert_in_segments(
                job, segmenting, convert_part, video=None if options["frames_out"] else video, layout=merged["format"],
                force=options["force"], image_type=merged["image_type"], frame_rate=frame_rate, report=reporter.info,
                progress=not options["quiet"], runner=runner)
    elif _given_flags(options, SEGMENT_OPTIONS):
        raise SbsError(f"{', '.join(_given_flags(options, SEGMENT_OPTIONS))} only apply to videos, and no INPUT is a video")
    engine = None
    if options["workers"] is not None and options["cluster"] is None:
        raise SbsError("--workers sets the number of --cluster workers; add --cluster auto (or an address)")
    if options["cluster"] is not None:
        from sbsconvert.cluster import run_on_cluster

        summary = run_on_cluster(options["cluster"], options["workers"], jobs, setup, reporter, is_video=is_video,
                                 convert_video_job=convert_video_job, skip_existing=options["skip_existing"])
    else:
        engine, convert_photo, convert_part = setup()
        convert_one = lambda job: (
            convert_video_job(job, convert_part) if convert_video_job is not None and is_video(job) else convert_photo(job)
        )
        summary = run_batch(jobs, convert_one, reporter, skip_existing=options["skip_existing"])
    summary.add_passed_over(passed_over)
    if len(jobs) > 1 or passed_over or summary.interrupted:
        reporter.info(summary.line())
    stage_times = getattr(engine, "total_timings", None)
    if stage_times is not None and stage_times.seconds:
        reporter.info(f"{engine.name} time per stage: {stage_times}")
    if options["json_summary"]:
        click.echo(json.dumps(summary.as_json(), indent=2))
    if summary.interrupted:
        raise KeyboardInterrupt
    return 1 if summary.with_status("failed") else 0


# Video options (click parameter name -> VideoSettings field, as in a preset's [video] table).
VIDEO_OPTIONS = {"codec": "codec", "crf": "crf", "bitrate": "bitrate", "pix_fmt": "pixel_format", "audio": "audio"}


def _video_settings(options: dict[str, Any], merged: dict[str, Any], jobs: list[Job]) -> Any:
    """Encoder settings (a VideoSettings) when any INPUT is a video: options over the preset's [video] table."""
    given = {field: options[name] for name, field in VIDEO_OPTIONS.items() if options[name] is not None}
    named = _given_flags(options, VIDEO_OPTIONS)
    if not options["sequence"] and not any(is_video_path(job.source) for job in jobs):
        if given:
            raise SbsError(f"{', '.join(named)} only apply to videos, and no INPUT is a video")
        return None
    if merged["format"] == "mpo":
        raise SbsError("--format mpo is a photo format; for videos choose another --format")
    spatial = merged["format"] == "spatial"
    if spatial and options["frames_out"]:
        raise SbsError("--format spatial writes one MV-HEVC video file; --frames-out cannot hold it (use lr-pair)")
    if spatial and given.get("codec", "hevc") not in SPATIAL_CODECS:
        raise SbsError(f"--format spatial is MV-HEVC made with libx265; drop --codec {given['codec']}")
    if options["frames_out"] and given:
        raise SbsError(f"{', '.join(named)} set the video encoder; --frames-out writes images (see --type, --quality)")
    from sbsconvert.video.encode import VideoSettings

    preset = dict(load_preset(options["preset"]).get("video", {})) if options.get("preset") else {}
    if options["crf"] is not None or options["bitrate"] is not None:
        for rate in ("crf", "bitrate", "bits_per_pixel"):  # an explicit rate replaces the preset's
            preset.pop(rate, None)
    preset.update(given)
    if spatial:
        preset["codec"] = "hevc"  # whatever a preset's codec, spatial video is HEVC
    video = VideoSettings(**preset)
    note = video.check()  # probes the encoder; a hardware one that does not work gives way to software
    if note and not options["quiet"]:
        click.echo(note, err=True)
    if spatial:
        from sbsconvert.video.spatial import check_spatial_settings

        for job in jobs:
            if options["sequence"] or is_video_path(job.source):  # photos become .heic files
                check_spatial_settings(video, job.outputs[0].suffix)
    return video


def _spatial_camera(options: dict[str, Any], merged: dict[str, Any]) -> dict[str, Any]:
    """ConvertSettings' baseline_mm / hfov_degrees / mvhevc_structure from --baseline-mm / --hfov /
    --mvhevc-structure (spatial only)."""
    named = _given_flags(options, ("baseline_mm", "hfov", "mvhevc_structure"))
    if named and merged["format"] != "spatial":
        raise SbsError(f"{', '.join(named)} only apply to --format spatial (the file it describes)")
    camera = {"baseline_mm": options["baseline_mm"], "hfov_degrees": options["hfov"],
              "mvhevc_structure": options["mvhevc_structure"]}
    return {name: value for name, value in camera.items() if value is not None}


# Options that change the output of a video (everything but where and how verbosely it is written).
_NOT_SHAPING_OUTPUT = {"quiet", "verbose", "json_summary", "force", "skip_existing", "resume", "output", "device",
                       "cluster", "workers",
                       "audio"}  # muxed when the segments are joined: a resumed run may change it
SEGMENT_OPTIONS = ("segment_seconds", "trim_start", "trim_end", "preview", "max_fps")


def _segment_options(options: dict[str, Any]) -> Any:
    """How videos are cut into segments and trimmed (a SegmentOptions)."""
    from sbsconvert.video.segments import DEFAULT_SEGMENT_SECONDS, SegmentOptions, parse_time
    from sbsconvert.video.temporal import warmup_frames

    start = None if options["trim_start"] is None else parse_time(options["trim_start"], "--start")
    end = None if options["trim_end"] is None else parse_time(options["trim_end"], "--end")
    if options["preview"] and (start is not None or end is not None):
        raise SbsError("--preview picks its own 10 seconds; drop --start/--end")
    if start is not None and end is not None and end <= start:
        raise SbsError(f"--end ({options['trim_end']}) must come after --start ({options['trim_start']})")
    fingerprint = {name: str(value) for name, value in sorted(options.items()) if name not in _NOT_SHAPING_OUTPUT}
    return SegmentOptions(seconds=options["segment_seconds"] or DEFAULT_SEGMENT_SECONDS, start=start, end=end,
                          preview=10.0 if options["preview"] else None, max_fps=options["max_fps"],
                          resume=options["resume"], fingerprint=fingerprint,
                          shot_anchors=options["engine"] == "diffusion",  # its frames attend to their shot's first
                          warmup=warmup_frames(options["temporal"], options["temporal_strength"]))


def _given_flags(options: dict[str, Any], names: Iterable[str]) -> list[str]:
    """The command-line spelling (--pix-fmt) of the options among `names` that were given."""
    # The spelling is the option's own: a parameter's name may differ from it (trim_start is --start).
    # (from the command itself: cluster workers call this with no click context)
    spelling = {param.name: max(param.opts, key=len) for param in convert.params}
    # identity checks: --seed 0 and --crf 0 are given values, an unset flag is False
    return [spelling[name] for name in names if options[name] is not None and options[name] is not False]


def _sequence_rate(options: dict[str, Any]) -> Any:
    """The --fps of a --sequence (a Fraction), None otherwise; --fps alone is refused."""
    if options["fps"] is None:
        return None
    if not options["sequence"]:
        raise SbsError("--fps sets the frame rate of a --sequence folder; a video keeps its own rate")
    from sbsconvert.video.decode import parse_frame_rate

    return parse_frame_rate(options["fps"])


def _engine_options(name: str, merged: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    if name == "warp":
        return {"fill": merged["fill"]}
    if name == "diffusion":
        return _diffusion_settings(options)
    return {}


# Diffusion options (click parameter names); given ones are passed on, the rest keep their defaults.
DIFFUSION_VALUES = ("model", "steps", "guidance", "shift_step", "inversion", "attention", "seed", "prompt",
                    "negative_prompt", "resolution", "spsmd_every", "composite", "fill_resolution")
DIFFUSION_ONLY = (*DIFFUSION_VALUES, "depth_image", "no_spsmd", "deblur", "precision")


def _diffusion_settings(options: dict[str, Any]) -> dict[str, Any]:
    """DiffusionSettings fields from the command line."""
    settings = {name: options[name] for name in DIFFUSION_VALUES if options[name] is not None}
    if options["depth_image"] is not None and options["model"] is None:
        settings["model"] = DEFAULT_SD_DEPTH_MODEL
    if options["no_spsmd"] and options["spsmd_every"] is not None:
        raise SbsError("--spsmd-every sets how often SPSMD runs; it contradicts --no-spsmd")
    settings["spsmd"] = not options["no_spsmd"]
    settings["deblur"] = options["deblur"]
    settings["progress"] = not options["quiet"]
    return settings


def _generating(inputs: list[Path], options: dict[str, Any]) -> bool:
    """True for text/depth -> stereo (--prompt, no INPUT); refuses diffusion options nothing would use."""
    if options["prompt"] is not None and not inputs:
        engine_given = click.get_current_context().get_parameter_source("engine") == ParameterSource.COMMANDLINE
        if engine_given and options["engine"] != "diffusion":
            raise SbsError(f"--prompt without INPUT generates with the diffusion engine; drop --engine {options['engine']}")
        if options["output"] is None:
            raise SbsError("--prompt without INPUT makes a new image: name the file to write with -o OUT.jpg")
        if options["eye"] == "both":
            raise SbsError("--eye both needs a photo as the centre view; it does not apply to --prompt")
        if options["input_layout"] != "auto":
            raise SbsError("--input-layout says how an INPUT packs both eyes; it does not apply to --prompt")
        if options["fill_resolution"] == "native":
            raise SbsError("--fill-resolution native repaints a photo's holes at the photo's scale; a generated image "
                           "is made at the model's resolution already")
        if options["disparity_path"] is not None and options["disparity_path"].is_dir():
            raise SbsError("with --prompt, --disparity must be one map file (for the generated image)")
        return True
    if not inputs:
        raise SbsError("no INPUT given (a photo, or a folder of photos), and no --prompt to generate from")
    if options["depth_image"] is not None:
        raise SbsError("--depth-image generates a new image with --prompt and no INPUT; for a photo's depth use --disparity")
    if options["engine"] != "diffusion":
        given = _given_flags(options, DIFFUSION_ONLY)
        if given:
            raise SbsError(f"{', '.join(given)} only apply to --engine diffusion (or to --prompt without INPUT)")
    return False


def _generation_job(options: dict[str, Any], merged: dict[str, Any]) -> Job:
    """The one 'job' of text/depth -> stereo: its input is the depth image or the prompt."""
    output = options["output"]
    if output.suffix.lower() not in output_types(merged["format"]):
        raise SbsError(f"-o {output}: give an image file name ({', '.join(output_types(merged['format']))})")
    source = options["depth_image"] if options["depth_image"] is not None else Path("prompt")
    return Job(source=source, outputs=file_outputs(output, merged["format"]))


def _generate_image(
    job: Job, settings: ConvertSettings, engine: Any, disparity_for: DisparityProvider, depth: Disparity | None
) -> JobResult:
    pair = engine.generate(
        divergence=settings.divergence,
        convergence=settings.convergence,
        disparity_for=lambda pixels: disparity_for(job.source, Picture(pixels)),
        depth=depth,
    )
    write_pair(pair, job, settings)
    return JobResult(details=[f"{job.source.name}: {engine.timings}"])


def _make_estimator(model_name: str, compute: Compute, resolution: int | None) -> Any:
    from sbsconvert.depth import load_depth_model

    return load_depth_model(model_name, compute, resolution)
