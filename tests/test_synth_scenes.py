"""Tests for the avsynth scenes world."""

import collections

import numpy as np
import pytest

from avjax.data import ops
from avjax.data.synth import scenes

TINY = scenes.PRESETS['scenes_tiny']
FULL = scenes.PRESETS['scenes']
EVENT_KINDS = {'ball', 'drum', 'bell', 'bubbling_pot'}  # The rest sound continuously.


def _audio_feature(audio, kind):
  """Per-frame onset strength (impulsive kinds) or RMS energy (continuous kinds)."""
  energy = np.sqrt(np.mean(ops.frames(ops.to_float(audio)) ** 2, axis=1))
  if kind in EVENT_KINDS:
    log_energy = np.log(energy + 1e-4)
    return np.maximum(0, np.diff(log_energy, prepend=log_energy[0]))
  return energy


def _corr(a, b):
  return 0.0 if a.std() == 0 or b.std() == 0 else float(np.corrcoef(a, b)[0, 1])


@pytest.mark.parametrize('config', [TINY, FULL], ids=['tiny', 'full'])
def test_shapes_and_dtypes(config):
  clip = scenes.render_clip(config, 'train', 3)
  t, size = config.num_frames, config.frame_size
  assert clip['audio'].shape == (t * config.samples_per_frame,) and clip['audio'].dtype == np.int16
  assert clip['video'].shape == (t, size, size, 3) and clip['video'].dtype == np.uint8
  assert clip['source_mask'].shape == (t, size, size) and clip['source_mask'].dtype == np.uint8
  assert clip['action'].dtype == np.int32 and 0 <= clip['action'] < len(scenes.ACTIONS)
  assert clip['num_objects'].dtype == np.int32 and 2 <= clip['num_objects'] <= 1 + config.max_silent
  assert clip['snr_db'].dtype == np.float32
  assert config.snr_db_range[0] <= clip['snr_db'] <= config.snr_db_range[1]
  assert np.abs(clip['audio']).max() > 3000  # Audible, not clipped to silence.


def test_deterministic():
  a, b = (scenes.render_clip(TINY, 'validation', 5, seed=1) for _ in range(2))
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  other_seed = scenes.render_clip(TINY, 'validation', 5, seed=2)
  other_split = scenes.render_clip(TINY, 'test', 5, seed=1)
  assert not np.array_equal(a['audio'], other_seed['audio'])
  assert not np.array_equal(a['video'], other_split['video'])


def test_split_sizes_and_presets():
  assert scenes.split_sizes(TINY) == {'train': 24, 'validation': 8, 'test': 8}
  assert 800 <= sum(scenes.split_sizes(FULL).values()) <= 1200
  assert (TINY.frame_size, TINY.duration_s) == (32, 2.0)
  assert len(scenes.ACTIONS) >= 8


@pytest.mark.parametrize('split', ['train', 'validation', 'test'])
def test_every_action_appears_balanced(split):
  labels = [int(scenes.render_clip(TINY, split, i)['action'])
            for i in range(scenes.split_sizes(TINY)[split])]
  counts = collections.Counter(labels)
  assert set(counts) == set(range(len(scenes.ACTIONS)))
  assert max(counts.values()) - min(counts.values()) <= 1
  assert scenes.split_sizes(FULL)[split] % len(scenes.ACTIONS) == 0  # Exactly balanced.


@pytest.mark.parametrize('config,num_clips', [(TINY, 16), (FULL, 16)], ids=['tiny', 'full'])
def test_source_mask_lies_on_sounding_object(config, num_clips):
  nonempty, errors, background_errors = [], [], []
  for index in range(num_clips):
    scene = scenes.sample_scene(config, 'train', index)
    video, mask = scenes.composite(scene)
    nonempty.append(mask.any(axis=(1, 2)).mean())
    sounding = [o for o in scene.objects if o.sounding]
    assert len(sounding) == 1 and sounding[0].kind == scenes.ACTIONS[scene.action]
    palette = np.stack([rgb for _, rgb in sounding[0].layers])  # [K, 3]
    t, y, x = np.nonzero(mask)
    unlit = video[t, y, x].astype(np.float32) / 255 / scene.light[t, y, x][:, None]
    errors.append(np.median(np.abs(unlit[:, None] - palette).max(axis=2).min(axis=1)))
    background = scene.background[y, x]
    background_errors.append(np.median(np.abs(background[:, None] - palette).max(axis=2).min(axis=1)))
  print(f'mask non-empty in {np.mean(nonempty):.3f} of frames; median colour error under mask '
        f'{np.mean(errors):.3f} vs background {np.mean(background_errors):.3f}')
  assert np.mean(nonempty) > 0.9 and min(nonempty) > 0.5
  assert np.mean(errors) < 0.08 and np.mean(errors) < np.mean(background_errors) / 3


def test_sound_follows_sounding_objects_motion():
  sounding_corrs, silent_corrs, shifted_corrs, wins = [], [], [], []
  for index in range(24):
    scene = scenes.sample_scene(FULL, 'validation', index)
    audio = ops.to_int16(scene.audio)
    movers = [o for o in scene.objects if o.kind != 'clutter']
    for obj in movers:
      feature = _audio_feature(audio, obj.kind)
      if obj.sounding:
        sounding_corrs.append(_corr(feature, obj.drive))
        shifted_corrs.append(np.mean([_corr(np.roll(feature, lag), obj.drive) for lag in (25, 50, 75)]))
        best_silent = max(_corr(_audio_feature(audio, o.kind), o.drive) for o in movers if not o.sounding)
        wins.append(sounding_corrs[-1] > best_silent)
      else:
        silent_corrs.append(_corr(feature, obj.drive))
  print(f'corr(audio, drive): sounding {np.mean(sounding_corrs):.3f}, silent movers '
        f'{np.mean(silent_corrs):.3f}, sounding with audio shifted 1-3 s {np.mean(shifted_corrs):.3f}; '
        f'sounding beats every silent mover in {np.mean(wins):.2f} of clips')
  assert np.mean(sounding_corrs) > 0.6 and np.mean(silent_corrs) < 0.2
  assert np.mean(shifted_corrs) < 0.2
  assert np.mean(wins) > 0.9


def test_event_sounds_are_sample_aligned():
  scene = scenes.sample_scene(FULL, 'train', 0)  # Action 0: the ball.
  ball = next(o for o in scene.objects if o.sounding)
  assert ball.kind == 'ball'
  frames = np.nonzero(ball.drive)[0]
  energy = np.abs(ball.sound).reshape(FULL.num_frames, -1)
  checked = 0
  for f in frames:  # Each contact's frame window holds the impact's onset: silence before it.
    if f > 0 and not ball.drive[f - 1]:
      checked += 1
      assert energy[f].max() > 10 * energy[f - 1][-100:].max() + 1e-9
  assert checked >= 3


def test_unknown_split_and_index_raise():
  with pytest.raises(ValueError, match='unknown split .*valid'):
    scenes.render_clip(TINY, 'valid', 0)
  with pytest.raises(ValueError, match='out of range'):
    scenes.render_clip(TINY, 'test', 8)
