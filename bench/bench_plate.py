"""--fill plate: time per frame of building the plate (motion tracking, look-ups, seams) beside the
warp itself, and the flicker of the filled holes in the still parts of a shot against `background`.

    python bench/bench_plate.py [--frames 8] [--sizes 720p 1080p]
    python bench/bench_plate.py --real DIR   (real clips, bench/real_clips.py)
    python bench/bench_plate.py --real DIR --picture docs/images/plate-bbb.jpg

Flicker: the mean absolute frame-to-frame change (0-1 per channel) of the right view's pixels that
are holes in either frame and whose true right view did not change between the two frames: what a
viewer sees shimmer where the scene stands still. Scenes with exact right views: the synthetic box
walking over a still wall, and the same box and pillar over a real photo (scikit-image's coffee
cup, samples/coffee.jpg, as a flat wall). samples/clip.mp4 (synthetic, a still camera, one map for
every frame) has no exact right view: its row says how much of its holes the plate filled.

With --real DIR: the real clips of bench/real_clips.py found in DIR, converted with their proxy
maps as per-frame disparity (3 % divergence): hole flicker for background, inpaint and plate where
the left eye is still (no pixel of its row within the largest shift changed by 2/255 or more: no
exact right view exists), and the plate's time per frame on tokyo_walk at 720p (its own size) and
1080p (enlarged).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from sbsconvert.core import StageTimer
from sbsconvert.disparity import load_disparity_file
from sbsconvert.engines.base import StereoRequest
from sbsconvert.engines.warp import WarpEngine
from sbsconvert.synthetic import Layer, StereoScene, render_scene, render_video, video_layers
from sbsconvert.video.plate import PlateRenderer

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_clips import CLIPS, decode, proxy_map, proxy_maps  # noqa: E402

DIVERGENCE = 0.03  # the default 3 %: shift in pixels = nearness x this x width
STILL = 2 / 255  # a left-eye change below this is none


def plate_views(frames: list[StereoRequest], timer: StageTimer | None = None) -> tuple[list[np.ndarray], PlateRenderer]:
    renderer = PlateRenderer(WarpEngine(fill="plate"), timer=timer)
    views = [pair.right for _, pair in renderer.stream((n, r, 0, True) for n, r in enumerate(frames))]
    return views, renderer


def still_hole_flicker(frames: list[StereoRequest], still: list[np.ndarray], views: list[np.ndarray]) -> tuple[float, float]:
    """Mean |change| of `views` over the pixels that are holes in either of two frames and `still`
    for that pair (still[n - 1]: frames n - 1 and n), and the share of hole pixels that is."""
    engine = WarpEngine(fill="background")
    holes = [engine.synthesize_views(request)[0].holes for request in frames]
    total, count, hole_pixels = 0.0, 0, 0
    for number in range(1, len(frames)):
        either = holes[number] | holes[number - 1]
        measured = either & still[number - 1]
        total += float(np.abs(views[number] - views[number - 1])[measured].sum())
        count += int(measured.sum()) * views[number].shape[2]
        hole_pixels += int(either.sum())
    return total / max(count, 1), count / views[0].shape[2] / max(hole_pixels, 1)


def truth_still(truths: list[np.ndarray]) -> list[np.ndarray]:
    """Where the exact right view did not change between consecutive frames."""
    return [(after == before).all(axis=2) for before, after in zip(truths, truths[1:])]


def left_still(frames: list[StereoRequest]) -> list[np.ndarray]:
    """Where no left-eye pixel of the row within the largest shift changed: a right-eye pixel there
    shows still scenery whichever left pixel it came from."""
    reach = 2 * int(np.ceil(max(float(request.shift.max()) for request in frames))) + 1
    changed = [(np.abs(after.image - before.image).max(axis=2) >= STILL).astype(np.uint8)
               for before, after in zip(frames, frames[1:])]
    return [cv2.dilate(mask, np.ones((1, reach), np.uint8)) == 0 for mask in changed]


def background_views(frames: list[StereoRequest], fill: str = "background") -> list[np.ndarray]:
    engine = WarpEngine(fill=fill)
    return [engine.render(request).right for request in frames]


def proxy_requests(pictures: list[np.ndarray], maps: list[np.ndarray] | None = None) -> list[StereoRequest]:
    """Each frame with its proxy map (or the given one) as disparity, at the default divergence."""
    requests = []
    for pixels, nearness in zip(pictures, maps or [proxy_map(pixels) for pixels in pictures]):
        shift = (nearness * DIVERGENCE * pixels.shape[1]).astype(np.float32)
        requests.append(StereoRequest(pixels, shift, shift))
    return requests


def real_clips(folder: Path, names: list[str] | None) -> None:
    print("| clip | frames | hole flicker, background | inpaint | plate | hole pixels measured "
          "| plate share of holes |\n|---|---|---|---|---|---|---|")
    for clip in CLIPS:
        if names and Path(clip.file).stem not in names or not clip.available(folder):
            continue
        pictures = clip.pictures(folder)[0]
        frames = proxy_requests(pictures, proxy_maps(clip, pictures))
        still = left_still(frames)
        views, renderer = plate_views(frames)
        scores = [still_hole_flicker(frames, still, background_views(frames, fill)) for fill in ("background", "inpaint")]
        plate, measured = still_hole_flicker(frames, still, views)
        print(f"| {Path(clip.file).stem} {clip.width} px | {len(frames)} | {scores[0][0]:.4f} | {scores[1][0]:.4f} "
              f"| {plate:.4f} | {100 * measured:.1f} % | {100 * renderer.counts.plate_share:.1f} % |", flush=True)
    print("\n| clip | size | frames | warp ms/frame | plate ms/frame | plate share of holes |\n|---|---|---|---|---|---|")
    for size, count in (("720p", 24), ("1080p", 8)):
        pictures = decode(folder / "tokyo_walk.mp4", SIZES[size][0], count)[0]
        frames = proxy_requests(pictures)
        plate_views(frames[:2])  # compiles the warp kernel
        timer = StageTimer()
        _, renderer = plate_views(frames, timer)
        per_frame = {stage: 1000 * seconds / len(frames) for stage, seconds in timer.seconds.items()}
        print(f"| tokyo_walk | {size} | {count} | {per_frame['warp']:.0f} | {per_frame['plate']:.0f} "
              f"| {100 * renderer.counts.plate_share:.1f} % |", flush=True)


def exact(scenes) -> list[StereoRequest]:
    return [StereoRequest(scene.left, scene.disparity, scene.disparity) for scene in scenes]


def walk_over_photo(count: int) -> list[StereoScene]:
    """video_layers' walking box and pillar in front of a real photo (coffee.jpg) as a flat wall."""
    photo = cv2.cvtColor(cv2.imread(str(SAMPLES / "coffee.jpg")), cv2.COLOR_BGR2RGB).astype(np.float64) / 255
    height, width = photo.shape[:2]
    # The wall's disparity is a whole number of pixels: the right view samples the photo exactly.
    look_up = lambda x, y: photo[np.clip(np.round(y).astype(int), 0, height - 1), np.clip(np.round(x).astype(int), 0, width - 1)]
    scenes = []
    for frame in range(count):
        layers = video_layers(width, height, frame, walk=2.0)
        scenes.append(render_scene(width, height, [Layer(layers[0].mask, layers[0].disparity, look_up), *layers[1:]]))
    return scenes


def sample_clip() -> list[StereoRequest]:
    disparity = load_disparity_file(SAMPLES / "disparity" / "clip.png", "relative").values
    frames = []
    with av.open(str(SAMPLES / "clip.mp4")) as container:
        for frame in container.decode(video=0):
            pixels = frame.to_ndarray(format="rgb24").astype(np.float32) / 255
            shift = cv2.resize(disparity, pixels.shape[1::-1]) * 0.03 * pixels.shape[1]  # the default 3 % divergence
            frames.append(StereoRequest(pixels, shift.astype(np.float32), shift.astype(np.float32)))
    return frames


def bbb_picture(folder: Path, target: Path) -> None:
    """docs/plate.md's picture: the right eye with background (left) and plate (right), cropped
    beside a near square sliding right 2 px a frame over Big Buck Bunny's frames 179-238 (its
    first 10 s move no object sideways, so a square cut from its last frame is pasted in front)."""
    pictures = decode(folder / "bbb_10s.mp4")[0][178:238]
    patch = pictures[-1][150:230, 250:300].copy()
    frames = []
    for number, pixels in enumerate(pictures):
        left, image, nearness = 40 + 2 * number, pixels.copy(), proxy_map(pixels)
        image[100:180, left : left + 50], nearness[100:180, left : left + 50] = patch, 1.0
        shift = (nearness * 0.05 * pixels.shape[1]).astype(np.float32)  # 5 %: holes wide enough to see
        frames.append(StereoRequest(image, shift, shift))
    views, renderer = plate_views(frames)
    number = 50
    crop = lambda image: image[85:195, 40 + 2 * number - 40 : 40 + 2 * number + 110]
    side_by_side = np.concatenate([crop(background_views(frames)[number]), np.ones((110, 4, 3), np.float32),
                                   crop(views[number])], axis=1)
    side_by_side = cv2.resize(side_by_side, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    pixels = cv2.cvtColor(np.round(np.clip(side_by_side, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(target), pixels, [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"{target}: frame {178 + number + 1}; {renderer.counts.line()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--real", type=Path, help="folder holding the real clips of bench/real_clips.py")
    parser.add_argument("--picture", type=Path, help="with --real: write docs/plate.md's picture here instead")
    parser.add_argument("--clips", nargs="+", help="with --real: only these (file names without .mp4)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.real and args.picture:
        bbb_picture(args.real, args.picture)
        return
    if args.real:
        real_clips(args.real, args.clips)
        return
    print("| scene | size | frames | warp ms/frame | plate ms/frame | plate share of holes |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        width, height = SIZES[size]
        for name, motion in (("box walks, still camera", {"walk": 3.0}), ("camera travels", {"pan": 2.0})):
            frames = exact(render_video(width, height, args.frames, **motion))
            plate_views(frames[:2])  # compiles the warp kernel
            timer = StageTimer()
            _, renderer = plate_views(frames, timer)
            per_frame = {stage: 1000 * seconds / len(frames) for stage, seconds in timer.seconds.items()}
            print(f"| {name} | {size} | {len(frames)} | {per_frame['warp']:.0f} | {per_frame['plate']:.0f} "
                  f"| {100 * renderer.counts.plate_share:.1f} % |")
    print()
    print("| scene | frames | hole flicker, background | hole flicker, plate | plate share of holes |")
    print("|---|---|---|---|---|")
    for name, scenes in (("synthetic box walks over a still wall, 320x240", render_video(320, 240, 30, walk=2.0)),
                         ("box walks in front of a photo (coffee.jpg), 600x400", walk_over_photo(30))):
        frames, truths = exact(scenes), [scene.right for scene in scenes]
        views, renderer = plate_views(frames)
        still = truth_still(truths)
        print(f"| {name} | {len(frames)} | {still_hole_flicker(frames, still, background_views(frames))[0]:.4f} "
              f"| {still_hole_flicker(frames, still, views)[0]:.4f} | {100 * renderer.counts.plate_share:.1f} % |")
    frames = sample_clip()
    views, renderer = plate_views(frames)
    same = all(np.array_equal(a, b) for a, b in zip(views, background_views(frames)))
    print(f"| samples/clip.mp4 with its map, 320x240 | {len(frames)} | (no exact right view) | "
          f"{'the same frames as background' if same else 'differs from background'} | {100 * renderer.counts.plate_share:.1f} % |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
