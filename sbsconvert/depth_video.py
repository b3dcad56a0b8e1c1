"""Video-consistent depth: Video Depth Anything (Chen et al., "Video Depth Anything: Consistent Depth
Estimation for Super-Long Videos", 2025), Small size.

The network is Depth Anything V2's (a DINOv2 ViT encoder and a DPT head) with temporal attention in
the head: at four of its feature maps, every pixel attends to itself in the other frames of the
window (sinusoidal frame-position encoding), so the depth of a window of frames is estimated
together and agrees from frame to frame. It sees at most 32 frames at once.

A long video runs in overlapping windows of 32 frames. Each window after the first starts with
two key frames (the stream's first frame and one from about 20 frames back, which anchor the depth
scale over long spans) and the last 8 frames of the window before (the overlap); the other 22 are
new. The window's output is brought to the previous one's scale and shift by least squares over
those 10 frames whose depth is already known, and the 8 overlap frames are blended linearly from
the old estimate to the new one, so there is no step between windows. The maps are the network's
relative inverse depth, which is disparity up to scale: brighter = nearer, as the project's maps.

The official checkpoint is one PyTorch file (`video_depth_anything_vits.pth`, a state dict); the
module tree here carries its parameter names, so it loads as it is. The architecture is read off
the checkpoint's shapes, which also lets the tests load tiny random ones through the same path.
"""

from __future__ import annotations

import math
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sbsconvert.device import Compute
from sbsconvert.disparity import Disparity, disparity_from_array
from sbsconvert.errors import SbsError, first_line
from sbsconvert.hub import load_pretrained

VIDEO_DEPTH_MODEL = "depth-anything/Video-Depth-Anything-Small"
ALIASES = {"vda-small": VIDEO_DEPTH_MODEL}
CHECKPOINT = "video_depth_anything_vits.pth"
_ALTERNATIVES = "pass a disparity map with --disparity FILE"

PATCH = 14
INPUT_SIZE = 518  # the short side the network was trained at
WINDOW = 32  # frames seen at once (the length of the frame-position encoding)
OVERLAP = 8  # frames a window shares with the one before, blended across
KEY_SLOT = 12  # the window slot whose frame becomes the next window's second key frame
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)
_WIDEST = 1.777  # wider frames see a smaller short side, so a window's memory stays that of 16:9
_PER_FRAME_CHUNK = 4  # frames through the per-frame stages at once: bounds the memory of a 32-frame window


def resolve_alias(name: str) -> str:
    return ALIASES.get(name.lower(), name)


def is_video_depth_model(name: str) -> bool:
    """Whether --depth-model names Video Depth Anything: its hub id or alias, a .pth checkpoint, or
    a folder holding the checkpoint."""
    name = resolve_alias(name)
    path = Path(name).expanduser()
    return (name.lower() == VIDEO_DEPTH_MODEL.lower() or path.suffix == ".pth"
            or (path.is_dir() and (path / CHECKPOINT).is_file()))


# ---- the network -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoDepthConfig:
    """The architecture; the defaults are the Small checkpoint's."""

    embed_dim: int = 384
    depth: int = 12  # encoder blocks
    grid: int = INPUT_SIZE // PATCH  # the encoder's learned position grid (grid x grid patches)
    out_channels: tuple[int, int, int, int] = (48, 96, 192, 384)  # the head's four feature maps
    features: int = 64  # the head's fusion width
    frames: int = WINDOW  # the temporal position encoding's length

    @property
    def heads(self) -> int:
        return max(1, self.embed_dim // 64)  # DINOv2's heads are 64 wide

    @property
    def taps(self) -> list[int]:
        """The encoder blocks whose outputs feed the head: the last of each quarter (2, 5, 8, 11)."""
        return [max(0, self.depth * quarter // 4 - 1) for quarter in range(1, 5)]

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> VideoDepthConfig:
        blocks = {int(match.group(1)) for key in state if (match := re.match(r"pretrained\.blocks\.(\d+)\.", key))}
        return cls(
            embed_dim=state["pretrained.cls_token"].shape[-1],
            depth=len(blocks),
            grid=math.isqrt(state["pretrained.pos_embed"].shape[1] - 1),
            out_channels=tuple(state[f"head.projects.{i}.weight"].shape[0] for i in range(4)),  # type: ignore[arg-type]
            features=state["head.scratch.layer1_rn.weight"].shape[0],
            frames=state["head.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0"
                         ".pos_encoder.pe"].shape[1],
        )


class _LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, dim))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _SelfAttention(dim, heads)
        self.ls1 = _LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, 4 * dim)
        self.ls2 = _LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=PATCH, stride=PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class _Encoder(nn.Module):
    """DINOv2 ViT: patches of 14 pixels, a class token, learned positions on a square grid."""

    def __init__(self, config: VideoDepthConfig):
        super().__init__()
        dim = config.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.grid**2 + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # training only; kept for the checkpoint's keys
        self.patch_embed = _PatchEmbed(dim)
        self.blocks = nn.ModuleList(_EncoderBlock(dim, config.heads) for _ in range(config.depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def positions(self, rows: int, columns: int) -> torch.Tensor:
        grid = math.isqrt(self.pos_embed.shape[1] - 1)
        if rows == columns == grid:
            return self.pos_embed
        patches = self.pos_embed[:, 1:].float().reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        # DINOv2 resamples by a scale factor nudged by 0.1 patch (a float-rounding guard); the
        # weights were trained with exactly this sampling.
        scale = ((rows + 0.1) / grid, (columns + 0.1) / grid)
        patches = F.interpolate(patches, scale_factor=scale, mode="bicubic", antialias=False)
        patches = patches.permute(0, 2, 3, 1).reshape(1, rows * columns, -1).to(self.pos_embed.dtype)
        return torch.cat([self.pos_embed[:, :1], patches], dim=1)

    def forward(self, images: torch.Tensor, taps: list[int]) -> list[torch.Tensor]:
        """The normalised patch tokens after each block in `taps`."""
        rows, columns = images.shape[2] // PATCH, images.shape[3] // PATCH
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.positions(rows, columns)
        tapped = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in taps:
                tapped.extend([x] * taps.count(index))
        return [self.norm(tokens)[:, 1:] for tokens in tapped]


class _FramePositions(nn.Module):
    """Sinusoidal encoding of a frame's place in the window (a buffer the checkpoint also holds)."""

    def __init__(self, dim: int, length: int):
        super().__init__()
        position = torch.arange(length, dtype=torch.float32)[:, None]
        frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        table = torch.zeros(1, length, dim)
        table[0, :, 0::2] = torch.sin(position * frequency)
        table[0, :, 1::2] = torch.cos(position * frequency)
        self.register_buffer("pe", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class _FrameAttention(nn.Module):
    """Attention along the frame axis: x is (pixels, frames, channels)."""

    def __init__(self, dim: int, heads: int, frames: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Identity()])
        self.pos_encoder = _FramePositions(dim, frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_encoder(x)
        pixels, frames, dim = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(pixels, frames, self.heads, dim // self.heads).transpose(1, 2)

        mixed = F.scaled_dot_product_attention(split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x)))
        return self.to_out[0](mixed.transpose(1, 2).reshape(pixels, frames, dim))


class _GatedGelu(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, gate = self.proj(x).chunk(2, dim=-1)
        return values * F.gelu(gate)


class _FeedForward(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.ModuleList([_GatedGelu(dim, 4 * dim), nn.Identity(), nn.Linear(4 * dim, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class _TemporalBlock(nn.Module):
    def __init__(self, dim: int, heads: int, frames: int):
        super().__init__()
        self.attention_blocks = nn.ModuleList(_FrameAttention(dim, heads, frames) for _ in range(2))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(2))
        self.ff = _FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = x + attention(norm(x))
        return x + self.ff(self.ff_norm(x))


class _TemporalTransformer(nn.Module):
    def __init__(self, channels: int, frames: int, heads: int = 8, groups: int = 32):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList([_TemporalBlock(channels, heads, frames)])
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (frames, channels, height, width), the frames of one window; a residual update."""
        frames, channels, height, width = x.shape
        hidden = self.proj_in(self.norm(x).permute(2, 3, 0, 1).reshape(height * width, frames, channels))
        for block in self.transformer_blocks:
            hidden = block(hidden)
        hidden = self.proj_out(hidden).reshape(height, width, frames, channels).permute(2, 3, 0, 1)
        return x + hidden


class _TemporalModule(nn.Module):
    def __init__(self, channels: int, frames: int):
        super().__init__()
        self.temporal_transformer = _TemporalTransformer(channels, frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal_transformer(x)


class _ResidualConv(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class _Fusion(nn.Module):
    """Adds a skip feature map to the coarser path, refines, and upsamples."""

    def __init__(self, channels: int):
        super().__init__()
        self.out_conv = nn.Conv2d(channels, channels, 1)
        self.resConfUnit1 = _ResidualConv(channels)
        self.resConfUnit2 = _ResidualConv(channels)

    def forward(self, path: torch.Tensor, skip: torch.Tensor | None = None,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        resize = {"size": size} if size is not None else {"scale_factor": 2}
        return self.out_conv(F.interpolate(path, **resize, mode="bilinear", align_corners=True))


class _Scratch(nn.Module):
    def __init__(self, out_channels: tuple[int, ...], features: int):
        super().__init__()
        for index, channels in enumerate(out_channels, start=1):
            setattr(self, f"layer{index}_rn", nn.Conv2d(channels, features, 3, padding=1, bias=False))
        for index in range(1, 5):
            setattr(self, f"refinenet{index}", _Fusion(features))
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(),
                                          nn.Conv2d(32, 1, 1), nn.ReLU())


class _Head(nn.Module):
    """DPT head with temporal modules on its two coarsest feature maps and first two fusions."""

    def __init__(self, config: VideoDepthConfig):
        super().__init__()
        channels = config.out_channels
        self.projects = nn.ModuleList(nn.Conv2d(config.embed_dim, c, 1) for c in channels)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(channels[0], channels[0], 4, stride=4),
            nn.ConvTranspose2d(channels[1], channels[1], 2, stride=2),
            nn.Identity(),
            nn.Conv2d(channels[3], channels[3], 3, stride=2, padding=1),
        ])
        self.scratch = _Scratch(channels, config.features)
        self.motion_modules = nn.ModuleList(
            _TemporalModule(c, config.frames) for c in (channels[2], channels[3], config.features, config.features))

    def feature_maps(self, tokens: list[torch.Tensor], rows: int, columns: int) -> list[torch.Tensor]:
        """Per frame: the encoder's tokens as four maps of 4, 2, 1 and 1/2 times the patch grid."""
        maps = []
        for level, x in enumerate(tokens):
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], rows, columns)
            maps.append(self.resize_layers[level](self.projects[level](x)))
        return maps

    def depth(self, path_3: torch.Tensor, layer_2: torch.Tensor, layer_1: torch.Tensor,
              size: tuple[int, int]) -> torch.Tensor:
        """Per frame: the last two fusions and the output convolutions."""
        scratch = self.scratch
        layer_1 = scratch.layer1_rn(layer_1)
        path_2 = scratch.refinenet2(path_3, scratch.layer2_rn(layer_2), size=layer_1.shape[2:])
        out = scratch.output_conv1(scratch.refinenet1(path_2, layer_1))
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=True)
        return F.relu(scratch.output_conv2(out))[:, 0]


class VideoDepthAnything(nn.Module):
    """(frames, 3, H, W) normalised images of one window, H and W multiples of 14 -> (frames, H, W)
    relative inverse depth."""

    def __init__(self, config: VideoDepthConfig = VideoDepthConfig()):
        super().__init__()
        self.config = config
        self.pretrained = _Encoder(config)
        self.head = _Head(config)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[2:]
        rows, columns = height // PATCH, width // PATCH
        taps = self.config.taps
        chunks = [self.head.feature_maps(self.pretrained(part, taps), rows, columns)
                  for part in images.split(_PER_FRAME_CHUNK)]
        layer_1, layer_2, layer_3, layer_4 = (torch.cat(level) for level in zip(*chunks))
        motion, scratch = self.head.motion_modules, self.head.scratch
        layer_3_rn = scratch.layer3_rn(motion[0](layer_3))
        path_4 = motion[2](scratch.refinenet4(scratch.layer4_rn(motion[1](layer_4)), size=layer_3_rn.shape[2:]))
        path_3 = motion[3](scratch.refinenet3(path_4, layer_3_rn, size=layer_2.shape[2:]))
        return torch.cat([
            self.head.depth(path, skip_2, skip_1, (height, width))
            for path, skip_2, skip_1 in zip(path_3.split(_PER_FRAME_CHUNK), layer_2.split(_PER_FRAME_CHUNK),
                                            layer_1.split(_PER_FRAME_CHUNK))
        ])


# ---- windows and stitching ---------------------------------------------------------------------


def fit_scale_shift(predicted: list[np.ndarray], reference: list[np.ndarray]) -> tuple[float, float]:
    """Scale and shift that bring `predicted` closest to `reference` (least squares over all pixels)."""
    p = np.concatenate([m.ravel() for m in predicted]).astype(np.float64)
    r = np.concatenate([m.ravel() for m in reference]).astype(np.float64)
    p_mean, r_mean = p.mean(), r.mean()
    variance = float(((p - p_mean) ** 2).mean())
    scale = float(((p - p_mean) * (r - r_mean)).mean()) / variance if variance > 1e-12 else 0.0
    if scale <= 0:  # no usable fit (a flat prediction): keep the window's scale, match the level only
        scale = 1.0
    return scale, float(r_mean - scale * p_mean)


class WindowStitcher:
    """Runs `predict` over overlapping windows of a stream of inputs and stitches its answers into
    one consistently scaled sequence (see the module's docstring).

    push() takes the next input and returns the maps that are now final, oldest first; finish()
    returns the rest. A map is final once the window after its own has been blended in, so answers
    come up to a window late."""

    def __init__(self, predict: Callable[[list], list[np.ndarray]], window: int = WINDOW, overlap: int = OVERLAP,
                 key_slot: int = KEY_SLOT):
        if not 2 + overlap <= key_slot < window - overlap:
            raise ValueError(f"key slot {key_slot} must be a new frame's: between {2 + overlap} and "
                             f"{window - overlap - 1} for windows of {window} with {overlap} overlapping")
        self.predict = predict
        self.window, self.overlap, self.key_slot = window, overlap, key_slot
        self._keys: list[tuple[object, np.ndarray]] = []  # the stream's first frame, then one from the last window
        self._tail: list[tuple[object, np.ndarray]] = []  # the last window's overlap frames, not yet final
        self._new: list[object] = []

    def push(self, item: object) -> list[np.ndarray]:
        self._new.append(item)
        known = len(self._keys) + len(self._tail)
        return self._run() if known + len(self._new) == self.window else []

    def finish(self) -> list[np.ndarray]:
        done = self._run() if self._new else []
        done += [value for _, value in self._tail]
        self._tail = []
        return done

    def _run(self) -> list[np.ndarray]:
        context = self._keys + self._tail
        raw = self.predict([item for item, _ in context] + self._new)
        done: list[np.ndarray] = []
        if context:
            scale, shift = fit_scale_shift(raw[: len(context)], [value for _, value in context])
            raw = [scale * values + shift for values in raw]
            for index, (_, previous) in enumerate(self._tail, start=1):
                weight = index / (len(self._tail) + 1)  # from the old window's estimate to the new one's
                done.append((1 - weight) * previous + weight * raw[len(self._keys) + index - 1])
        fresh = list(zip(self._new, raw[len(context):]))
        kept = min(self.overlap, len(fresh))
        done += [value for _, value in fresh[: len(fresh) - kept]]
        key = self.key_slot - len(context)
        if 0 <= key < len(fresh) - kept:
            self._keys = [self._keys[0] if self._keys else fresh[0], fresh[key]]
        self._tail, self._new = fresh[len(fresh) - kept:], []
        return done


# ---- the estimator -----------------------------------------------------------------------------


def network_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """The network's input size for a frame: the short side about `short_side` (less for frames
    wider than 16:9), both sides multiples of 14 and at least that short side."""
    ratio = max(height, width) / min(height, width)
    if ratio > _WIDEST:
        short_side = round(int(short_side * _WIDEST / ratio) / PATCH) * PATCH
    scale = short_side / min(height, width)

    def side(length: int) -> int:
        multiple = round(length * scale / PATCH) * PATCH
        return multiple if multiple >= short_side else math.ceil(length * scale / PATCH) * PATCH

    return side(height), side(width)


class VideoDepthEstimator:
    """Video Depth Anything as a depth model: one image at a time for photos, or a stream of video
    frames in overlapping windows (`stream()`)."""

    def __init__(self, model_name: str, compute: Compute, resolution: int | None = None):
        self.name = model_name
        self.compute = compute
        self.resolution = resolution
        self.model = load_video_depth_model(model_name).to(device=compute.device, dtype=compute.dtype).eval()

    def __call__(self, pixels: np.ndarray) -> Disparity:
        (values,) = self.predict([self.prepare(pixels)])
        return self._disparity(values, pixels.shape[:2])

    def stream(self) -> VideoDepthStream:
        return VideoDepthStream(self)

    def prepare(self, pixels: np.ndarray) -> torch.Tensor:
        """A frame as the network's input: resized (cubic), normalised, channels first."""
        height, width = pixels.shape[:2]
        size = network_size(height, width, self.resolution or INPUT_SIZE)
        resized = cv2.resize(np.ascontiguousarray(pixels[..., :3], np.float32), size[::-1], interpolation=cv2.INTER_CUBIC)
        return torch.from_numpy(((resized - _MEAN) / _STD).transpose(2, 0, 1).copy())

    @torch.inference_mode()
    def predict(self, inputs: list[torch.Tensor]) -> list[np.ndarray]:
        """One window: its frames' relative inverse depth at the network's size."""
        images = torch.stack(inputs).to(device=self.compute.device, dtype=self.compute.dtype)
        return list(self.model(images).float().cpu().numpy())

    def _disparity(self, values: np.ndarray, shape: tuple[int, int]) -> Disparity:
        upsampled = F.interpolate(torch.from_numpy(np.ascontiguousarray(values))[None, None], size=shape,
                                  mode="bilinear", align_corners=True)[0, 0].numpy()
        return disparity_from_array(upsampled, "relative", name=f"depth model {self.name}")


class VideoDepthStream:
    """A video's frames in, their disparity out, in order and up to a window late."""

    def __init__(self, estimator: VideoDepthEstimator):
        self.estimator = estimator
        self._stitcher = WindowStitcher(estimator.predict)
        self._shapes: list[tuple[int, int]] = []  # of the frames whose maps are still to come

    def push(self, pixels: np.ndarray) -> list[Disparity]:
        self._shapes.append(pixels.shape[:2])
        return self._disparities(self._stitcher.push(self.estimator.prepare(pixels)))

    def finish(self) -> list[Disparity]:
        return self._disparities(self._stitcher.finish())

    def _disparities(self, maps: list[np.ndarray]) -> list[Disparity]:
        shapes, self._shapes = self._shapes[: len(maps)], self._shapes[len(maps):]
        return [self.estimator._disparity(values, shape) for values, shape in zip(maps, shapes)]


# ---- loading -----------------------------------------------------------------------------------


def load_video_depth_model(name: str) -> VideoDepthAnything:
    """The network with its weights, from the hub id (or alias), a local folder holding the
    checkpoint, or the checkpoint file itself."""
    checkpoint = checkpoint_path(resolve_alias(name))
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        raise SbsError(f"cannot load depth model from '{checkpoint}': {first_line(error)}") from None
    if not isinstance(state, dict):
        raise SbsError(f"cannot load depth model from '{checkpoint}': it holds no state dict")
    try:
        model = VideoDepthAnything(VideoDepthConfig.from_state_dict(state))
    except (KeyError, IndexError) as error:
        raise SbsError(f"cannot load depth model from '{checkpoint}': not a Video Depth Anything "
                       f"checkpoint (no {first_line(error)})") from None
    mismatch = state_dict_mismatch(model, state)
    if mismatch:
        raise SbsError(f"cannot load depth model from '{checkpoint}': {mismatch}")
    model.load_state_dict(state)
    return model


def checkpoint_path(name: str) -> Path:
    path = Path(name).expanduser()
    if path.suffix == ".pth":
        if not path.is_file():
            raise SbsError(f"depth model file '{name}' does not exist")
        return path
    return Path(load_pretrained(_find_checkpoint, name, what="depth model", alternatives=_ALTERNATIVES))


def _find_checkpoint(folder_or_hub_id: str, **kwargs: object) -> str:
    """The checkpoint in a local folder, or from the hub (hf_hub_download: the cache, else a download)."""
    folder = Path(folder_or_hub_id)
    if folder.is_dir():
        if not (folder / CHECKPOINT).is_file():
            raise FileNotFoundError(f"it holds no {CHECKPOINT}")
        return str(folder / CHECKPOINT)
    from huggingface_hub import hf_hub_download

    return hf_hub_download(folder_or_hub_id, CHECKPOINT, **kwargs)  # type: ignore[arg-type]


def state_dict_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> str:
    """How a state dict differs from the model's (missing, unexpected or misshapen keys), in one
    line; empty if it fits."""
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    misshapen = [f"{key} {tuple(state[key].shape)} not {shape}" for key, shape in expected.items()
                 if key in state and tuple(state[key].shape) != shape]
    problems = [f"{len(keys)} {what} (first: {keys[0]})"
                for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                   ("keys of another shape", misshapen)) if keys]
    return "; ".join(problems)
