"""Padding changes nothing: a clip's audio features are the same zero-padded or not, through
`AudioEncoder(lengths=...)` and through the speech suite's frozen and fine-tuned paths."""
# The encoder's old body and the suite's input builders are private.
# pylint: disable=protected-access

import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from avjax.evaluate import features
from avjax.evaluate import probe
from avjax.evaluate import speech
from avjax.models import audio
from avjax.models import layers
from avjax.models import recurrent

SPF = 640
LENGTHS = np.array([40, 13], np.int32)  # Frames of each clip.


class OldAudioEncoder(audio.AudioEncoder):
  """`AudioEncoder` as it was before `lengths`: what training batches (unpadded) still get."""

  @nn.compact
  def __call__(self, x):
    b, t, w = x.shape
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    h = ((x - mean) / (std + 1e-5)).reshape(b * t, w, 1)
    frames = layers.remat(audio._conv_stack, self.remat)(self, h).reshape(b, t, -1)
    features = recurrent.gru(frames, self.gru_features, self.bidirectional,
                             dtype=self.dtype).astype(frames.dtype)
    return features, {'frames': frames, 'features': features}


def _clips(num_frames):
  """Each of LENGTHS' clips (speech-like: noise under a 3 Hz envelope, a DC offset), alone,
  and all zero-padded to `num_frames` frames: ([clip [n * SPF]], [N, num_frames * SPF])."""
  rng = np.random.default_rng(0)
  clips = []
  for n in LENGTHS:
    t = np.arange(n * SPF) / 16000
    clips.append((0.05 + 0.1 * rng.standard_normal(len(t)) * (1 + np.sin(6 * np.pi * t)))
                 .astype(np.float32))
  return clips, speech._pad(clips, num_frames * SPF)


@pytest.fixture(scope='module')
def encoders():
  """{bidirectional: (a small random AudioEncoder, its params, its jitted apply)}."""
  out = {}
  for bidirectional in (True, False):
    module = audio.AudioEncoder(context=32, conv_features=(8, 16), kernels=(80, 4),
                                strides=(16, 2), gru_features=8, bidirectional=bidirectional)
    windows = features.windows(module, _clips(40)[1])
    params = jax.jit(module.init)(jax.random.key(0), windows)['params']
    out[bidirectional] = (module, params,
                          jax.jit(lambda p, x, n=None, m=module: m.apply({'params': p}, x, n)))
  return out


@pytest.mark.parametrize('bidirectional', [True, False])
def test_a_clips_features_are_the_same_padded_or_not(encoders, bidirectional):
  module, params, apply = encoders[bidirectional]
  clips, padded = _clips(100)
  windows = features.windows(module, padded)
  out, aux = apply(params, windows, LENGTHS)
  unmasked = apply(params, windows)[0]
  for i, (clip, n) in enumerate(zip(clips, LENGTHS)):
    alone = apply(params, module.windows(clip)[None])[0][0]
    np.testing.assert_allclose(out[i, :n], alone, rtol=1e-5, atol=1e-6)
    assert not np.asarray(out[i, n:]).any() and not np.asarray(aux['frames'][i, n:]).any()
    # Without lengths the padding moves the statistics and the backward GRU: it shows.
    assert np.abs(unmasked[i, :n] - out[i, :n]).max() > 1e-2


def test_fine_tuning_gradients_are_the_same_padded_or_not(encoders):
  module, params, apply = encoders[True]
  clips, padded = _clips(100)
  weights = jax.random.normal(jax.random.key(1), (100, 16))
  loss = jax.jit(jax.grad(lambda p, x, n=None: (apply(p, x, n)[0] * weights[:x.shape[1]]).sum()))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               loss(params, features.windows(module, padded[1:]), LENGTHS[1:]),
               loss(params, module.windows(clips[1])[None]))


@pytest.mark.parametrize('bidirectional', [True, False])
def test_without_lengths_the_encoder_computes_what_it_did(encoders, bidirectional):
  module, params, apply = encoders[bidirectional]
  windows = features.windows(module, _clips(40)[1])
  old = OldAudioEncoder(**{f: getattr(module, f) for f in ('context', 'conv_features', 'kernels',
                                                           'strides', 'gru_features',
                                                           'bidirectional')})
  expected = jax.jit(old.apply)({'params': params}, windows)
  jax.tree.map(np.testing.assert_array_equal, apply(params, windows), expected)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               apply(params, windows, jnp.full(len(windows), windows.shape[1])), expected)


def _suite(num_frames):
  """What `speech._frozen_inputs` and `_finetune_inputs` read: every split holds the clips
  zero-padded to `num_frames` frames; test has a noisy copy too."""
  waveforms = _clips(num_frames)[1]
  split = dict(waveform=waveforms, length=LENGTHS)
  noisy = features.with_white_noise(waveforms, 0.0, 0, LENGTHS * SPF)
  return types.SimpleNamespace(clips=dict(train=split, validation=split, test=split),
                               test_waveforms={None: waveforms, 0.0: noisy})


def _valid(inputs):
  """The clips' own frames of every split's features: [(clip, frames, D)]."""
  splits = [inputs['train'], inputs['validation'], *inputs['test'].values()]
  return [x[i, :n] for x in splits for i, n in enumerate(LENGTHS)]


@pytest.mark.parametrize('method', ['random', 'mfcc', 'logmel'])
def test_the_speech_suites_frozen_features_ignore_the_padding(encoders, method):
  module, params, _ = encoders[True]
  short, long = (speech._frozen_inputs(_suite(n), method, module, params) for n in (40, 100))
  assert long['train'].shape[1] == 100
  for a, b in zip(_valid(short), _valid(long)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_the_speech_suites_fine_tuned_encoder_ignores_the_padding(encoders):
  module, encoder_params, _ = encoders[True]
  config = ml_collections.ConfigDict(dict(hidden=4, steps=1, batch_size=2, eval_batch_size=4,
                                          eval_every=1, patience=1, learning_rate=1e-3,
                                          encoder_learning_rate=1e-3))
  trainer = probe.Probe('regress', 2, config, lambda p, x: module.apply({'params': p}, *x))
  head = jax.jit(trainer.head.init)(jax.random.key(0), jnp.zeros((1, 40, 16)), jnp.full(1, 40))
  params = dict(encoder=encoder_params, head=head['params'])
  examples = probe.whole_clips(LENGTHS, np.zeros((len(LENGTHS), LENGTHS.max(), 2), np.float32))
  short, long = (speech._finetune_inputs(_suite(n), module) for n in (40, 100))
  valid = np.arange(LENGTHS.max()) < LENGTHS[:, None]
  for split in ('train', 'validation'):
    a, b = (trainer.predict(params, x[split], examples) for x in (short, long))
    np.testing.assert_allclose(a[valid], b[valid], rtol=1e-5, atol=1e-6)
