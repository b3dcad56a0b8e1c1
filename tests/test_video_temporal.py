"""Centred (look-ahead) smoothing and per-shot range normalisation of per-frame disparity."""

import numpy as np
import pytest

from sbsconvert.disparity import Disparity, normalize
from sbsconvert.engines.base import StereoRequest
from sbsconvert.engines.warp import WarpEngine
from sbsconvert.synthetic import render_scene
from sbsconvert.video.temporal import TemporalSmoother, flicker, robust_range

STILL = np.full((24, 32, 3), 0.5, np.float32)


def smooth_all(smoother, frames, disparities):
    out = list(smoother.smooth((index, frame, d) for index, (frame, d) in enumerate(zip(frames, disparities))))
    assert [index for index, _, _ in out] == list(range(len(frames)))  # every frame, in order
    return [d for _, d, _ in out], [shot for _, _, shot in out]


def ramp(count, step=0.01):
    return [Disparity(np.full((24, 32), step * t, np.float32)) for t in range(count)]


def test_look_ahead_follows_a_ramp_without_lag_where_the_causal_average_trails():
    count, step = 40, 0.01
    causal, _ = smooth_all(TemporalSmoother(look_ahead=0), [STILL] * count, ramp(count, step))
    centred, _ = smooth_all(TemporalSmoother(look_ahead=4), [STILL] * count, ramp(count, step))
    lag = lambda maps, t: (step * t - float(maps[t].values.mean())) / step  # in frames
    # Away from the start (the average's warm-up) and the end (no frames left to look ahead to).
    for t in range(15, count - 5):
        assert lag(causal, t) == pytest.approx(1.5, abs=0.01)  # (1 - weight) / weight
        assert abs(lag(centred, t)) < 0.15  # measured 0.12: the look-ahead's tail, not a lag


def test_no_look_ahead_is_the_frame_by_frame_average():
    rng = np.random.default_rng(1)
    maps = [Disparity(rng.random((24, 32), dtype=np.float32)) for _ in range(8)]
    streamed, _ = smooth_all(TemporalSmoother(look_ahead=0), [STILL] * 8, maps)
    one_by_one = TemporalSmoother()
    for frame, d, s in zip([STILL] * 8, maps, streamed):
        assert np.array_equal(one_by_one(frame, d).values, s.values)


def test_a_cut_still_resets_and_nothing_leaks_across_it():
    dark, bright = np.zeros_like(STILL), np.ones_like(STILL)
    frames = [dark] * 6 + [bright] * 6
    maps = [Disparity(np.zeros((24, 32), np.float32))] * 6 + [Disparity(np.ones((24, 32), np.float32))] * 6
    smoother = TemporalSmoother(look_ahead=4)
    smoothed, shots = smooth_all(smoother, frames, maps)
    assert smoother.cuts == 1 and shots == [0] * 6 + [1] * 6
    assert all(float(np.abs(d.values).max()) == 0 for d in smoothed[:6])  # no look ahead into the next shot
    assert all(np.allclose(d.values, 1) for d in smoothed[6:])  # and no memory of the last one


def test_range_normalisation_keeps_each_shots_range_steady():
    truth = normalize(render_scene(64, 48).disparity)
    rng = np.random.default_rng(0)
    raw = []
    for _ in range(20):
        values = truth.copy()
        # A few wild pixels a frame (noise, an object at the edge) set the per-frame min/max.
        spots = rng.integers(0, values.size, 12)
        values.reshape(-1)[spots] = rng.uniform(-1.5, 2.5, 12)
        raw.append(Disparity(normalize(values)))
    frames = [STILL] * len(raw)
    plain, _ = smooth_all(TemporalSmoother(look_ahead=4), frames, raw)
    steady, _ = smooth_all(TemporalSmoother(look_ahead=4, normalize_range=True), frames, raw)
    spread = lambda maps: np.std([robust_range(d.values) for d in maps], axis=0).max()
    ranges = np.array([robust_range(d.values) for d in steady])
    # Measured: raw 0.073, smoothed only 0.015, normalised 0.0 (spread of the 1st/99th percentiles over the shot).
    assert spread(steady) < spread(plain) / 4 and spread(steady) < spread(raw) / 10
    assert np.allclose(ranges.mean(axis=0), [0, 1], atol=0.02)


def test_absolute_maps_are_not_normalised():
    pixels = Disparity(np.linspace(0, 7, 24 * 32, dtype=np.float32).reshape(24, 32), absolute=True)
    smoothed, _ = smooth_all(TemporalSmoother(normalize_range=True), [STILL] * 3, [pixels] * 3)
    assert all(np.allclose(d.values, pixels.values, atol=1e-5) and d.absolute for d in smoothed)


def test_centred_smoothing_and_normalisation_cut_jitter_flicker_further():
    """The jittered-depth simulation of bench/bench_video.py, at a small size: a still shot whose
    per-frame depth is the truth plus noise, renormalised every frame."""
    width, height, count = 96, 64, 16
    scene = render_scene(width, height)
    truth = normalize(scene.disparity)
    rng = np.random.default_rng(0)
    jitter = [Disparity(normalize(truth + rng.normal(0, 0.03, truth.shape).astype(np.float32))) for _ in range(count)]
    engine = WarpEngine()

    def right_flicker(maps):
        shift = lambda d: (d.values * 0.03 * width).astype(np.float32)
        return flicker(engine.render(StereoRequest(scene.left, d.values, shift(d))).right for d in maps)

    frames = [scene.left] * count
    causal, _ = smooth_all(TemporalSmoother(look_ahead=0), frames, jitter)
    centred, _ = smooth_all(TemporalSmoother(), frames, jitter)
    normalised, _ = smooth_all(TemporalSmoother(normalize_range=True), frames, jitter)
    raw_flicker, causal_flicker = right_flicker(jitter), right_flicker(causal)
    centred_flicker, normalised_flicker = right_flicker(centred), right_flicker(normalised)
    assert causal_flicker < 0.5 * raw_flicker
    assert centred_flicker < causal_flicker
    assert normalised_flicker < 1.1 * centred_flicker
