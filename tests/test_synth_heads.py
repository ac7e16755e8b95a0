"""Tests of the avsynth talking heads: contract, determinism, splits, and that
each latent factor is really present in the modalities it should drive."""

import dataclasses

import numpy as np
import pytest
from sklearn import cross_decomposition, decomposition, linear_model, pipeline
from sklearn import preprocessing

from avjax.data.synth import heads

TINY = heads.PRESETS['heads_tiny']
# Enough speakers and clips for the probes, still small and fast.
PROBE = dataclasses.replace(
    TINY, frame_size=64, num_train_speakers=32, num_test_speakers=12, sessions_per_speaker=2,
    train_clips_per_session=4, validation_clips_per_session=2,
    test_clips_per_session=3)


def _render_split(config, split):
  return [heads.render_clip(config, split, i)
          for i in range(heads.split_sizes(config)[split])]


@pytest.fixture(scope='module')
def probe():
  return {s: _render_split(PROBE, s) for s in heads.SPLITS}


# ---------------------------------------------------------------- contract

def test_fields_shapes_and_dtypes():
  c = TINY
  t, s, hw = c.num_frames, c.num_samples, c.frame_size
  clip = heads.render_clip(c, 'train', 3)
  n = len(clip['words'])
  expected = {
      'audio': (np.int16, (s,)), 'video': (np.uint8, (t, hw, hw, 3)),
      'speaker': (np.int32, ()), 'track': (np.int32, ()),
      'emotion': (np.int32, ()), 'intensity': (np.int32, ()),
      'arousal': (np.float32, (t,)), 'valence': (np.float32, (t,)),
      'words': (np.int32, (n,)), 'word_start': (np.int32, (n,)),
      'word_end': (np.int32, (n,)), 'viseme': (np.int32, (t,)),
      'mouth_open': (np.float32, (t,)), 'mouth_box': (np.int32, (t, 4)),
      'neutral_frame': (np.uint8, (hw, hw, 3)), 'neutral_mouth_box': (np.int32, (4,)),
      'eyes_box': (np.int32, (t, 4)), 'snr_db': (np.float32, ()),
  }
  assert set(clip) == set(expected)
  for k, (dtype, shape) in expected.items():
    assert clip[k].dtype == dtype, k
    assert clip[k].shape == shape, k
  assert n >= 1
  assert np.all((0 <= clip['word_start']) & (clip['word_start'] < clip['word_end'])
                & (clip['word_end'] <= t))
  assert np.all(clip['words'] < len(heads.VOCABULARY))
  assert np.all((clip['viseme'] >= 0) & (clip['viseme'] < heads.NUM_VISEMES))
  assert clip['viseme'][0] == 0   # every clip starts in silence
  for k in ('arousal', 'valence'):
    assert np.all(np.abs(clip[k]) <= 1)
  assert np.all((clip['mouth_open'] >= 0) & (clip['mouth_open'] <= 1))
  box = clip['mouth_box']
  assert np.all((box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1]))
  assert np.all((box >= 0) & (box <= hw))
  lo, hi = c.snr_db
  assert lo <= clip['snr_db'] <= hi
  assert 0 <= clip['emotion'] < len(heads.EMOTIONS)
  assert 0 <= clip['intensity'] < len(heads.INTENSITIES)
  assert c.sample_rate % c.fps == 0


def test_presets_sizes():
  sizes = heads.split_sizes(heads.PRESETS['heads'])
  assert 1200 <= sum(sizes.values()) <= 1800
  assert sum(heads.split_sizes(TINY).values()) <= 80


def test_deterministic_and_varied():
  a = heads.render_clip(TINY, 'validation', 2, seed=3)
  b = heads.render_clip(TINY, 'validation', 2, seed=3)
  for k in a:
    assert a[k].tobytes() == b[k].tobytes(), k
  other = heads.render_clip(TINY, 'validation', 3, seed=3)
  assert a['audio'].tobytes() != other['audio'].tobytes()
  assert a['video'].tobytes() != other['video'].tobytes()
  reseeded = heads.render_clip(TINY, 'validation', 2, seed=4)
  assert a['audio'].tobytes() != reseeded['audio'].tobytes()


def test_splits_speakers_and_tracks():
  ids = {s: [heads.clip_identity(TINY, s, i)
             for i in range(heads.split_sizes(TINY)[s])] for s in heads.SPLITS}
  spk = {s: {k for k, _ in v} for s, v in ids.items()}
  assert spk['train'] == spk['validation'] == set(range(TINY.num_train_speakers))
  assert spk['test'] == set(range(TINY.num_train_speakers,
                                  TINY.num_train_speakers + TINY.num_test_speakers))
  tracks = {k: {t for _, t in v} for k, v in ids.items()}
  assert len(tracks['train']) == TINY.num_train_speakers * TINY.sessions_per_speaker
  assert not tracks['train'] & tracks['test']
  clip = heads.render_clip(TINY, 'test', 7)
  assert (int(clip['speaker']), int(clip['track'])) == ids['test'][7]
  # Train and validation clips of one session are different clips.
  a = heads.render_clip(TINY, 'train', 0)
  b = heads.render_clip(TINY, 'validation', 0)
  assert a['track'] == b['track']
  assert a['audio'].tobytes() != b['audio'].tobytes()


def test_unknown_split_raises():
  with pytest.raises(ValueError, match='bogus'):
    heads.render_clip(TINY, 'bogus', 0)
  with pytest.raises(ValueError, match='bogus'):
    heads.clip_identity(TINY, 'bogus', 0)


def test_trials_balanced_and_valid():
  for config in (TINY, heads.PRESETS['heads']):
    tr = heads.trials(config)
    n = heads.split_sizes(config)['test']
    labels = np.array([l for l, _, _ in tr])
    assert len(tr) == config.num_trials
    assert labels.sum() * 2 == len(tr)
    for label, a, b in tr:
      assert 0 <= a < n and 0 <= b < n and a != b
      same = (heads.clip_identity(config, 'test', a)[0]
              == heads.clip_identity(config, 'test', b)[0])
      assert same == bool(label)
    assert tr == heads.trials(config)
  tr = heads.trials(TINY)
  clip_a, clip_b = (heads.render_clip(TINY, 'test', i) for i in tr[0][1:])
  assert clip_a['speaker'] == clip_b['speaker']


def test_trials_never_repeat_a_pair():
  # heads_tiny's test split: 2 speakers x 10 clips, 90 target and 100 non-target pairs.
  every_target = dataclasses.replace(TINY, num_trials=180)
  for config in (TINY, heads.PRESETS['heads'], every_target):
    pairs = [frozenset(t[1:]) for t in heads.trials(config)]
    assert len(set(pairs)) == len(pairs) == config.num_trials
  assert sum(label for label, _, _ in heads.trials(every_target)) == 90
  with pytest.raises(ValueError, match='num_trials=182 asks for 91 target pairs, but the '
                                       'test split has only 90 distinct ones'):
    heads.trials(dataclasses.replace(TINY, num_trials=182))


# ---------------------------------------------------------------- features

def _frames(audio, config):
  hop = config.sample_rate // config.fps
  return audio.astype(np.float64).reshape(-1, hop) / 32768.0


def _log_energy(clip, config):
  return np.log(np.mean(_frames(clip['audio'], config) ** 2, 1) + 1e-10)


def _pitch(frames, sample_rate, lo=70.0, hi=400.0):
  """Autocorrelation pitch (Hz) per frame."""
  x = frames - frames.mean(1, keepdims=True)
  spec = np.fft.rfft(x, 2 * x.shape[1], axis=1)
  ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)
  lags = np.arange(int(sample_rate / hi), int(sample_rate / lo))
  return sample_rate / lags[np.argmax(ac[:, lags], 1)]


def _audio_features(clip, config):
  """Per-clip prosodic and spectral statistics."""
  frames = _frames(clip['audio'], config)
  energy = _log_energy(clip, config)
  loud = energy >= np.quantile(energy, 0.6)
  zcr = np.mean(np.abs(np.diff(np.sign(frames), axis=1)) > 0, 1)
  spec = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1)) ** 2
  freqs = np.fft.rfftfreq(frames.shape[1], 1.0 / config.sample_rate)
  centroid = (spec * freqs).sum(1) / (spec.sum(1) + 1e-12)
  bands = np.log(np.stack([b.sum(1) for b in np.array_split(spec, 16, 1)], 1)
                 + 1e-12)[loud].mean(0)
  f0 = np.log(_pitch(frames[loud], config.sample_rate))
  stats = [energy.mean(), energy.std(), energy.max(), np.quantile(energy, 0.9),
           zcr[loud].mean(), centroid[loud].mean() / 1000, np.median(f0),
           f0.std(), np.quantile(f0, 0.9) - np.quantile(f0, 0.1)]
  return np.concatenate([stats, bands - bands.mean()])


def _patch(frame, y0, y1, x0, x1, out=(6, 8)):
  """Nearest-neighbour resampled crop (clamped to the frame)."""
  h, w = frame.shape[:2]
  ys = np.clip(np.linspace(y0, y1, out[0]).round().astype(int), 0, h - 1)
  xs = np.clip(np.linspace(x0, x1, out[1]).round().astype(int), 0, w - 1)
  return frame[ys][:, xs]


def _face_geometry(box):
  """Mouth centre and head-local unit in pixels, from the mouth box."""
  my, mx = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
  return my, mx, (box[2] - box[0]) / 0.26


def _expression_features(clip):
  """Brow/eye and mouth regions, located by their boxes, normalised."""
  feats = []
  for frame, eyes, box in zip(clip['video'].astype(np.float64), clip['eyes_box'],
                              clip['mouth_box']):
    gray = frame.mean(-1)
    upper = _patch(gray, eyes[0], eyes[2], eyes[1], eyes[3])
    mouth = _patch(gray, box[0], box[2], box[1], box[3], (4, 6))
    feats.append(np.concatenate([(upper / (upper.mean() + 1)).ravel(),
                                 (mouth / (mouth.mean() + 1)).ravel()]))
  feats = np.array(feats)
  return np.concatenate([feats.mean(0), np.median(feats, 0)])


def _appearance_features(clip):
  """Colour and shape of a head-centred crop, averaged over the clip."""
  crops = []
  for frame, box in zip(clip['video'][::4].astype(np.float64),
                        clip['mouth_box'][::4]):
    my, mx, unit = _face_geometry(box)
    cy = my - 0.26 * unit
    crops.append(_patch(frame, cy - 0.55 * unit, cy + 0.7 * unit,
                        mx - 0.5 * unit, mx + 0.5 * unit, (8, 8)) / 255.0)
  return np.mean(crops, 0).ravel()


def _classifier():
  return pipeline.make_pipeline(
      preprocessing.StandardScaler(),
      linear_model.LogisticRegression(C=0.5, max_iter=2000))


def _accuracy(train, test, featurise, label):
  x = np.array([featurise(c) for c in train])
  xt = np.array([featurise(c) for c in test])
  model = _classifier().fit(x, [int(c[label]) for c in train])
  return float(np.mean(model.predict(xt) == [int(c[label]) for c in test]))


# ---------------------------------------------------------------- factors

def test_mouth_follows_audio_energy(probe):
  corr = [np.corrcoef(c['mouth_open'], _log_energy(c, PROBE))[0, 1]
          for c in probe['train'][:80]]
  print(f'mouth_open vs log frame energy: mean Pearson r = {np.mean(corr):.3f}')
  assert np.mean(corr) > 0.5


def test_silence_shows_rest_viseme(probe):
  for c in probe['train'][:20]:
    spoken = np.zeros(PROBE.num_frames, bool)
    for s, e in zip(c['word_start'], c['word_end']):
      spoken[s:e] = True
    assert np.all(c['viseme'][~spoken] == 0)
    assert np.mean(c['viseme'][spoken] != 0) > 0.7


def test_emotion_from_audio_and_from_face(probe):
  held_out = probe['validation'] + probe['test']
  chance = 1.0 / len(heads.EMOTIONS)
  audio = _accuracy(probe['train'], held_out,
                    lambda c: _audio_features(c, PROBE), 'emotion')
  face = _accuracy(probe['train'], held_out, _expression_features, 'emotion')
  print(f'emotion accuracy: audio {audio:.3f}, face {face:.3f} '
        f'(chance {chance:.3f})')
  assert audio > chance + 0.1   # 0.275-0.41 over seeds 0-4 of avsynth 1.3 and 1.4
  assert face > chance + 0.1


def test_speaker_from_audio_and_from_face(probe):
  chance = 1.0 / PROBE.num_train_speakers
  audio = _accuracy(probe['train'], probe['validation'],
                    lambda c: _audio_features(c, PROBE), 'speaker')
  face = _accuracy(probe['train'], probe['validation'], _appearance_features,
                   'speaker')
  print(f'speaker accuracy ({PROBE.num_train_speakers} speakers): '
        f'audio {audio:.3f}, face {face:.3f} (chance {chance:.3f})')
  assert audio > chance + 0.1   # 1 s clips, SNR down to 5 dB, emotional F0
  assert face > chance + 0.5


def test_voice_face_matching_is_partial(probe):
  """CCA of voice and face on train speakers; 2-way choice on unseen ones."""
  voice = lambda cs: np.array([_audio_features(c, PROBE) for c in cs])
  face = lambda cs: np.array([_appearance_features(c) for c in cs])
  train = probe['train'] + probe['validation']
  model = pipeline.make_pipeline(preprocessing.StandardScaler(),
                                 decomposition.PCA(16, random_state=0))
  cca = cross_decomposition.CCA(n_components=1)
  cca.fit(voice(train), model.fit_transform(face(train)))
  test = probe['test']
  v, f = cca.transform(voice(test), model.transform(face(test)))
  spk = np.array([int(c['speaker']) for c in test])
  rng = np.random.default_rng(0)
  correct = []
  for i in range(len(test)):
    # Face of the true speaker in another clip vs a different speaker's.
    same = rng.choice(np.flatnonzero((spk == spk[i]) & (np.arange(len(test)) != i)))
    diff = rng.choice(np.flatnonzero(spk != spk[i]))
    correct.append(abs(v[i, 0] - f[same, 0]) < abs(v[i, 0] - f[diff, 0]))
  acc = float(np.mean(correct))
  print(f'voice->face 2-way matching on unseen speakers: {acc:.3f}')
  assert 0.58 < acc < 0.95
