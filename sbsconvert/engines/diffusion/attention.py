"""Self-attention across views: a diffusers attention processor for every `attn1` of the UNet.

The views of one denoising step are stacked on the batch axis, per guidance group: rows are
(uncond view 0, uncond view 1, ..., cond view 0, cond view 1, ...). View 0 is the source (the
left view, or the centre for --eye both); the others are targets. What each view's queries read:

    mode   source view            target views
    off    its own K/V            their own K/V
    uni    its own K/V            the source's K/V (the source is computed exactly as in "off")
    bi     all views' K/V         all views' K/V

Cross-frame reuse (for video): `AttentionState.record` collects the source view's K/V per
(step, layer) into a `KVCache`; with `AttentionState.reference` set to such a cache, the target
views additionally attend to those cached K/V (e.g. an anchor frame's left view), appended
along the token axis (several caches at once through `JoinedKV`). The source view never reads the reference, so in "uni" mode it stays
exactly what it would be without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from sbsconvert.errors import SbsError


@dataclass
class KVCache:
    """Keys and values of the source view per (denoising step, attn1 layer), each G x heads x tokens x dim
    (G = 2 with classifier-free guidance: uncond, cond). Held on the compute device."""

    entries: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def store(self, step: int, layer: str, key: torch.Tensor, value: torch.Tensor) -> None:
        self.entries[(step, layer)] = (key.detach(), value.detach())

    def lookup(self, step: int, layer: str, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cached K/V for this step and layer, checked against the keys `like` of the current run."""
        found = self.entries.get((step, layer))
        if found is None:
            raise SbsError(f"the attention reference has no keys for step {step} of layer {layer}; record it with the same steps")
        key, value = found
        if key.shape[0] != like.shape[0] or key.shape[1:2] + key.shape[3:] != like.shape[1:2] + like.shape[3:]:
            raise SbsError(
                f"the attention reference was recorded with other settings (keys {tuple(key.shape)}, this run "
                f"{tuple(like.shape)}); record it with the same model and guidance"
            )
        return key, value

    @property
    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class JoinedKV:
    """Several KVCaches read as one reference, their tokens side by side: a native-fill crop of a
    video frame reads its frame's whole view and its shot's anchor."""

    parts: tuple[KVCache, ...]

    def lookup(self, step: int, layer: str, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        found = [part.lookup(step, layer, like) for part in self.parts]
        return torch.cat([key for key, _ in found], dim=-2), torch.cat([value for _, value in found], dim=-2)


@dataclass
class AttentionState:
    """Shared by all processors of one UNet; the sampler updates it before each UNet call."""

    mode: str = "uni"
    views: int = 1  # views per guidance group in the batch; 1 = ordinary attention
    step: int = 0  # denoising step index, the key for record/reference
    record: KVCache | None = None
    reference: KVCache | JoinedKV | None = None


class StereoAttnProcessor:
    """Self-attention (attn1) processor implementing the table in the module docstring."""

    def __init__(self, layer: str, state: AttentionState):
        self.layer = layer
        self.state = state

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None or hidden_states.ndim != 3:
            raise ValueError(f"{self.layer}: StereoAttnProcessor handles unmasked self-attention on tokens only")
        if attn.spatial_norm is not None or attn.group_norm is not None:
            raise ValueError(f"{self.layer}: StereoAttnProcessor does not handle normalised attention inputs")
        batch, tokens, _ = hidden_states.shape
        split = lambda x: x.view(batch, tokens, attn.heads, -1).transpose(1, 2)  # B x heads x N x dim
        query = split(attn.to_q(hidden_states))
        key = split(attn.to_k(hidden_states))
        value = split(attn.to_v(hidden_states))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = self._attend(query, key, value)
        out = out.transpose(1, 2).reshape(batch, tokens, -1).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))  # projection, dropout
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor

    def _attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        state = self.state
        if state.views == 1:
            return F.scaled_dot_product_attention(query, key, value)
        views = state.views
        groups = query.shape[0] // views
        q, k, v = (x.unflatten(0, (groups, views)) for x in (query, key, value))  # G x V x heads x N x dim
        if state.record is not None:
            state.record.store(state.step, self.layer, k[:, 0], v[:, 0])
        if state.mode == "bi":
            # Every view reads the concatenation of all views' tokens.
            every = lambda x: x.transpose(1, 2).flatten(2, 3)  # G x heads x (V*N) x dim
            source_k, source_v = every(k), every(v)
            target_k, target_v = _repeat(source_k, views - 1), _repeat(source_v, views - 1)
        elif state.mode == "uni":
            source_k, source_v = k[:, 0], v[:, 0]
            target_k, target_v = _repeat(source_k, views - 1), _repeat(source_v, views - 1)
        else:
            source_k, source_v, target_k, target_v = k[:, 0], v[:, 0], k[:, 1:], v[:, 1:]
        if state.reference is not None:
            extra_k, extra_v = state.reference.lookup(state.step, self.layer, k[:, 0])
            target_k = torch.cat([target_k, _repeat(extra_k, views - 1)], dim=-2)
            target_v = torch.cat([target_v, _repeat(extra_v, views - 1)], dim=-2)
        source_out = F.scaled_dot_product_attention(q[:, 0], source_k, source_v)
        target_out = F.scaled_dot_product_attention(q[:, 1:].flatten(0, 1), target_k.flatten(0, 1), target_v.flatten(0, 1))
        out = torch.cat([source_out.unsqueeze(1), target_out.unflatten(0, (groups, views - 1))], dim=1)
        return out.flatten(0, 1)


def _repeat(x: torch.Tensor, count: int) -> torch.Tensor:
    """G x ... to G x count x ... (one copy per target view)."""
    return x.unsqueeze(1).expand(x.shape[0], count, *x.shape[1:])


def install_stereo_attention(unet: Any, state: AttentionState) -> None:
    """Put a StereoAttnProcessor on every self-attention (attn1) layer; cross-attention stays as it is."""
    processors = {
        name: StereoAttnProcessor(name.removesuffix(".processor"), state) if name.endswith("attn1.processor") else processor
        for name, processor in unet.attn_processors.items()
    }
    if not any(isinstance(p, StereoAttnProcessor) for p in processors.values()):
        raise SbsError("this UNet has no self-attention (attn1) layers; it is not a Stable Diffusion UNet")
    unet.set_attn_processor(processors)
