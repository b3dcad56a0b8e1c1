"""Real clips we did not make, for the flicker and plate benches, and the PROXY depth maps they
are measured with (no true depth comes with them, and no depth model's weights are at hand).

    from real_clips import CLIPS, prepare, proxy_map, proxy_maps

The clips are not in the repository (their licences differ; bench scripts take their folder as
`--real DIR`): each entry names a file in that folder, what it shows, and the size and number of
frames the benches use (a few minutes of CPU each).

The proxy map is a stand-in for a depth model's output that keeps the properties these measures
rely on, and no more:
- a deterministic function of the frame alone: still where the frame is still, moving with what
  moves, changing with lighting and fades as the frame does;
- smooth within surfaces, with edges where the picture has them (an edge-preserving bilateral
  filter of the frame, so object boundaries stay sharp);
- a plausible layout: lower in the frame is nearer (ground planes, people's feet), darker is
  nearer (bright sky, lit signs and distant haze are far; on these clips that puts the walking
  woman, the coaster's structure and the trees in front), a little colourfulness nearer;
- on a fixed camera (`Clip.fixed_camera`), what moves is nearer: pixels that differ from the
  clip's still background (the per-pixel median of its frames) get MOVERS of the range, so the
  walking people stand in front of the street, as a depth model would put them;
- fixed constants (never per-frame min/max): its values lie in 0-1 by construction, and two
  pinned corner pixels (0 top left, 1 bottom right) make the loader's per-frame min/max
  normalisation an identity, so the clean maps carry no per-frame rescaling.
What it does not show: that the depth is right. Near and far are guessed from position and colour,
so measured holes sit where this guess puts them, not where true depth would; flicker ratios and
PSNRs against the clean run measure how the temporal methods undo per-frame errors on real motion,
real cuts and real codec noise, not the quality of any depth model.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Clip:
    file: str
    description: str
    width: int  # the benches' size (height from the aspect ratio, even)
    frames: int  # the first this many frames
    shots: tuple[tuple[str, int], ...] = ()  # cut together here: SHOT_FRAMES from each (source file, first frame)
    fixed_camera: bool = False  # what moves is nearer than the scenery (proxy_maps)

    def available(self, folder: Path) -> bool:
        """Whether `folder` holds what the clip is made from."""
        return all((folder / name).is_file() for name in ([name for name, _ in self.shots] or [self.file]))

    def pictures(self, folder: Path) -> tuple[list[np.ndarray], Fraction]:
        """The clip's frames at the benches' size (RGB float32 0-1) and its frame rate."""
        if not self.shots:
            return decode(folder / self.file, self.width, self.frames)
        height = round(self.width * 9 / 16 / 2) * 2
        pictures = []
        for name, first in self.shots:
            frames, _ = decode(folder / name, None, first + SHOT_FRAMES)
            pictures += [_fill(pixels, self.width, height) for pixels in frames[first:]]
        return pictures, SHOTS_RATE


CLIPS = (
    Clip("tokyo_walk.mp4", "1280x720 15 fps: a street in Tokyo, the camera following a walking woman, people walking "
         "(OpenAI's Sora demo, generated footage), H.264", 640, 90),
    Clip("davis_rollercoaster.mp4", "960x540 24 fps: a roller coaster, the camera panning (DAVIS, real camera), "
         "MPEG-4 Part 2", 480, 70),
    Clip("bbb_10s.mp4", "320x240 24 fps: the first 10 s of Big Buck Bunny (Blender Foundation, CC BY 3.0): "
         "a fade in, cuts, a still shot with the bird", 320, 238),
    Clip("pedestrians.mp4", "1920x1080 25 fps: a fixed camera above a shopping street, people walking (the "
         "Oxford Town Centre CCTV footage, real camera), H.264, from a public social-distancing demo", 640, 96,
         fixed_camera=True),
    Clip("cuts.mp4", "640x360 24 fps: 8 shots of 12 frames cut together here from the four clips above (real "
         "footage, our cuts: a cut every half second)", 640, 96,
         shots=(("pedestrians.mp4", 0), ("tokyo_walk.mp4", 40), ("davis_rollercoaster.mp4", 10), ("bbb_10s.mp4", 150),
                ("pedestrians.mp4", 50), ("tokyo_walk.mp4", 120), ("davis_rollercoaster.mp4", 45),
                ("bbb_10s.mp4", 200))),
)

SHOT_FRAMES, SHOTS_RATE = 12, Fraction(24)
PROXY_WIDTH = 192  # the proxy is made at this width and enlarged (a depth model's maps hold little finer detail)
VERTICAL, DARKNESS, CHROMA = 0.6, 0.3, 0.1  # shares of the cues (sum 1: values stay in 0-1)
MOVERS = 0.4  # fixed camera: the share given to what differs from the clip's still background
MOVER_CHANGE = 0.08  # a pixel this far from the still background (0-1, any channel) is a mover


def decode(path: Path, width: int | None = None, frames: int | None = None) -> tuple[list[np.ndarray], Fraction]:
    """The first `frames` frames of a video as RGB float32 0-1, resized to `width` (even height),
    and its frame rate."""
    pictures = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or Fraction(24)
        for frame in container.decode(stream):
            pixels = frame.to_ndarray(format="rgb24")
            if width is not None and width != pixels.shape[1]:
                height = round(pixels.shape[0] * width / pixels.shape[1] / 2) * 2
                smaller = width < pixels.shape[1]
                pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA if smaller else cv2.INTER_CUBIC)
            pictures.append(pixels.astype(np.float32) / 255)
            if frames is not None and len(pictures) == frames:
                break
    return pictures, Fraction(rate)


def _fill(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """`pixels` cropped to the aspect of width x height about its centre and resized to it."""
    rows, columns = pixels.shape[:2]
    keep_rows, keep_columns = min(rows, round(columns * height / width)), min(columns, round(rows * width / height))
    top, left = (rows - keep_rows) // 2, (columns - keep_columns) // 2
    cropped = pixels[top : top + keep_rows, left : left + keep_columns]
    return cv2.resize(cropped, (width, height), interpolation=cv2.INTER_AREA)


def proxy_maps(clip: Clip, pictures: list[np.ndarray]) -> list[np.ndarray]:
    """The proxy nearness of each frame of `clip`; on a fixed camera, what moves (differs from the
    clip's still background, the per-pixel median of its frames) is also nearer."""
    background = np.median(np.stack(pictures), axis=0) if clip.fixed_camera else None
    return [proxy_map(pixels, background) for pixels in pictures]


def _small(pixels: np.ndarray) -> np.ndarray:
    """`pixels` PROXY_WIDTH wide at most, textures removed: a median removes texture (signs, leaves,
    grain) and keeps boundaries; the bilateral passes then flatten surfaces without blurring across
    their edges."""
    height, width = pixels.shape[:2]
    small_size = (PROXY_WIDTH, max(2, round(height * PROXY_WIDTH / width)))
    small = cv2.resize(pixels[..., :3], small_size, interpolation=cv2.INTER_AREA) if width > PROXY_WIDTH else pixels
    small = cv2.medianBlur(np.round(np.clip(small, 0, 1) * 255).astype(np.uint8), 7).astype(np.float32) / 255
    for _ in range(3):
        small = cv2.bilateralFilter(small, 9, 0.15, 8)
    return small


def proxy_map(pixels: np.ndarray, background: np.ndarray | None = None) -> np.ndarray:
    """The proxy nearness (0 far - 1 near) of one RGB 0-1 frame, at its size (see the module's doc);
    with the still `background` of a fixed camera, what differs from it is nearer by MOVERS."""
    height, width = pixels.shape[:2]
    small = _small(pixels)
    chroma = small.max(axis=2) - small.min(axis=2)  # saturation that dark noise does not inflate
    rows = np.linspace(0, 1, small.shape[0], dtype=np.float32)[:, None]
    nearness = VERTICAL * rows + DARKNESS * (1 - small.mean(axis=2)) + CHROMA * chroma
    if background is not None:
        moving = (np.abs(small - _small(background)).max(axis=2) > MOVER_CHANGE).astype(np.uint8)
        moving = cv2.morphologyEx(moving, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        nearness = (1 - MOVERS) * nearness + MOVERS * moving
    nearness = cv2.resize(nearness, (width, height), interpolation=cv2.INTER_LINEAR)
    nearness = np.clip(nearness, 0, 1)
    nearness[0, 0], nearness[-1, -1] = 0, 1  # the loader's min/max normalisation is then no change
    return nearness


def write_video(path: Path, pictures: list[np.ndarray], rate: Fraction) -> Path:
    """H.264 at crf 12 (nearly transparent), so the benches read a real video file."""
    height, width = pictures[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate, options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, pixels in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(np.round(pixels * 255).astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def prepare(clip: Clip, source: Path, folder: Path) -> tuple[Path, Path]:
    """The clip cut to the bench's frames and size, written to `folder` as a video, and a folder of
    its proxy maps (16-bit PNG, one per frame), made from the frames as that video decodes them."""
    video = write_video(folder / clip.file, *clip.pictures(source))
    maps = folder / (Path(clip.file).stem + "-maps")
    maps.mkdir()
    for index, nearness in enumerate(proxy_maps(clip, decode(video)[0]), start=1):
        Image.fromarray(np.round(nearness * 65535).astype(np.uint16)).save(maps / f"{index:04d}.png")
    return video, maps
