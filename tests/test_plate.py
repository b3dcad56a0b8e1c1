"""--fill plate: a video's holes filled with the background its other frames saw (video/plate.py),
checked on synthetic videos with exact right views: a box walking over a still scene, a camera
travelling sideways past a pillar."""

import json

import numpy as np
import pytest

from conftest import SAMPLES, SYNTHETIC, SYNTHETIC_DISP, run
from sbsconvert.engines.base import StereoRequest
from sbsconvert.engines.warp import WarpEngine
from sbsconvert.synthetic import render_video
from sbsconvert.video.plate import PlateRenderer
from test_segments import encode_frames

WIDTH, HEIGHT = 160, 120


def requests(scenes):
    """What the pipeline hands the engine for each frame, with the scene's exact disparity."""
    return [StereoRequest(scene.left, scene.disparity, scene.disparity) for scene in scenes]


def plate_views(frames, shots=None, **options):
    """The right views --fill plate gives the frames (one shot unless `shots` numbers them)."""
    renderer = PlateRenderer(WarpEngine(fill="plate"), **options)
    shots = shots or [0] * len(frames)
    return [pair.right for _, pair in renderer.stream((n, r, s, True) for n, (r, s) in enumerate(zip(frames, shots)))]


def holes_of(request):
    return WarpEngine(fill="background").synthesize_views(request)[0].holes


@pytest.mark.parametrize("motion", [{"walk": 2.0}, {"pan": 1.5}], ids=["still camera, walking box", "panning camera"])
def test_plate_fills_the_holes_with_the_true_background_where_it_was_seen(motion):
    scenes = render_video(WIDTH, HEIGHT, 20, **motion)
    frames = requests(scenes)
    views = plate_views(frames)
    background = WarpEngine(fill="background")
    plate_errors, fill_errors, filled = [], [], 0
    for number in range(12, 16):  # mid-shot: frames on both sides
        plain = background.render(frames[number]).right
        holes = holes_of(frames[number])
        from_plate = holes & (views[number] != plain).any(axis=2)
        filled += from_plate.sum() / holes.sum()
        plate_errors.append(np.abs(views[number] - scenes[number].right)[from_plate].mean())
        fill_errors.append(np.abs(plain - scenes[number].right)[from_plate].mean())
    # The walking box uncovers the wall behind it (the still pillar's own hole stays unseen);
    # the travelling camera sees behind both.
    assert filled / 4 > (0.4 if "walk" in motion else 0.95)
    limit = 1e-6 if "walk" in motion else 0.003  # a still camera copies; a pan resamples (bilinear)
    assert max(plate_errors) < limit and min(fill_errors) > 0.03


def test_visible_pixels_are_the_warps_bit_for_bit():
    frames = requests(render_video(WIDTH, HEIGHT, 10, pan=1.5, walk=1.0))
    for request, view in zip(frames, plate_views(frames)):
        holes = holes_of(request)
        assert holes.any()
        assert np.array_equal(view[~holes], WarpEngine(fill="background").render(request).right[~holes])


def test_a_cut_resets_the_plate():
    """After a cut a shot's frames are filled from that shot alone: as if the video began there."""
    walk = requests(render_video(WIDTH, HEIGHT, 20, walk=3.0))
    first, second = walk[:10], walk[10:]  # the box jumps: shot two's holes were seen in shot one
    joined = plate_views(first + second, shots=[0] * 10 + [1] * 10)
    alone = plate_views(second)
    assert all(np.array_equal(a, b) for a, b in zip(joined[10:], alone))
    # Without the cut, shot one's frames would have filled shot two's first holes.
    assert not np.array_equal(plate_views(first + second)[10], alone[0])


def test_look_ahead_frames_fill_holes_the_past_never_saw():
    """The box walks right, so the wall left of it (its left hole in eye 'both') is seen later only."""
    frames = [StereoRequest(r.image, r.nearness, r.shift, eye="both") for r in requests(render_video(WIDTH, HEIGHT, 8, walk=2.0))]
    renderer = PlateRenderer(WarpEngine(fill="plate"))
    list(renderer.stream((n, r, 0, True) for n, r in enumerate(frames)))
    blind = PlateRenderer(WarpEngine(fill="plate"), ahead=0)
    list(blind.stream((n, r, 0, True) for n, r in enumerate(frames)))
    assert renderer.counts.plate > blind.counts.plate > 0


def write_clip(path, images, rate=6, gop=6):
    """H.264 at `rate` fps with a keyframe every `gop` frames (segments start at keyframes)."""
    return encode_frames(path, images, rate=rate, gop=gop, crf=10)


def test_segmented_run_equals_a_one_piece_run_and_json_counts_the_plate(tmp_path):
    """Segments beginning mid-shot build the plate from their warm-up frames as a one-piece run
    builds it from the same frames: the same pixels; --json says how much of the holes it filled."""
    clip = write_clip(tmp_path / "pan.mp4", [scene.left for scene in render_video(96, 72, 24, pan=1.0)])
    base = ("--fill", "plate", "--disparity", SAMPLES / "disparity" / "clip.png", "--frames-out", "--type", "png")
    code, output = run(clip, "-o", tmp_path / "one", *base, "--json", "-q")
    assert code == 0
    hole_fill = json.loads(output)["converted"][0]["hole_fill"]
    assert hole_fill["plate"] > 0 and hole_fill["fallback"] > 0
    assert hole_fill["plate_share"] == round(hole_fill["plate"] / (hole_fill["plate"] + hole_fill["fallback"]), 4)
    code, output = run(clip, "-o", tmp_path / "segmented", *base, "--segment-seconds", "1", "--json", "-q")
    assert code == 0 and json.loads(output)["converted"][0]["hole_fill"] == hole_fill
    one, segmented = sorted((tmp_path / "one").iterdir()), sorted((tmp_path / "segmented").iterdir())
    assert len(one) == 24 and [p.name for p in one] == [p.name for p in segmented]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, segmented))


def test_verbose_says_what_share_of_the_holes_the_plate_filled(tmp_path):
    clip = write_clip(tmp_path / "pan.mp4", [scene.left for scene in render_video(64, 48, 8, pan=1.0)])
    code, output = run(clip, "-o", tmp_path / "out.mp4", "--fill", "plate", "--disparity", SAMPLES / "disparity" / "clip.png", "-v")
    assert code == 0 and "pan.mp4: hole pixels: " in output and "% from the video's other frames (plate)" in output


def test_a_photo_with_fill_plate_gets_the_background_fill_and_a_note(tmp_path):
    code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "--fill", "plate", "-o", tmp_path / "plate.png")
    assert code == 0 and "--fill plate fills a video's holes from its other frames" in output
    assert run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "-o", tmp_path / "background.png", "-q")[0] == 0
    assert (tmp_path / "plate.png").read_bytes() == (tmp_path / "background.png").read_bytes()
