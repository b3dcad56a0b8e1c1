"""What every stereo engine takes and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np



@dataclass
class StereoRequest:
    """One view to turn into a stereo pair.

    image:     HxWxC float32 in [0, 1] (C = 3 or 4), the input (left) view.
    nearness:  HxW float32, larger = nearer; decides who wins where pixels collide.
    shift:     HxW float32 pixels; a pixel at x in the input appears at x - shift in the right view.
    eye:       "right": the input is the left eye and only the right eye is synthesised;
               "both": the input is the centre view and each eye is shifted by half.
    """

    image: np.ndarray
    nearness: np.ndarray
    shift: np.ndarray
    eye: str = "right"


@dataclass
class StereoPair:
    left: np.ndarray
    right: np.ndarray


class StereoEngine(Protocol):
    name: str

    def render(self, request: StereoRequest) -> StereoPair: ...
