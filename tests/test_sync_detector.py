"""Tests for the hand-crafted sync detector and the sync suite's rows of it."""

import numpy as np

from avjax.data import ops
from avjax.data import pipeline
from avjax.data.synth import scenes
from avjax.evaluate import runs
from avjax.evaluate import sync as sync_suite
from avjax.evaluate import sync_detector
from avjax.tasks import sync

SPF = ops.SAMPLES_PER_FRAME


def test_cell_motion_is_the_mean_frame_difference_of_each_cell():
  video = np.zeros((1, 3, 16, 16, 3), np.uint8)
  video[0, 1, 4:6, 10:12] = 90  # Cell (2, 5) of an 8x8 grid of 2x2 cells, on frame 1 only.
  motion = sync_detector.cell_motion(video)
  assert motion.shape == (1, 2, 64)
  expected = np.zeros((2, 64))
  expected[:, 2 * 8 + 5] = 90  # Appears, then goes.
  np.testing.assert_allclose(motion[0], expected)
  uneven = np.zeros((1, 2, 10, 10, 3), np.uint8)  # Cells of 1 or 2 pixels.
  uneven[0, 1, :, :5] = 30
  motion = sync_detector.cell_motion(uneven).reshape(8, 8)
  np.testing.assert_allclose(motion[:, :4], 30)
  np.testing.assert_allclose(motion[:, 4:], 0)


def test_loudness_covers_the_frames_after_each_shown_frame_up_to_the_next():
  amplitude = 2.0 ** -np.arange(1, 9)  # Frame t: a constant of amplitude 2^-(t + 1).
  audio = np.repeat(amplitude, SPF)[None]
  np.testing.assert_allclose(sync_detector.loudness(audio, 8)[0], np.log(amplitude[1:]),
                             rtol=1e-5)
  # Shown frames 0, 2, 4, 6: intervals of frames (1, 2), (3, 4), (5, 6).
  pairs = np.sqrt((amplitude[1:7] ** 2).reshape(3, 2).mean(1))
  np.testing.assert_allclose(sync_detector.loudness(audio, 4, frame_stride=2)[0],
                             np.log(pairs), rtol=1e-5)
  as_int16 = ops.to_int16(audio)
  np.testing.assert_allclose(sync_detector.loudness(as_int16, 8), np.log(amplitude[None, 1:]),
                             atol=1e-3)


def clicking_clip(rng, num_frames=40, size=16):
  """A square flashes on random frames with a click at each; a silent one flashes too.
  (video [T, H, W, 3] uint8, audio [S] int16)."""
  video = np.full((num_frames, size, size, 3), 60, np.uint8)
  audio = 0.01 * rng.normal(size=num_frames * SPF)
  for sounding, (y, x) in ((True, (0, 0)), (False, (8, 8))):
    for t in rng.choice(num_frames, 8, replace=False):
      video[t, y:y + 4, x:x + 4] = 250
      if sounding:
        audio[t * SPF:t * SPF + 320] += 0.5 * rng.normal(size=320)
  return video, ops.to_int16(audio)


def test_detector_calls_the_clicks_under_their_flashes_aligned():
  rng = np.random.default_rng(0)
  videos, tracks = [], []
  for _ in range(16):
    video, audio = clicking_clip(rng)
    shifted = np.roll(audio, 5 * SPF)
    videos.append(video)
    tracks.append(np.stack([audio, shifted]))
  videos, tracks = np.stack(videos), np.stack(tracks)
  scores = sync_detector.track_scores(videos, tracks)
  # A flash changes two frame differences (on, off); its click is under the first: about 0.5.
  assert scores.shape == (16, 2) and (scores[:, 0] > 0.45).all()
  assert sync_detector.aligned_first(videos, tracks).all()
  assert not sync_detector.aligned_first(videos, tracks[:, ::-1]).any()


def test_detector_at_steps_of_several_frames_sums_motion_and_power_over_each_step():
  """Against np.corrcoef of each cell's motion summed over 3 intervals a step and the
  log RMS of the audio over those 3 frames (12 intervals: 4 steps)."""
  rng = np.random.default_rng(1)
  video = rng.integers(0, 255, (2, 13, 8, 8, 3), dtype=np.uint8)
  audio = ops.to_int16(0.1 * rng.normal(size=(2, 2, 13 * SPF)))
  scores = sync_detector.track_scores(video, audio, grid=4, steps_of=3)
  motion = sync_detector.cell_motion(video, 4).reshape(2, 4, 3, 16).sum(2)
  samples = ops.to_float(audio)[..., SPF:13 * SPF].reshape(2, 2, 4, 3 * SPF)
  envelope = np.log(np.sqrt((samples ** 2).mean(-1)))
  expected = [[max(np.corrcoef(envelope[n, k], motion[n, :, c])[0, 1] for c in range(16))
               for k in range(2)] for n in range(2)]
  np.testing.assert_allclose(scores, expected, rtol=1e-4)


def test_detector_tells_aligned_from_shifted_on_scenes_tiny():
  """At the full frame rate, on 8 windows of each of 24 clips: 0.667 when written
  (chance 0.5; the standard error of 192 calls at chance is 0.036)."""
  config, rng = scenes.PRESETS['scenes_tiny'], np.random.default_rng(0)
  videos, tracks = [], []
  for i in range(24):
    clip = scenes.render_clip(config, 'train', i)
    for _ in range(8):
      start, shift = sync.draw_windows(len(clip['video']), len(clip['audio']), 20, 0.52, 1.4,
                                       rng)
      aligned, video = ops.time_crop(clip['audio'], clip['video'], start, 20)
      shifted, _ = ops.time_crop(clip['audio'], clip['video'], start, 20, audio_offset=shift)
      videos.append(video)
      tracks.append(np.stack([aligned, shifted]))
  hits = sync_detector.aligned_first(np.stack(videos), np.stack(tracks))
  assert hits.mean() > 0.6, hits.mean()


def test_suite_scores_the_detector_on_the_windows_it_scores_the_network_on(data_dir):
  config = sync_suite.get_config('tiny')
  config.data.data_dir = data_dir
  method = runs.run_config(config, 'sync', config.data)
  keep = sync_suite.usable(20, audible=True)
  seen, _ = runs.split_examples(method, sync.Sync(method), keep=keep)
  full = method.copy_and_resolve_references()
  full.sync.update(frame_stride=1, frame_downsample=1)
  full_rate, _ = runs.split_examples(full, sync.Sync(full), keep=keep)
  stride, downsample = method.sync.frame_stride, method.sync.frame_downsample
  for a, b in zip(seen, full_rate):  # The same windows, one seen as the network sees it.
    assert a['shift'] == b['shift']
    np.testing.assert_array_equal(a['audio'], b['audio'])
    np.testing.assert_array_equal(a['video'], sync.shown_frames(b['video'], stride, downsample))
  hits = sync_suite.detector_hits(method, seen, keep)
  assert set(hits) == {'detector_seen', 'detector_full_rate'}
  stack = lambda examples, k: np.stack([x[k] for x in examples])
  np.testing.assert_array_equal(hits['detector_full_rate'], sync_detector.aligned_first(
      stack(full_rate, 'video'), stack(full_rate, 'audio')))
  np.testing.assert_array_equal(hits['detector_seen'], sync_detector.aligned_first(
      stack(seen, 'video'), stack(seen, 'audio'), stride))
  labels = sync_suite.clip_labels(method, keep)
  source = pipeline.load_source(method.data, 'test')
  np.testing.assert_array_equal(labels, [source[i]['action'] for i in range(len(source))])
  rows = sync_suite.class_rows({'x': np.array([True, False, True]), 'sync': np.ones(3, bool)},
                               np.array([2, 2, 0]), scenes.ACTIONS)
  found = {(r['method'], r['mode'], r['metric']): r['value'] for r in rows}
  assert found == {('x', 'baseline', 'saw'): 0.5, ('x', 'baseline', 'ball'): 1.0,
                   ('sync', 'frozen', 'saw'): 1.0, ('sync', 'frozen', 'ball'): 1.0}
  assert {r['task'] for r in rows} == {'pretext by action'}
