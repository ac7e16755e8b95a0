"""Sound-source localisation: pointing, AUC, resizing, baselines, overlays."""

import imageio.v3 as iio
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from avjax.evaluate import localization


def _square(size, top, left, side):
  mask = np.zeros((size, size), np.uint8)
  mask[top:top + side, left:left + side] = 1
  return mask


# ---- pointing ----

def test_pointing_scores_hits_misses_and_skips_empty_frames():
  masks = np.stack([_square(8, 2, 2, 3), _square(8, 2, 2, 3), np.zeros((8, 8), np.uint8)])
  maps = np.zeros((3, 8, 8), np.float32)
  maps[0, 3, 3] = 1.0  # Inside the mask: a hit.
  maps[1, 6, 6] = 1.0  # Outside: a miss.
  maps[2, 0, 0] = 1.0  # Empty mask: skipped.
  assert localization.pointing_accuracy(maps[:1], masks[:1]) == (1.0, 1)
  assert localization.pointing_accuracy(maps[1:2], masks[1:2]) == (0.0, 1)
  assert localization.pointing_accuracy(maps, masks) == (0.5, 2)
  assert localization.pointing_accuracy(maps[2:], masks[2:])[1] == 0


def test_pointing_splits_credit_among_tied_peaks():
  mask = _square(8, 0, 0, 4)[None]  # A quarter of the frame.
  assert localization.pointing_accuracy(np.ones((1, 8, 8)), mask)[0] == pytest.approx(0.25)
  maps = np.zeros((1, 8, 8))
  maps[0, 1, 1] = maps[0, 7, 7] = 2.0  # One tied peak in, one out.
  assert localization.pointing_accuracy(maps, mask)[0] == pytest.approx(0.5)


def test_scores_reject_mismatched_or_non_finite_maps():
  with pytest.raises(ValueError, match='shape'):
    localization.pointing_accuracy(np.zeros((2, 8, 8)), np.zeros((2, 8, 4)))
  with pytest.raises(ValueError, match='non-finite'):
    localization.pixel_auc(np.full((1, 4, 4), np.nan), np.ones((1, 4, 4)))


# ---- AUC ----

@pytest.mark.parametrize('seed', range(4))
def test_auc_matches_sklearn_with_ties(seed):
  rng = np.random.default_rng(seed)
  masks = (rng.random((6, 16, 16)) < rng.uniform(0.05, 0.5)).astype(np.uint8)
  masks[0] = 0  # An empty frame: negatives only, no frame AUC.
  levels = rng.integers(3, 12)  # Few distinct values: many ties within and across classes.
  maps = rng.integers(0, levels, masks.shape) + 0.8 * masks * rng.random(masks.shape)
  maps = np.round(maps, 1).astype(np.float32)
  expected = roc_auc_score(masks.ravel(), maps.ravel())
  assert localization.pixel_auc(maps, masks) == pytest.approx(expected, abs=1e-9)
  per_frame = [roc_auc_score(k.ravel(), m.ravel()) for m, k in zip(maps[1:], masks[1:])]
  mean, count = localization.frame_auc(maps, masks)
  assert count == 5
  assert mean == pytest.approx(np.mean(per_frame), abs=1e-9)


def test_auc_of_perfect_inverted_and_uninformative_maps():
  masks = np.stack([_square(16, 3, 4, 6), _square(16, 8, 1, 5)])
  perfect = masks * np.linspace(1, 2, 256).reshape(16, 16)  # Positives above every negative.
  assert localization.pixel_auc(perfect, masks) == 1.0
  assert localization.pixel_auc(-perfect, masks) == 0.0
  assert localization.frame_auc(-perfect, masks) == (0.0, 2)
  assert localization.pixel_auc(np.ones(masks.shape), masks) == 0.5
  assert np.isnan(localization.pixel_auc(np.ones(masks.shape), np.zeros(masks.shape)))


def test_score_gives_the_three_numbers():
  masks = np.stack([_square(16, 3, 4, 6)] * 3)
  maps = localization.centre_prior(masks.shape)
  scores = localization.score(maps, masks)
  assert set(scores) == {'pointing_accuracy', 'pixel_auc', 'frame_auc'}
  assert scores['pointing_accuracy'] == 1.0  # The centre's 2x2 peak lies in rows 3..8.
  assert scores['pixel_auc'] == pytest.approx(scores['frame_auc'])
  assert 0.5 < scores['pixel_auc'] < 1.0


# ---- resizing ----

def test_resize_maps_keeps_the_peak_and_constants():
  coarse = np.zeros((2, 3, 8, 8), np.float32)
  coarse[1, 2, 5, 1] = 1.0
  fine = localization.resize_maps(coarse, (6, 64, 64))
  assert fine.shape == (2, 6, 64, 64) and fine.dtype == np.float32
  clip, t, y, x = np.unravel_index(np.argmax(fine), fine.shape)
  assert (clip, t // 2, y // 8, x // 8) == (1, 2, 5, 1)  # Inside the coarse peak's cell.
  assert fine[0].max() == 0.0
  np.testing.assert_allclose(localization.resize_maps(np.full((1, 2, 3, 3), 0.3), (5, 7, 9)), 0.3)
  np.testing.assert_allclose(localization.resize_maps(coarse, (3, 8, 8)), coarse)
  ramp = localization.resize_maps(np.array([[[[0.0, 1.0]]]]), (1, 1, 4))  # Half-pixel centres.
  np.testing.assert_allclose(ramp[0, 0, 0], [0.0, 0.25, 0.75, 1.0])


def test_time_mean_repeats_the_clip_mean_at_every_frame():
  maps = np.random.default_rng(0).random((2, 5, 3, 4)).astype(np.float32)
  clip = localization.time_mean(maps)
  assert clip.shape == maps.shape
  for t in range(5):
    np.testing.assert_allclose(clip[:, t], maps.sum(axis=1) / 5, rtol=1e-6)
  moving = np.zeros((4, 1, 4), np.float32)  # A peak moving one column a frame.
  moving[np.arange(4), 0, np.arange(4)] = [1, 2, 3, 4]
  assert (localization.time_mean(moving)[:, 0].argmax(axis=-1) == 3).all()  # The loudest.


def test_cell_means_average_each_cell_even_when_sizes_do_not_divide():
  rng = np.random.default_rng(0)
  maps = rng.random((2, 4, 6, 8)).astype(np.float32)
  np.testing.assert_allclose(localization.cell_means(maps, (2, 3, 4)),
                             maps.reshape(2, 2, 2, 3, 2, 4, 2).mean(axis=(2, 4, 6)), rtol=1e-6)
  uneven = localization.cell_means(maps, (1, 4, 3))  # Rows split 1,2,1,2; columns 2,3,3.
  rows, cols = [(0, 1), (1, 3), (3, 4), (4, 6)], [(0, 2), (2, 5), (5, 8)]
  expected = [[[maps[i, :, r0:r1, c0:c1].mean() for c0, c1 in cols] for r0, r1 in rows]
              for i in range(2)]
  np.testing.assert_allclose(uneven[:, 0], expected, rtol=1e-6)
  with pytest.raises(ValueError, match='cannot tile'):
    localization.cell_means(maps, (1, 7, 1))


def test_grid_oracle_is_perfect_at_full_resolution_and_misses_what_a_coarse_grid_blurs():
  masks = np.zeros((1, 1, 8, 8), bool)
  masks[0, 0, :4, :4] = True  # The top-left cell of a 2 x 2 grid.
  for grid in ((1, 8, 8), (1, 2, 2)):
    assert localization.score(localization.grid_oracle(masks, grid), masks)[
        'pointing_accuracy'] == 1.0
  corner = np.zeros((1, 1, 8, 8), bool)
  corner[0, 0, 3, 3] = True  # One pixel at the cell's inner corner, off the cell's peak.
  assert localization.score(localization.grid_oracle(corner, (1, 8, 8)), corner)[
      'pointing_accuracy'] == 1.0
  assert localization.score(localization.grid_oracle(corner, (1, 2, 2)), corner)[
      'pointing_accuracy'] == 0.0


# ---- baselines ----

def _moving_square_video(num_frames=10, size=32, side=6, step=2):
  """A static noise texture with a bright square moving right `step` pixels a frame."""
  rng = np.random.default_rng(0)
  background = rng.integers(0, 80, (size, size, 3))
  video = np.repeat(background[None], num_frames, axis=0)
  for t in range(num_frames):
    video[t, 12:12 + side, 2 + step * t:2 + step * t + side] = 220
  return video.astype(np.uint8)


def test_motion_energy_is_highest_on_the_moving_square():
  video = _moving_square_video()
  energy = localization.motion_energy(video)
  assert energy.shape == video.shape[:3] and energy.dtype == np.float32
  for t in range(len(video)):  # Every frame, the first and last included.
    y, x = np.unravel_index(np.argmax(energy[t]), energy[t].shape)
    assert 10 <= y < 20 and 2 * t - 2 <= x < 2 * t + 10
    assert energy[t, :6].max() < 0.05 * energy[t].max()  # Far rows: still.
  totals = energy.sum(axis=(1, 2))  # Steady motion: as much at the ends as in between.
  np.testing.assert_allclose(totals, totals.mean(), rtol=0.05)
  np.testing.assert_allclose(localization.motion_energy(video[:1]), 0)
  np.testing.assert_allclose(localization.motion_energy(np.repeat(video[:1], 4, axis=0)), 0)


def test_centre_prior_peaks_at_the_centre():
  prior = localization.centre_prior((3, 9, 11))
  assert prior.shape == (3, 9, 11) and prior.dtype == np.float32
  assert np.unravel_index(np.argmax(prior[1]), (9, 11)) == (4, 5)
  assert prior[0, 4, 5] == pytest.approx(1.0)
  even = localization.centre_prior((8, 8))
  np.testing.assert_allclose(even[3:5, 3:5], even.max())  # The four central pixels tie.
  narrow = localization.centre_prior((1, 101, 51), width=0.1)  # sd: 10.1 down, 5.1 across.
  assert narrow[0, 50 + 10, 25] == pytest.approx(np.exp(-0.5 * (10 / 10.1) ** 2), rel=1e-5)
  assert narrow[0, 50, 25 + 10] == pytest.approx(np.exp(-0.5 * (10 / 5.1) ** 2), rel=1e-5)


# ---- overlays ----

def test_overlay_heats_the_peak_and_leaves_cold_pixels():
  video = _moving_square_video(num_frames=3)
  maps = np.zeros(video.shape[:3], np.float32)
  maps[1, 20, 20] = 5.0
  out = localization.overlay(video, maps)
  assert out.shape == video.shape and out.dtype == np.uint8
  assert out[1, 20, 20, 0] > video[1, 20, 20, 0] + 100  # Red at the hottest pixel.
  np.testing.assert_array_equal(out[0], video[0])
  np.testing.assert_array_equal(localization.overlay(video, np.ones(maps.shape)), video)
  with pytest.raises(ValueError):
    localization.overlay(video, maps[:, :8])


def test_animation_reads_back_with_every_frame(tmp_path):
  frames = localization.overlay(_moving_square_video(num_frames=7),
                                localization.centre_prior((7, 32, 32)))
  path = tmp_path / 'overlay.gif'
  localization.write_animation(path, frames, fps=25)
  back = iio.imread(path, index=None)
  assert back.shape[:3] == frames.shape[:3]
  assert iio.immeta(path)['duration'] == 40
