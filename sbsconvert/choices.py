"""The names users choose from, and the defaults, of every stage: what `--help` shows.

They are plain data, kept here apart from the stages that act on them (which load numpy, OpenCV,
PyAV, torch), so the command line can show them, and answer --version, --help or a refusal, without
loading any stage. Each stage module takes its own from here: one definition each."""

from __future__ import annotations

from dataclasses import dataclass

# --- where the depth comes from ----------------------------------------------------------------
DEPTH_SOURCES = ("auto", "embedded", "model")
DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
DISPARITY_KINDS = ("relative", "depth", "pixels")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")
DEFAULT_GPU_BATCH = 8  # video frames per depth model pass on CUDA

# --- temporal stability of video depth -----------------------------------------------------------
TEMPORAL_METHODS = ("none", "ema", "flow")
DEFAULT_TEMPORAL = "flow"  # bench/RESULTS.md, "Flicker of per-frame depth": least flicker, no trails
DEFAULT_STRENGTH = 0.5
DEFAULT_CUT_THRESHOLD = 0.12  # mean absolute change of the (grey, downscaled) frame that marks a cut

# --- stereo engines ------------------------------------------------------------------------------
ENGINES = ("warp", "diffusion")
EYES = ("right", "both")
MAX_DIVERGENCE = 10.0
FILL_METHODS = ("inpaint", "background", "stretch", "blank")
PLATE_FILL = "plate"  # videos: holes filled from the shot's other frames (video/plate.py)
FILL_CHOICES = (*FILL_METHODS, PLATE_FILL)
DEFAULT_SD_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_SD_DEPTH_MODEL = "stabilityai/stable-diffusion-2-depth"
INVERSIONS = ("ddim", "null-text")
ATTENTION_MODES = ("uni", "bi", "off")
COMPOSITES = ("hybrid", "latent")
FILL_RESOLUTIONS = ("model", "native")
# A video's holes with the diffusion engine: keyframes: the plate first, the diffusion only where no
# frame saw, on keyframes, carried forward (video/paint.py); every-frame: every frame diffused in full.
VIDEO_PAINTS = ("keyframes", "every-frame")
DEFAULT_REPAINT_AREA = 0.002  # share of a frame's pixels left unpainted that makes it a keyframe


# --- layouts -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    name: str
    suffixes: tuple[str, ...]  # filename suffixes players recognise; two entries = two files (L, R)
    description: str
    extension: str | None = None  # a file type of its own, holding every frame (mpo); None: any image type

    @property
    def naming(self) -> str:
        """How output names show the layout: "_LR", "_L/_R", ".mpo"."""
        return "/".join(suffix + (self.extension or "") for suffix in self.suffixes)


LAYOUTS = {
    layout.name: layout
    for layout in (
        Layout("sbs", ("_LR",), "side by side, full width per eye (left eye on the left)"),
        Layout("hsbs", ("_HSBS",), "side by side, each eye squeezed to half width (frame keeps the input size)"),
        Layout("tb", ("_TB",), "over-under, full height per eye (left eye on top)"),
        Layout("htb", ("_HOU",), "over-under, each eye squeezed to half height"),
        Layout("anaglyph", ("_anaglyph",), "red-cyan anaglyph (Dubois), for paper glasses"),
        Layout("crosseye", ("_RL",), "side by side with the eyes swapped, for cross-eyed free viewing"),
        Layout("lr-pair", ("_L", "_R"), "two separate files, one per eye"),
        Layout("mpo", ("",), "one Multi Picture Object file holding both eyes as JPEGs (CIPA stereo type; "
               "3D cameras, Nintendo 3DS, stereo photo viewers)", extension=".mpo"),
        Layout("spatial", ("_spatial",), "Apple spatial media (Apple Vision Pro, iPhone): a photo becomes one .heic "
               "holding both eyes as a stereo pair with camera metadata, a video one MV-HEVC .mov/.mp4 holding both "
               "eyes as two views; the left eye is the 2D image"),
    )
}
# How an input frame may already pack both eyes: the packed layouts compose() writes.
PACKED_LAYOUTS = ("sbs", "hsbs", "tb", "htb", "crosseye")
# Colour and depth side by side (rgbd) or over-under (rgbd-tb) in one frame, as iw3 and Owl3D
# export them: the packing of the colour half and the depth half.
RGBD_LAYOUTS = {"rgbd": "sbs", "rgbd-tb": "tb"}
# --input-layout: auto (stereo files are read as such), 2d (always one picture), a packing, or RGB+depth.
INPUT_LAYOUTS = ("auto", "2d", *PACKED_LAYOUTS, *RGBD_LAYOUTS)

# --- photo output --------------------------------------------------------------------------------
IMAGE_TYPES = ("jpg", "png", "webp", "tif")
DEFAULT_PNG_COMPRESSION = 1
DEFAULT_BASELINE_MM = 64.0  # a typical distance between human pupils, as Apple's own examples use
DEFAULT_HFOV = 60.0  # degrees; about a phone's main camera (as the spatial video default)

# --- video output --------------------------------------------------------------------------------
SOFTWARE = {"h264": "libx264", "hevc": "libx265"}
# Hardware encoders per format, in the order `auto` tries them.
HARDWARE = {
    "h264": ("h264_nvenc", "h264_videotoolbox", "h264_qsv", "h264_amf"),
    "hevc": ("hevc_nvenc", "hevc_videotoolbox", "hevc_qsv", "hevc_amf"),
}
FORMAT_OF = {encoder: kind for kind, names in HARDWARE.items() for encoder in names} | {
    encoder: kind for kind, encoder in SOFTWARE.items()
}
# In a fixed order (--help lists them): auto, the formats, the software encoders, the hardware ones.
CODEC_CHOICES = ("auto", *SOFTWARE, *SOFTWARE.values(), *(name for names in HARDWARE.values() for name in names))
PIXEL_FORMATS = ("yuv420p", "yuv420p10le")
AUDIO_CHOICES = ("auto", "copy", "aac", "none")
MVHEVC_STRUCTURES = ("apple", "independent")
