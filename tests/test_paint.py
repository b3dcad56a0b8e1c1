"""--engine diffusion on videos, --video-paint keyframes (video/paint.py): the plate fills what other
frames saw, the diffusion paints the rest on keyframes only, and that paint is carried to the frames
after. Checked with a tiny random Stable Diffusion on synthetic videos with exact disparity."""

import json

import numpy as np
import pytest

from conftest import make_engine, run
from sbsconvert.core import StageTimer
from sbsconvert.engines.base import StereoRequest
from sbsconvert.engines.warp import WarpEngine
from sbsconvert.synthetic import render_video
from sbsconvert.video.pipeline import keyframe_renderer
from test_plate import WIDTH, HEIGHT, holes_of, requests, write_clip


class Spy:
    """The engine's UNet evaluations, and which frames asked for a painting."""

    def __init__(self, engine):
        self.engine, self.keyframes = engine, []
        paint = engine.paint_holes

        def spied(request, **kwargs):
            self.keyframes.append(self.frame)
            return paint(request, **kwargs)

        engine.paint_holes = spied
        self.frame = None


def painted_run(engine, frames, shots=None):
    """(right views, UNet evaluations made while each frame was rendered, the painter, the spy)."""
    spy = Spy(engine)
    plate, painter, _ = keyframe_renderer(engine, StageTimer())
    shots = shots or [0] * len(frames)
    views, calls = [], []
    before = engine.model.unet_calls
    items = ((n, r, s, True) for n, (r, s) in enumerate(zip(frames, shots)))
    # The plate renders frame n once frame n + ahead is in: the spy is told which frame is rendered.
    stream = plate.stream(items)
    for number in range(len(frames)):
        spy.frame = number
        _, pair = next(stream)
        views.append(pair.right)
        calls.append(engine.model.unet_calls - before)
        before = engine.model.unet_calls
    return views, calls, painter, spy


@pytest.fixture
def engine(tiny_sd):
    return make_engine(tiny_sd, steps=4)


def test_frames_with_nothing_new_to_paint_make_no_unet_call(tiny_sd):
    engine = make_engine(tiny_sd, steps=4, repaint_area=0.0)  # a keyframe wherever one pixel is left unpainted
    frames = requests(render_video(WIDTH, HEIGHT, 24, walk=0.5))
    views, calls, painter, spy = painted_run(engine, frames)
    assert spy.keyframes[0] == 0 and 1 < len(spy.keyframes) < len(frames) / 3
    per_keyframe = calls[0]  # inversion and joint denoise
    assert 4 < per_keyframe <= 4 + 4
    assert all(count == (per_keyframe if number in spy.keyframes else 0) for number, count in enumerate(calls))
    assert painter.keyframes == len(spy.keyframes)
    counts = painter.counts
    assert counts.plate > 0 and counts.carried > counts.painted > 0
    # Every hole pixel of every frame is counted once, by what filled it.
    assert sum(counts.as_dict().values()) == sum(holes_of(r).sum() for r in frames)


def test_visible_pixels_are_the_warps_and_carried_paint_stays_put_on_a_still_camera(engine):
    frames = requests(render_video(WIDTH, HEIGHT, 16, walk=1.0))
    views, _, painter, spy = painted_run(engine, frames)
    plain = WarpEngine(fill="background")
    for request, view in zip(frames, views):
        holes = holes_of(request)
        assert np.array_equal(view[~holes], plain.render(request).right[~holes])
    # Between keyframes a pixel painted on the keyframe and still a hole the plate cannot fill
    # keeps the keyframe's colour exactly (a still camera copies, it does not resample).
    first, second = spy.keyframes[0], spy.keyframes[1] if len(spy.keyframes) > 1 else len(frames)
    plate_free = np.ones((HEIGHT, WIDTH), bool)
    for number in range(first, second):
        plate_free &= holes_of(frames[number])
    same = plate_free & (views[first] != plain.render(frames[first]).right).any(axis=2)
    assert same.sum() > 0
    for number in range(first + 1, second):
        assert np.array_equal(views[number][same], views[first][same])


def test_a_cut_starts_a_new_layer_with_a_keyframe(engine):
    scenes = render_video(WIDTH, HEIGHT, 12, walk=1.0)
    frames = requests(scenes[:6]) + [StereoRequest(1 - r.image, r.nearness, r.shift) for r in requests(scenes[6:])]
    _, calls, painter, spy = painted_run(engine, frames, shots=[0] * 6 + [1] * 6)
    assert 0 in spy.keyframes and 6 in spy.keyframes
    # Frame 6's holes are painted from its own shot, not carried over the cut.
    assert calls[6] > 0


def test_no_keyframe_below_the_repaint_area_the_background_fill_instead(tiny_sd):
    engine = make_engine(tiny_sd, steps=4, repaint_area=1.0)
    frames = requests(render_video(WIDTH, HEIGHT, 24, walk=0.5))
    views, calls, painter, spy = painted_run(engine, frames)
    assert spy.keyframes == [0]  # only the shot's first frame, which records the anchor
    assert sum(calls[1:]) == 0 and painter.counts.fallback > 0


def test_cli_reports_unet_calls_and_hole_sources_and_keyframes_cost_less_than_every_frame(tmp_path, tiny_sd):
    scenes = render_video(96, 72, 18, walk=1.0)
    clip = write_clip(tmp_path / "walk.mp4", [scene.left for scene in scenes])
    maps = tmp_path / "maps"
    maps.mkdir()
    from PIL import Image

    for number, scene in enumerate(scenes, start=1):
        Image.fromarray(np.round(scene.disparity / scene.disparity.max() * 65535).astype(np.uint16)).save(
            maps / f"{number:03d}.png")
    base = ("--engine", "diffusion", "--model", tiny_sd, "--steps", "4", "--disparity", maps, "--json")
    code, output = run(clip, "-o", tmp_path / "keyframes.mp4", *base, "-q")
    assert code == 0, output
    entry = json.loads(output)["converted"][0]
    calls, fill = entry["unet_calls"], entry["hole_fill"]
    assert calls["per_frame"] == round(calls["total"] / 18, 2) and 0 < calls["total"] < 18 * 8
    assert fill["plate"] > 0 and fill["painted"] > 0 and fill["carried"] > 0
    pixels = sum(count for source, count in fill.items() if not source.endswith("_share"))
    assert fill["painted_share"] == round(fill["painted"] / pixels, 4)
    code, output = run(clip, "-o", tmp_path / "keyframes.mp4", *base[:-1], "--force", "-v")
    assert code == 0 and f"{calls['total']} UNet evaluations on " in output and "carried paint" in output
    code, output = run(clip, "-o", tmp_path / "every.mp4", *base, "--video-paint", "every-frame", "-q")
    every_frame = json.loads(output)["converted"][0]["unet_calls"]["total"]
    assert code == 0 and every_frame % 18 == 0 and every_frame > calls["total"]
    code, output = run(clip, "-o", tmp_path / "latent.mp4", *base[:-1], "--composite", "latent", "-v")
    assert code == 0 and "walk.mp4: every frame is diffused in full" in output
    assert f"{every_frame} UNet evaluations, " in output


def test_a_segmented_run_writes_the_warps_pixels_and_repaints_from_each_segment_start(tmp_path, tiny_sd):
    """Segments paint from their own first frame on (the paint layer is not rebuilt from the shot's
    earlier keyframes): the first segment is the one-piece run's, byte for byte; later segments
    differ from it in hole pixels only."""
    from PIL import Image

    from test_segments import DISPARITY
    from sbsconvert.convert import ConvertSettings, stereo_request
    from sbsconvert.disparity import load_disparity_file, resize_disparity

    scenes = render_video(96, 72, 24, walk=1.0)
    clip = write_clip(tmp_path / "walk.mp4", [scene.left for scene in scenes])
    base = ("--engine", "diffusion", "--model", tiny_sd, "--steps", "2", "--disparity", DISPARITY, "--frames-out",
            "--type", "png", "-q", "--temporal", "none")
    assert run(clip, "-o", tmp_path / "one", *base)[0] == 0
    assert run(clip, "-o", tmp_path / "segmented", *base, "--segment-seconds", "1")[0] == 0
    one, segmented = sorted((tmp_path / "one").iterdir()), sorted((tmp_path / "segmented").iterdir())
    assert len(one) == 24 and [p.name for p in one] == [p.name for p in segmented]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one[:6], segmented[:6]))  # keyframes every 6 frames
    disparity = resize_disparity(load_disparity_file(DISPARITY), 96, 72)
    differ = 0
    for a, b in zip(one, segmented):
        left_right = [np.asarray(Image.open(path), np.float32) / 255 for path in (a, b)]
        holes = holes_of(stereo_request(left_right[0][:, :96], disparity, ConvertSettings()))
        assert np.array_equal(left_right[0][:, 96:][~holes], left_right[1][:, 96:][~holes])
        differ += not np.array_equal(left_right[0], left_right[1])
    assert differ > 0


def test_a_hole_growing_by_a_sliver_continues_the_paint_beside_it_without_a_keyframe():
    from sbsconvert.engines.warp import SynthesizedView
    from sbsconvert.video.paint import KeyframePainter
    from sbsconvert.video.plate import PlateCounts, PlateFrame

    height, width = 24, 40
    image = np.full((height, width, 3), 0.2, np.float32)
    painting = np.broadcast_to(np.linspace(0, 1, width, dtype=np.float32)[None, :, None], (height, width, 3)).copy()
    asked = []

    def paint(request, shot):
        asked.append(shot)
        return [painting]

    def frame(number, first, last):
        holes = np.zeros((height, width), bool)
        holes[:, first:last] = True
        view = SynthesizedView(image, holes, np.zeros((height, width), np.float32))
        request = StereoRequest(image, np.zeros((height, width), np.float32), np.zeros((height, width), np.float32))
        return PlateFrame(number, None, request, 0, True, [view], None, None, to_previous=np.eye(3)), holes

    painter = KeyframePainter(paint, PlateCounts(), repaint_area=0.0)
    first, holes = frame(0, 10, 20)
    (painted,) = painter(first, [holes], [image])
    assert asked == [0] and np.array_equal(painted[holes], painting[holes])
    grown, holes = frame(1, 10, 23)  # 3 more columns: a sliver beside the paint
    (continued,) = painter(grown, [holes], [image])
    assert asked == [0]  # no keyframe
    assert np.array_equal(continued[:, 10:20], painting[:, 10:20])  # carried as painted
    assert np.array_equal(continued[:, 20:23], np.repeat(painting[:, 19:20], 3, axis=1))  # the nearest paint
    assert painter.counts.extended == 3 * height and painter.counts.carried == 10 * height
    wide, holes = frame(2, 10, 30)  # 7 more columns beyond the sliver's reach: a keyframe
    painter(wide, [holes], [image])
    assert asked == [0, 0]
