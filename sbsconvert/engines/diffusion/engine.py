"""The diffusion engine's entry points: image->stereo (`render`), text->stereo and depth->stereo
(`generate`). Each: encode (or generate) the left view, shift its latent at the shift step,
denoise source and target views together (SPSMD + cross-view attention), decode. Then either
"hybrid" (default): the warp engine's full-resolution view of the left with its holes painted from
the decoded target (optionally re-diffused in crops at the photo's scale), or "latent": the
decoded views resized back.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from sbsconvert.choices import DEFAULT_SD_DEPTH_MODEL
from sbsconvert.core import StageTimer
from sbsconvert.device import Compute
from sbsconvert.disparity import Disparity, normalize, pixel_shift, resize_disparity
from sbsconvert.engines.base import StereoPair, StereoRequest
from sbsconvert.engines.diffusion.attention import AttentionState, JoinedKV, KVCache, install_stereo_attention
from sbsconvert.engines.diffusion.composite import hybrid_view, match_colours, painted_fill
from sbsconvert.engines.diffusion.crops import crop_weight, plan_crops
from sbsconvert.engines.diffusion.inversion import ddim_inversion, null_text_inversion
from sbsconvert.engines.diffusion.models import load_stable_diffusion
from sbsconvert.engines.diffusion.sampler import Denoiser, Guidance, StereoPlan, denoise_stereo, sample
from sbsconvert.engines.diffusion.settings import DiffusionSettings
from sbsconvert.engines.diffusion.shift import LatentShift, plan_latent_shift
from sbsconvert.engines.warp import WarpEngine
from sbsconvert.errors import SbsError

DisparityFor = Callable[[np.ndarray], Disparity]


class DiffusionEngine:
    """StereoDiffusion on one Stable Diffusion checkpoint, loaded once."""

    name = "diffusion"
    cross_frame_attention = True  # render() takes record= / reference= (see the package docstring)

    def __init__(self, settings: DiffusionSettings, compute: Compute):
        self.settings = settings
        self.compute = compute
        self.model = load_stable_diffusion(settings.model, compute)
        self.attention = AttentionState(mode=settings.attention)
        install_stereo_attention(self.model.unet, self.attention)
        self.timings = StageTimer()  # per stage, of the last render / generate
        self.total_timings = StageTimer()  # per stage, summed over every render / generate
        # Pixel-space maps that must follow the views (alpha, the right view's depth
        # conditioning) move with the model-free warp.
        self._warp = WarpEngine(fill="background", device=compute.device)

    def with_settings(self, **changes: object) -> DiffusionEngine:
        """This engine's loaded model with some settings changed (e.g. another composite), for
        side-by-side runs; the two must not render at the same time (they share the attention state)."""
        twin = copy.copy(self)
        twin.settings = dataclasses.replace(self.settings, **changes)  # type: ignore[arg-type]
        twin.timings, twin.total_timings = StageTimer(), StageTimer()
        return twin

    def render(
        self, request: StereoRequest, *, record: KVCache | None = None, reference: KVCache | None = None
    ) -> StereoPair:
        """Image -> stereo: the right view of a photo (both views for eye="both").

        record: collect the source view's self-attention K/V of every joint step into this cache.
        reference: let the target views also attend to a recorded cache's K/V (e.g. an anchor
        frame's left view, for temporal consistency); it must come from the same settings.
        """
        settings = self.settings
        height, width = request.image.shape[:2]
        shifts = _eye_shifts(request)
        source, targets, crop_context = self._image_latents(request, shifts, record, reference)
        timer = self.timings
        if settings.composite == "hybrid":
            views = self._hybrid(self._hole_fills(request.image, shifts, request.nearness, targets, crop_context))
            left, right = views if request.eye == "both" else (request.image, views[0])
            self._add_to_totals()
            return StereoPair(left=left, right=right)
        with timer("decode"):
            if request.eye == "both":
                left, right = self._decode(targets, (width, height))
                geometry = shifts
            elif settings.attention == "bi":
                # Bidirectional attention changes the left view too, and the right view was made
                # to match the changed left: both are returned decoded.
                left, right = self._decode(torch.cat([source, targets]), (width, height))
                geometry = [None, request.shift]
            else:
                # The left view is the photo itself: it is what the user gave, and the replayed
                # (or null-text) trajectory only reproduces it through the VAE.
                (right,) = self._decode(targets, (width, height))
                left, geometry = request.image[:, :, :3], [None, request.shift]
        left, right = (self._with_alpha(view, request, shift) for view, shift in zip((left, right), geometry))
        self._add_to_totals()
        return StereoPair(left=left, right=right)

    def paint_holes(
        self, request: StereoRequest, *, record: KVCache | None = None, reference: KVCache | None = None
    ) -> list[np.ndarray]:
        """The diffusion's painting of the warp's holes, for a video keyframe (video/paint.py): per
        synthesised eye (the right one, or left and right for eye="both"), HxWx3 float32 at the
        photo's size, colour-matched to the warp's visible pixels around each hole (as the hybrid
        composite paints its holes). Only its hole pixels are meant to be used; the warp's own
        pixels elsewhere. record / reference: as for render()."""
        shifts = _eye_shifts(request)
        _, targets, crop_context = self._image_latents(request, shifts, record, reference)
        fills = [(warped[:3] if fill is None else fill).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
                 for warped, _, fill in self._hole_fills(request.image, shifts, request.nearness, targets, crop_context)]
        self._add_to_totals()
        return fills

    def _image_latents(
        self, request: StereoRequest, shifts: list[np.ndarray], record: KVCache | None, reference: KVCache | None
    ) -> tuple[torch.Tensor, torch.Tensor, KVCache | JoinedKV | None]:
        """Image -> stereo up to the latents: the source and target latents, and the keys/values the
        native-resolution crops read (None without them)."""
        self._require_depth_model(False)
        settings = self.settings
        self.timings = StageTimer()
        height, width = request.image.shape[:2]
        size = self._processing_size(width, height)
        # Native fill: crops at the photo's scale read this view's own keys/values as context.
        native = settings.composite == "hybrid" and settings.fill_resolution == "native" and size[0] < width
        context = record if record is not None or not native else KVCache()
        source, targets = self._stereo_latents(request.image, request.nearness, shifts, size, context, reference)
        # Native crops of a video frame read its whole view and, as that view did, the shot's anchor.
        crop_context = None if not native else context if reference is None else JoinedKV((context, reference))
        return source, targets, crop_context

    def _stereo_latents(
        self,
        image: np.ndarray,
        nearness: np.ndarray,
        shifts: list[np.ndarray],
        size: tuple[int, int],
        record: KVCache | None,
        reference: KVCache | JoinedKV | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image -> stereo in latent space: the photo (HxWxC) resized to `size` (width, height),
        inverted, shifted by each of `shifts` (HxW pixels of the photo) at the shift step and
        denoised with its targets. Returns the source latent and the target latents."""
        settings, model, timer = self.settings, self.model, self.timings
        denoiser = Denoiser(model, self.attention, settings.steps, settings.progress)
        with timer("encode"):
            latent = model.encode_image(_resize(_to_tensor(image[:, :, :3], self.compute.device), size))
            cond, uncond = model.encode_text(settings.prompt), model.encode_text(settings.negative_prompt)
        # The joint denoising starts at the shift step and reads the source's trajectory from there
        # on (bi attention and deblur too), so the inversion stops there; null-text inversion
        # retraces the trajectory from the inverted noise, so it needs all of it.
        first = 0 if settings.inversion == "null-text" else settings.shift_index
        with timer("inversion"):
            trajectory = ddim_inversion(denoiser, latent, cond, first=first)
        if settings.inversion == "null-text":
            if settings.guidance == 1:
                raise SbsError("null-text inversion optimises the unconditional half of guidance; give `guidance` above 1")
            with timer("null-text"):
                embeddings, trajectory = null_text_inversion(
                    denoiser, trajectory, cond, uncond, settings.guidance, settings.null_text_iterations
                )
            guidance = Guidance(cond, embeddings, settings.guidance)
        else:
            guidance = self._guidance(cond, uncond)
        latent_size = (latent.shape[3], latent.shape[2])
        plans = [plan_latent_shift(shift, nearness, latent_size, self.compute.device) for shift in shifts]
        with timer("denoise"):
            return self._denoise(denoiser, trajectory, plans, guidance, None, record, reference)

    def generate(
        self,
        *,
        divergence: float,
        convergence: float = 0.0,
        disparity_for: DisparityFor | None = None,
        depth: Disparity | None = None,
        size: tuple[int, int] | None = None,
    ) -> StereoPair:
        """Text -> stereo (settings.prompt) or, with `depth`, depth -> stereo (SD 2 depth model).

        The left view is generated in full first; its disparity comes from `disparity_for(left
        image)` (text) or from `depth` (which also conditions the model). The right view then
        starts from the left's latent at the shift step, as in the paper. The disparity is
        taken from the final left image rather than from the blurry x0 prediction at the shift
        step so that the depth edges match the edges of the left view the user gets.
        size: output (width, height); default the depth map's size, else resolution x resolution.
        """
        self._require_depth_model(depth is not None)
        if self.settings.fill_resolution == "native":
            raise SbsError("`fill_resolution` native paints a photo's holes at the photo's scale; a generated image is "
                           "made at the model's resolution already (drop it)")
        if depth is None and disparity_for is None:
            raise ValueError("text -> stereo needs disparity_for (a depth estimator or a given map)")
        settings, model, device = self.settings, self.model, self.compute.device
        self.timings = timer = StageTimer()
        if size is None:
            side = settings.resolution or model.native_size
            size = (depth.shape[1], depth.shape[0]) if depth is not None else (side, side)
        width, height = size
        proc_width, proc_height = self._processing_size(width, height)
        latent_size = (proc_width // model.vae_scale, proc_height // model.vae_scale)
        denoiser = Denoiser(model, self.attention, settings.steps, settings.progress)
        generator = torch.Generator().manual_seed(settings.seed)
        noise = torch.randn((1, model.latent_channels, latent_size[1], latent_size[0]), generator=generator)
        with timer("encode"):
            guidance = self._guidance(model.encode_text(settings.prompt), model.encode_text(settings.negative_prompt))
        left_depth = None
        if depth is not None:
            depth = resize_disparity(depth, width, height)
            left_depth = _depth_condition(normalize(depth.values), latent_size, device)
        with timer("generate left"):
            trajectory = sample(denoiser, noise.to(device), guidance, left_depth)
        with timer("decode"):
            (left,) = self._decode(trajectory[-1], size)
        if depth is not None:
            disparity = depth
        else:
            with timer("depth"):
                disparity = resize_disparity(disparity_for(left), width, height)
        shift = pixel_shift(disparity, width, divergence, convergence)
        plans = [plan_latent_shift(shift, disparity.values, latent_size, device)]
        extra = None
        if depth is not None and left_depth is not None:
            right_depth = self._warp_map(normalize(depth.values), shift, disparity.values)
            extra = torch.cat([left_depth, _depth_condition(right_depth, latent_size, device)])
        with timer("denoise"):
            source, targets = self._denoise(denoiser, trajectory, plans, guidance, extra, None, None)
        if settings.composite == "hybrid":  # the generated left is kept; its warp gets painted holes
            (right,) = self._hybrid(self._hole_fills(left, [shift], disparity.values, targets))
        else:
            with timer("decode"):
                if settings.attention == "bi":
                    left, right = self._decode(torch.cat([source, targets]), size)
                else:  # the left is unchanged by the right view: the full generation decoded above
                    (right,) = self._decode(targets, size)
        self._add_to_totals()
        return StereoPair(left=left, right=right)

    def _denoise(
        self,
        denoiser: Denoiser,
        trajectory: list[torch.Tensor | None],
        shifts: list[LatentShift],
        guidance: Guidance,
        extra: torch.Tensor | None,
        record: KVCache | None,
        reference: KVCache | JoinedKV | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        settings = self.settings
        start = settings.shift_index
        fills = None
        if settings.deblur:
            fills = [_noise_like(trajectory[start], settings.seed + index) for index in range(len(shifts))]
        # With bidirectional attention the source reads the targets, so it must be denoised
        # again; otherwise its trajectory is already known and is followed exactly.
        plan = StereoPlan(trajectory, shifts, start, settings.attention != "bi", settings.spsmd, fills, settings.spsmd_every)
        self.attention.record, self.attention.reference = record, reference
        try:
            return denoise_stereo(denoiser, plan, guidance, extra)
        finally:
            self.attention.record = self.attention.reference = None
            self.attention.views = 1

    def _guidance(self, cond: torch.Tensor, uncond: torch.Tensor) -> Guidance:
        # With equal prompts guidance is an identity: skip the unconditional half of the batch.
        if self.settings.guidance == 1 or self.settings.prompt == self.settings.negative_prompt:
            return Guidance(cond)
        return Guidance(cond, uncond, self.settings.guidance)

    def _processing_size(self, width: int, height: int) -> tuple[int, int]:
        """About resolution^2 pixels with the input's aspect, sides multiples of what the model needs."""
        target = self.settings.resolution or self.model.native_size
        multiple = self.model.size_multiple
        scale = target / math.sqrt(width * height)
        fit = lambda side: max(multiple, round(side * scale / multiple) * multiple)
        return fit(width), fit(height)

    def _decode(self, latents: torch.Tensor, size: tuple[int, int]) -> list[np.ndarray]:
        """Latents to HxWx3 float32 images at `size` (width, height)."""
        images = _resize(self.model.decode(latents), size)
        return [image.permute(1, 2, 0).cpu().numpy() for image in images]

    def _hole_fills(
        self,
        image: np.ndarray,
        shifts: list[np.ndarray],
        nearness: np.ndarray,
        targets: torch.Tensor,
        context: KVCache | JoinedKV | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """Per target view: the warp engine's view of `image` (HxWxC -> C x H x W) for its shift,
        its holes (H x W) and their painting from the decoded target latent (3 x H x W, see
        composite.py; None without holes). With a `context` (the keys/values of this view at the
        model's resolution) the holes are painted again at the photo's own scale, crop by crop
        (see crops.py)."""
        with self.timings("decode"):
            painted = self.model.decode(targets)
        pixels, near = self._tensor(image).permute(2, 0, 1), self._tensor(nearness)
        views = []
        for shift, view in zip(shifts, painted):
            with self.timings("composite"):
                warped, holes = self._warp.synthesize_with_holes(pixels, self._tensor(shift), near)
            fill = None
            if bool(holes.any()):
                with self.timings("composite"):
                    fill = painted_fill(view, warped, holes)
                if context is not None:
                    fill = self._native_fill(image, nearness, shift, warped, holes, fill, context)
            views.append((warped, holes, fill))
        return views

    def _hybrid(self, fills: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> list[np.ndarray]:
        """The hybrid composite (HxWxC) of each (warped, holes, fill) from _hole_fills."""
        with self.timings("composite"):
            return [(warped if fill is None else hybrid_view(warped, holes, fill)).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
                    for warped, holes, fill in fills]

    def _native_fill(
        self,
        image: np.ndarray,
        nearness: np.ndarray,
        shift: np.ndarray,
        warped: torch.Tensor,
        holes: torch.Tensor,
        fill: torch.Tensor,
        context: KVCache | JoinedKV,
    ) -> torch.Tensor:
        """`fill` (3 x H x W, from the model-resolution pass) with the holes under up to MAX_CROPS
        model-sized crops painted again at the photo's scale; the crops' target views attend to
        `context` too, so they see the whole view and not just their crop."""
        height, width = holes.shape
        multiple = self.model.size_multiple
        side = self.settings.resolution or self.model.native_size
        fit = lambda length: max(multiple, min(side, length) // multiple * multiple)
        crops = plan_crops(holes, (fit(width), fit(height)))
        canvas = torch.zeros_like(fill)
        weights = torch.zeros_like(holes, dtype=torch.float32)
        for crop in crops:
            rows, columns = crop.rows, crop.columns
            _, targets = self._stereo_latents(
                image[rows, columns], nearness[rows, columns], [shift[rows, columns]], (crop.width, crop.height), None, context
            )
            with self.timings("decode"):
                (painted,) = self.model.decode(targets)
            with self.timings("composite"):
                matched = match_colours(painted, warped[:3, rows, columns], holes[rows, columns]).clamp(0, 1)
                weight = crop_weight(crop, (width, height), holes.device)
                canvas[:, rows, columns] += matched * weight
                weights[rows, columns] += weight
        covered = weights.clamp(max=1)
        return fill * (1 - covered) + canvas / weights.clamp(min=1e-6) * covered

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.compute.device)

    def _warp_map(self, values: np.ndarray, shift: np.ndarray, nearness: np.ndarray) -> np.ndarray:
        warped = self._warp.synthesize(self._tensor(values)[None], self._tensor(shift), self._tensor(nearness))
        return warped[0].cpu().numpy()

    def _with_alpha(self, view: np.ndarray, request: StereoRequest, shift: np.ndarray | None) -> np.ndarray:
        """Give a view the photo's alpha channel, moved like the view (shift None: the photo's own)."""
        if request.image.shape[2] != 4:
            return view
        alpha = request.image[:, :, 3] if shift is None else self._warp_map(request.image[:, :, 3], shift, request.nearness)
        return np.concatenate([view, alpha[:, :, None]], axis=2)

    def _require_depth_model(self, depth: bool) -> None:
        extra = self.model.extra_channels
        if depth and extra != 1:
            raise SbsError(
                f"model '{self.settings.model}' is not a depth model (its UNet takes {extra} extra input channels, "
                f"a depth model 1); use an SD 2 depth checkpoint such as {DEFAULT_SD_DEPTH_MODEL}"
            )
        if not depth and extra != 0:
            raise SbsError(
                f"model '{self.settings.model}' is a depth-conditioned model; it works with `depth_image` and "
                "`prompt` only; for photos use an SD 1.x/2.x checkpoint"
            )

    def _add_to_totals(self) -> None:
        self.total_timings.add(self.timings)


def _eye_shifts(request: StereoRequest) -> list[np.ndarray]:
    """The shift of each eye to synthesise: the right eye's, or for eye="both" (the input is the
    centre) half of it each way."""
    return [-request.shift / 2, request.shift / 2] if request.eye == "both" else [request.shift]


def _to_tensor(pixels: np.ndarray, device: torch.device) -> torch.Tensor:
    """HxWxC float array to 1 x C x H x W."""
    return torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None].to(device)


def _resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """B x C x H x W to `size` (width, height); antialiased bicubic, kept in [0, 1]."""
    width, height = size
    if images.shape[2:] == (height, width):
        return images
    return F.interpolate(images, size=(height, width), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def _depth_condition(nearness: np.ndarray, latent_size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """The SD 2 depth UNet's extra channel: nearness at latent size, scaled to [-1, 1] (larger = nearer,
    like the inverse depth its DPT estimator produced in training)."""
    width, height = latent_size
    resized = resize_disparity(Disparity(nearness.astype(np.float32)), width, height).values
    return torch.from_numpy(resized * 2 - 1)[None, None].to(device)


def _noise_like(latent: torch.Tensor, seed: int) -> torch.Tensor:
    """Gaussian noise with the per-channel mean and spread of `latent` (the deblur fill), seeded."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(latent.shape, generator=generator).to(latent.device)
    mean = latent.mean(dim=(2, 3), keepdim=True)
    spread = latent.std(dim=(2, 3), keepdim=True)
    return mean + spread * noise
