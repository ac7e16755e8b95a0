"""The avsynth heads' neutral reference frame, eyes box, and an expression that
moves with the voice: emotion must be decodable from what a clip's face adds
to its neutral reference, and not from the reference alone."""

import numpy as np
from scipy import ndimage
from scipy import optimize

from avjax.data.synth import face as face_lib
from avjax.data.synth import heads
from avjax.data.synth import lexicon
from avjax.data.synth import speakers
from avjax.data.synth import voice as voice_lib
from avjax.evaluate import metrics

TINY = heads.PRESETS['heads_tiny']


def softmax_regression(x, y, num_classes, l2=1e-2):
  """Weights [D + 1, K] (bias last) of an L2-regularised multinomial logistic
  regression of labels `y` on standardised-beforehand features `x` [N, D]."""
  x = np.concatenate([x, np.ones((len(x), 1))], 1)
  onehot = np.eye(num_classes)[y]

  def loss(w):
    w = w.reshape(x.shape[1], num_classes)
    logits = x @ w
    logits -= logits.max(1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    grad = x.T @ (np.exp(log_p) - onehot) / len(x)
    grad[:-1] += l2 * w[:-1]
    return -np.mean(np.sum(onehot * log_p, 1)) + 0.5 * l2 * np.sum(w[:-1] ** 2), grad.ravel()

  w0 = np.zeros(x.shape[1] * num_classes)
  return optimize.minimize(loss, w0, jac=True, method='L-BFGS-B').x.reshape(-1, num_classes)


def grouped_uar(features, labels, groups, folds, num_classes):
  """UAR of a softmax-regression probe, cross-validated with whole groups held out."""
  order = {g: i % folds for i, g in enumerate(np.unique(groups))}
  fold = np.array([order[g] for g in groups])
  predictions = np.zeros_like(labels)
  for k in range(folds):
    train, test = fold != k, fold == k
    mean, std = features[train].mean(0), features[train].std(0) + 1e-6
    w = softmax_regression((features[train] - mean) / std, labels[train], num_classes)
    z = np.concatenate([(features[test] - mean) / std, np.ones((test.sum(), 1))], 1)
    predictions[test] = (z @ w).argmax(1)
  return metrics.uar(labels, predictions)


def summaries(frames):
  """Per-clip mean and std over frames [N, T, K] -> [N, 2K]."""
  return np.concatenate([frames.mean(1), frames.std(1)], 1)


def all_clips(config):
  return [heads.expression_controls(config, split, i)
          for split in heads.SPLITS for i in range(heads.split_sizes(config)[split])]


def test_emotion_needs_more_than_the_neutral_still():
  clips = all_clips(TINY)
  target = np.stack([c['expression'] for c in clips])
  still = np.stack([c['neutral_expression'] for c in clips])
  emotion = np.array([c['emotion'] for c in clips])
  speaker = np.array([c['speaker'] for c in clips])
  uar = lambda x: grouped_uar(x, emotion, speaker, 3, len(heads.EMOTIONS))
  residual, from_still = uar(summaries(target - still[:, None])), uar(still)
  print(f'heads_tiny emotion UAR: residual {residual:.3f}, still {from_still:.3f} '
        f'(chance {1 / len(heads.EMOTIONS):.3f})')
  assert residual >= 0.6
  assert from_still <= 0.25


def test_expression_moves_within_a_clip():
  """Onsets and offsets, accents and blinks: no control holds still for a clip."""
  clips = [heads.expression_controls(TINY, 'train', i) for i in range(20)]
  expressive = [c for c in clips if c['emotion'] != heads.EMOTIONS.index('neutral')]
  spread = np.mean([c['expression'].std(0) for c in expressive], 0)
  print(dict(zip(heads.EXPRESSION, spread.round(3))))
  assert np.all(spread > 0.02)


def test_new_features_in_render_clip():
  size, t = TINY.frame_size, TINY.num_frames
  clip = heads.render_clip(TINY, 'train', 3)
  assert clip['neutral_frame'].dtype == np.uint8
  assert clip['neutral_frame'].shape == (size, size, 3)
  assert clip['neutral_mouth_box'].dtype == np.int32
  assert clip['neutral_mouth_box'].shape == (4,)
  assert clip['eyes_box'].dtype == np.int32
  assert clip['eyes_box'].shape == (t, 4)
  for box in (clip['eyes_box'], clip['neutral_mouth_box'][None]):
    assert np.all((box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1]))
    assert np.all((box >= 0) & (box <= size))
  # Eyes above the mouth in every frame.
  assert np.all(clip['eyes_box'][:, 2] <= clip['mouth_box'][:, 0] + 1)


def test_neutral_frame_belongs_to_the_session():
  """Clips of one track share their neutral frame; another track's differs."""
  per_track = TINY.train_clips_per_session
  a, b = (heads.render_clip(TINY, 'train', i) for i in (0, per_track - 1))
  other = heads.render_clip(TINY, 'train', per_track)
  assert a['track'] == b['track'] != other['track']
  np.testing.assert_array_equal(a['neutral_frame'], b['neutral_frame'])
  np.testing.assert_array_equal(a['neutral_mouth_box'], b['neutral_mouth_box'])
  assert np.abs(a['neutral_frame'].astype(int) - other['neutral_frame']).mean() > 5
  # The reference is the clip's own face and scene: nearer every frame of the
  # clip than another session's reference is to any of them.
  distance = lambda still: np.abs(a['video'].astype(int) - still).mean((1, 2, 3))
  assert distance(a['neutral_frame']).max() < distance(other['neutral_frame']).min()


def _controls(n, **values):
  keys = [f.name for f in face_lib.FaceControls.__dataclass_fields__.values()]
  neutral = dict(cx=0.05, cy=0.02, scale=1.0, tilt=0.08, eye_open=1.0, lip_width=0.5)
  return face_lib.FaceControls(**{k: np.full(n, float(values.get(k, neutral.get(k, 0.0))))
                                  for k in keys})


def test_eyes_box_holds_brows_and_eyes_at_their_extremes():
  """Pixels that the brows and eyes change, between their extreme positions, lie
  inside the box, and the box does not move with the expression."""
  face = speakers.face(speakers.latent(0, 5))
  sess = speakers.session(0, 2)
  size = 64
  lo, hi = face_lib.BROW_RAISE_RANGE
  extremes = [dict(brow_raise=r, brow_tilt=t, eye_open=e, gaze_x=g)
              for r in (lo, hi) for t in (-face_lib.BROW_TILT_MAX, face_lib.BROW_TILT_MAX)
              for e in (0.0, face_lib.EYE_OPEN_MAX) for g in (-1.0, 1.0)]
  for pose in (dict(), dict(tilt=-0.25, scale=1.1, cx=-0.1)):
    ctl = _controls(len(extremes), **pose)
    ctl = face_lib.FaceControls(**{**ctl.__dict__, **{
        k: np.array([x[k] for x in extremes]) for k in extremes[0]}})
    frames = face_lib.render(face, sess, ctl, size).astype(int)
    changed = np.abs(frames - frames[:1]).sum(-1).max(0) > 0
    boxes = face_lib.eyes_box(ctl, face, size)
    assert np.all(boxes == boxes[0])
    y0, x0, y1, x1 = boxes[0]
    inside = np.zeros_like(changed)
    inside[y0:y1, x0:x1] = True
    assert changed.sum() > 20
    assert not np.any(changed & ~inside), np.argwhere(changed & ~inside)
    rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
    print('eyes box', boxes[0], 'changed', rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)
    margin = np.array([rows[0] - y0, cols[0] - x0, y1 - rows[-1] - 1, x1 - cols[-1] - 1])
    assert np.all(margin <= 3)   # Tight: no more than the eyes and brows.


def _log_envelope(x, sample_rate, smooth_hz=200.0):
  """Log power spectrum of `x` averaged over frames, smoothed across harmonics."""
  frames = np.lib.stride_tricks.sliding_window_view(x, 512)[::128] * np.hanning(512)
  power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, 0)
  return np.log(ndimage.gaussian_filter1d(power, smooth_hz / (sample_rate / 512)) + 1e-12)


def test_smiling_raises_the_formants():
  """Spread lips shorten the vocal tract: the spectral envelope stretches up by
  the formant multiplier (and a frown's compresses it)."""
  rate = 16000
  utt = lexicon.plan_utterance(np.random.default_rng(0), 1.0, 1.0, 2)
  voice = speakers.voice(speakers.latent(0, 1))
  t = voice_lib.control_times(rate, rate)
  f = np.fft.rfftfreq(512, 1 / rate)
  band = (f > 300) & (f < 3500)

  def envelope(mult):
    flat = np.zeros_like(t)
    prosody = voice_lib.Prosody(f0_st=flat, gain_db=flat, breath=flat,
                                formant_mult=np.full_like(t, mult), jitter_mult=1.0)
    x = voice_lib.synthesize(utt, voice, prosody, rate, rate, np.random.default_rng(1))
    return _log_envelope(x, rate)

  plain = envelope(1.0)
  stretches = np.linspace(0.9, 1.1, 81)
  for mult in (0.96, 1.04):
    shifted = envelope(mult)[band]
    fit = [np.corrcoef(shifted, np.interp(f[band] / k, f, plain))[0, 1] for k in stretches]
    best = stretches[int(np.argmax(fit))]
    print(f'formant multiplier {mult}: spectral envelope stretched by {best:.3f}')
    assert abs(best - mult) < 0.012
