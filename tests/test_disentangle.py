"""Tests for the disentangle task (Nagrani et al. 2020): two streams, content and identity
matching, the confusion losses, the presets and a tiny run end to end."""

import functools
import json

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avjax import export
from avjax import tasks
from avjax import train
from avjax.data import ops
from avjax.data.synth import heads
from avjax.models import twostream
from avjax.tasks import disentangle
from configs import disentangle as disentangle_config

SPF = 640  # Audio samples per video frame: 16 kHz at 25 fps.
NUM_FRAMES, SIZE = 25, 32  # heads_tiny clips: 1 s of 32x32 frames.
TINY_RUN = dict(batch_size=4, total_steps=2, log_every=1, eval_every=2, checkpoint_every=2)


def key(seed):
  """A PRNG key; 'rbg' compiles far faster than threefry on a CPU."""
  return jax.random.key(seed, impl='rbg')


def indexed_clip(code, clicks=()):
  """Frame t's red channel is 10 t, its green the clip's `code`; the audio is faint noise
  with a click at the centre of each frame in `clicks`; viseme t = t % 7; track = code."""
  video = np.zeros((NUM_FRAMES, SIZE, SIZE, 3), np.uint8)
  video[..., 0] = 10 * np.arange(NUM_FRAMES)[:, None, None]
  video[..., 1] = code
  audio = 1e-3 * np.random.default_rng(code).normal(size=NUM_FRAMES * SPF)
  for f in clicks:
    audio[f * SPF + SPF // 2] = 0.9
  return {'audio': ops.to_int16(audio), 'video': video, 'speaker': np.int32(code // 2),
          'track': np.int32(code), 'viseme': (np.arange(NUM_FRAMES) % 7).astype(np.int32)}


def pixels(x):
  """Compact frames (uint8 codes, `expand` makes them [-1, 1]) as ints."""
  return np.asarray(x).astype(int)


def stack(examples):
  return jax.tree.map(lambda *x: np.stack(x), *examples)


@pytest.fixture(scope='module')
def config():
  return disentangle_config.get_config('tiny')


@pytest.fixture(scope='module')
def task(config):
  return disentangle.Disentangle(config)


@pytest.fixture(scope='module')
def batch(task):
  """4 heads_tiny train clips of 4 different tracks (clips 0, 10, 20, 30: sessions 0, 2, 4, 6)."""
  rng, preset = np.random.default_rng(0), heads.PRESETS['heads_tiny']
  return stack([task.preprocess(heads.render_clip(preset, 'train', i), rng)
                for i in (0, 10, 20, 30)])


@pytest.fixture(scope='module')
def params(task, batch):
  return jax.jit(task.init)(key(0), batch)


@pytest.mark.parametrize('arg', [None, 'tiny', 'paper', 'variant=content', 'variant=identity',
                                 'tiny,variant=both'])
def test_presets_build_a_task_with_the_variant_weights(arg):
  config = disentangle_config.get_config(arg)
  variant = config.disentangle.variant
  assert config.task == 'disentangle' and tasks.TASKS['disentangle'] is disentangle.Disentangle
  assert variant == (arg.split('variant=')[1] if arg and 'variant=' in arg else 'disentangle')
  weights = (config.disentangle.content_weight, config.disentangle.identity_weight,
             config.disentangle.confusion_weight > 0)
  assert weights == {'content': (1, 0, False), 'identity': (0, 1, False),
                     'both': (1, 1, False), 'disentangle': (1, 1, True)}[variant]
  task = disentangle.Disentangle(config)
  preset = heads.PRESETS[config.data.config]
  assert disentangle.num_classes_of(config, 'track') == (
      preset.num_train_speakers * preset.sessions_per_speaker)
  assert disentangle.num_classes_of(config, 'speaker') == preset.num_train_speakers
  assert (config.disentangle.content_target, config.disentangle.identity_target) == (
      'sync', 'clip')  # The defaults read no labels.
  out = task.preprocess(heads.render_clip(preset, 'train', 3), np.random.default_rng(0))
  frames, other = config.disentangle.window_frames, config.disentangle.identity_frames
  size = preset.frame_size // config.disentangle.frame_downsample
  assert out['mel'].shape == (4 * frames, 40) and out['video'].shape == (frames, size, size, 3)
  assert out['face'].shape == (other, size, size, 3)
  assert out['viseme'].shape == (frames,) and out['face_viseme'].shape == (other,)
  assert out['mel'].dtype == np.float32 and out['video'].dtype == out['face'].dtype == np.uint8
  shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct((2,) + x.shape, x.dtype), out)
  params = jax.eval_shape(task.init, key(0), shapes)
  assert set(params) == {'speaker_encoder', 'face_encoder', 'content_similarity',
                         'identity_similarity', 'content_adversary', 'identity_adversary',
                         'identity_progress'}
  loss, metrics = jax.eval_shape(task.loss, params, shapes, None)
  metrics.pop('statistics')  # The heads' running averages (test_train_step_sets_...).
  assert loss.shape == () and all(m.shape == () for m in metrics.values())
  module, input_key = task.encoders()['speaker_encoder']
  assert module is task.audio and input_key == 'mel'
  identity, aux = jax.eval_shape(module.apply, {'params': params['speaker_encoder']},
                                 shapes['mel'])
  embedding = config.model.embedding
  assert identity.shape == aux['content'].shape == (2, frames, embedding)


def test_an_unknown_variant_or_argument_is_an_error():
  with pytest.raises(ValueError, match='unknown variant'):
    disentangle_config.get_config('variant=speaker')
  with pytest.raises(ValueError, match='unknown config argument'):
    disentangle_config.get_config('tinny')


def test_log_mel_features_put_a_frame_under_its_four_mel_frames():
  clicks = (3, 11, 20)
  mel = disentangle.log_mel_features(indexed_clip(0, clicks)['audio'])
  assert mel.shape == (4 * NUM_FRAMES, 40) and mel.dtype == np.float32
  np.testing.assert_allclose(mel.mean(0), 0, atol=1e-4)  # Instance-normalised per band.
  np.testing.assert_allclose(mel.std(0), 1, atol=1e-3)
  energy = mel.sum(1)
  # A click at the centre of frame f (sample 640 f + 320 = 160 (4 f + 2)) peaks in mel frame
  # 4 f + 2, inside frame f's mel frames [4 f, 4 f + 4).
  for f in clicks:
    assert energy[4 * f:4 * f + 4].argmax() == 2 and energy[4 * f + 2] > 3 * energy.std()
  assert set(np.argsort(energy)[-3:]) == {4 * f + 2 for f in clicks}


def test_preprocess_aligns_mel_and_frames_and_takes_the_face_at_another_time(task):
  frames, other = task.config.window_frames, task.config.identity_frames
  rng, starts, face_starts = np.random.default_rng(0), set(), set()
  for code in range(30):
    clip = indexed_clip(code, clicks=(code % NUM_FRAMES,))
    out = task.preprocess(clip, rng)
    start, face_start = int(out['start']), int(out['face_start'])
    video, face = pixels(out['video']), pixels(out['face'])
    np.testing.assert_array_equal(video[:, 0, 0, 0] // 10, start + np.arange(frames))
    np.testing.assert_array_equal(face[:, 0, 0, 0] // 10, face_start + np.arange(other))
    assert (video[..., 1] == code).all() and (face[..., 1] == code).all()  # The same clip.
    assert face_start + other <= start or start + frames <= face_start  # Not overlapping.
    mel = disentangle.log_mel_features(clip['audio'])  # Normalised over the whole clip.
    np.testing.assert_array_equal(out['mel'], mel[4 * start:4 * (start + frames)])
    np.testing.assert_array_equal(out['viseme'], (start + np.arange(frames)) % 7)
    np.testing.assert_array_equal(out['face_viseme'], (face_start + np.arange(other)) % 7)
    assert out['track'] == code and out['speaker'] == code // 2
    starts.add(start)
    face_starts.add(face_start)
  assert len(starts) > 8 and len(face_starts) > 10


def test_draw_windows_keeps_both_windows_inside_and_apart():
  rng = np.random.default_rng(0)
  draws = {disentangle.draw_windows(12, 4, 3, rng) for _ in range(2000)}
  for start, face in draws:
    assert 0 <= start <= 8 and 0 <= face <= 9 and (face + 3 <= start or start + 4 <= face)
  assert {s for s, _ in draws} == set(range(9)) and {f for _, f in draws} == set(range(10))
  with pytest.raises(ValueError, match='cannot hold'):
    disentangle.draw_windows(6, 4, 3, rng)
  # A short clip: only the starts that leave a face window beside them (0 and 5 of 0..5).
  short = {disentangle.draw_windows(15, 10, 5, rng) for _ in range(200)}
  assert short == {(0, 10), (5, 0)}


def test_content_target_is_the_aligned_audio_step(task, params):
  """Video step t matched to every audio step of its clip: the target is audio step t."""
  b, t, d = 3, 6, task.embedding
  steps = jnp.broadcast_to(jnp.eye(t, d), (b, t, d))  # Step s: the one-hot vector e_s.
  sharp = dict(params, content_similarity={'log_scale': jnp.log(50.0), 'bias': jnp.float32(-5)})
  face = jnp.ones((b, 5, d))
  embeddings = lambda audio: {'video_content': steps, 'audio_content': audio,
                              'audio_identity': face[:, :1], 'face_identity': face}
  logits, _ = task.logits(sharp, embeddings(steps))
  assert logits.shape == (b, t, t)
  np.testing.assert_allclose(logits[0], 50 * np.eye(t) - 5, atol=1e-5)
  loss, accuracy = disentangle.content_metrics(logits)
  assert loss < 1e-15 + 6 * np.exp(-50) and accuracy == 1
  # Audio delayed by one step: the aligned pair is now off the diagonal, so the target misses.
  logits, _ = task.logits(sharp, embeddings(jnp.roll(steps, 1, axis=1)))
  loss, accuracy = disentangle.content_metrics(logits)
  np.testing.assert_allclose(loss, 50, rtol=1e-5)
  assert accuracy == 0


def test_identity_matches_each_voice_to_its_own_face_and_drops_false_negatives(task, params):
  b, d = 4, task.embedding
  identities = jnp.eye(b, d)
  sharp = dict(params, identity_similarity={'log_scale': jnp.log(30.0), 'bias': jnp.float32(0)})
  embeddings = {'audio_identity': jnp.repeat(identities[:, None], 6, axis=1),
                'face_identity': jnp.repeat(identities[:, None], 5, axis=1),
                'audio_content': jnp.zeros((b, 6, d)), 'video_content': jnp.zeros((b, 6, d))}
  _, logits = task.logits(sharp, embeddings)
  np.testing.assert_allclose(logits, 30 * np.eye(b), atol=1e-5)
  loss, accuracy = disentangle.identity_metrics(logits)
  assert loss < 1e-11 and accuracy == 1
  # Clips 0 and 1 from one track, 2 and 3 of one speaker (other tracks); clip 1's face
  # and clip 3's score higher for voices 0 and 2: without the mask those are (false)
  # negatives beating the positive; with it, they leave the softmax.
  logits = np.asarray(logits).copy()
  logits[0, 1] = logits[2, 3] = 40
  batch = {'track': jnp.array([7, 7, 3, 4]), 'speaker': jnp.array([5, 5, 6, 6])}
  np.testing.assert_array_equal(disentangle.same_group_negatives(batch['track']),
                                [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
  assert disentangle.identity_metrics(logits)[1] == 0.5
  excluded = task.excluded(batch)  # Tracks and speakers (the default).
  np.testing.assert_array_equal(excluded, [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1],
                                           [0, 0, 1, 0]])
  loss, accuracy = disentangle.identity_metrics(logits, excluded)
  assert loss < 1e-11 and accuracy == 1
  np.testing.assert_allclose(disentangle.chance_loss(excluded, 4), np.log(3), rtol=1e-6)
  assert not disentangle.same_group_negatives(jnp.array([-1, -1])).any()  # Unknown ids.
  config = disentangle_config.get_config('tiny')
  config.disentangle.mask_same_speaker = False
  np.testing.assert_array_equal(disentangle.Disentangle(config).excluded(batch),
                                disentangle.same_group_negatives(batch['track']))


def test_batches_pair_each_voice_with_a_face_of_its_own_clip(task, batch):
  tracks = [heads.clip_identity(heads.PRESETS['heads_tiny'], 'train', i)[1]
            for i in (0, 10, 20, 30)]
  np.testing.assert_array_equal(batch['track'], tracks)
  video, face = pixels(batch['video']), pixels(batch['face'])
  preset = heads.PRESETS['heads_tiny']
  for i, clip_index in enumerate((0, 10, 20, 30)):
    clip = heads.render_clip(preset, 'train', clip_index)
    expected = ops.downsample_frames(clip['video'], task.config.frame_downsample)
    start, face_start = int(batch['start'][i]), int(batch['face_start'][i])
    np.testing.assert_array_equal(video[i], expected[start:start + len(video[i])])
    np.testing.assert_array_equal(face[i], expected[face_start:face_start + len(face[i])])
    np.testing.assert_array_equal(batch['viseme'][i],
                                  clip['viseme'][start:start + len(video[i])])


def test_first_face_conv_is_a_3d_conv_over_stacked_frames():
  video = jax.random.normal(key(0), (2, 7, 16, 16, 3))
  conv = twostream.FrameStackConv(4, (5, 7, 7), (2, 2))
  params = conv.init(key(1), video)
  reference = flax.linen.Conv(4, (5, 7, 7), (1, 2, 2), padding='SAME', use_bias=False)
  assert params['params']['kernel'].shape == (5, 7, 7, 3, 4)  # nn.Conv's, so either loads.
  np.testing.assert_allclose(conv.apply(params, video), reference.apply(params, video),
                             atol=1e-5)


def test_shapes_of_every_output(task, batch, params):
  b, t = batch['video'].shape[:2]
  k, d = batch['face'].shape[1], task.embedding

  @jax.jit
  def outputs(params, batch):
    embeddings, averages = task.embed(params, task.expand(batch))
    return (embeddings, averages, task.logits(params, embeddings),
            task.loss(params, batch, None), task.evaluate(params, batch))

  embeddings, averages, (content, identity), (loss, metrics), evaluated = outputs(params, batch)
  assert averages == {}  # Running averages come from the loss only.
  assert {n: e.shape for n, e in embeddings.items()} == {
      'audio_content': (b, t, d), 'audio_identity': (b, t, d),
      'video_content': (b, t, d), 'video_identity': (b, t, d),
      'face_content': (b, k, d), 'face_identity': (b, k, d)}
  assert all(e.dtype == jnp.float32 for e in embeddings.values())
  assert content.shape == (b, t, t) and identity.shape == (b, b)
  # The logit scale starts where random cosines (std 1 / sqrt(D)) give logits of the
  # trainer's spread (10 at 1024 dims): 2.5 at the default's 64, 1.25 at the tiny preset's 16.
  np.testing.assert_allclose([twostream.initial_scale(n) for n in (16, 64, 1024)],
                             [1.25, 2.5, 10])
  np.testing.assert_allclose(np.exp(params['content_similarity']['log_scale']), 1.25,
                             rtol=1e-6)
  assert float(params['identity_similarity']['bias']) == -5
  statistics = metrics.pop('statistics')
  names = {'loss', 'content_loss', 'content_accuracy', 'identity_loss', 'identity_accuracy',
           'identity_chance', 'identity_progress', 'adversary_loss', 'confusion_loss',
           'confusion_gate',
           'content_from_identity_loss', 'content_from_identity_accuracy',
           'identity_from_content_loss', 'identity_from_content_accuracy'}
  assert set(metrics) == set(evaluated) == names
  assert all(np.isfinite(v) and np.shape(v) == () for v in metrics.values())
  # The heads' new running averages, under the parameters' own names (the audio stream's
  # and the face stream's, of its `video` window).
  for stream in ('speaker_encoder', 'face_encoder'):
    for head in ('content_head', 'identity_head'):
      assert set(statistics[stream]['heads'][head]['out_norm']) == {'mean', 'var'}
      assert statistics[stream]['heads'][head]['out_norm']['mean'].shape == (d,)
  cfg = task.config
  np.testing.assert_allclose(loss, cfg.content_weight * metrics['content_loss']
                             + cfg.identity_weight * metrics['identity_loss']
                             + cfg.adversary_weight * metrics['adversary_loss']
                             + cfg.confusion_weight * metrics['confusion_gate']
                             * metrics['confusion_loss'], rtol=1e-5)
  assert metrics['confusion_loss'] >= 0 and 0 <= metrics['confusion_gate'] <= 1
  # The running averages are the init batch's statistics (of its `video` window; the
  # loss normalises the `face` window by its own): what reads only `mel` and `video`
  # evaluates as the loss.
  for name in ('content_loss', 'content_accuracy', 'content_from_identity_loss'):
    np.testing.assert_allclose(evaluated[name], metrics[name], rtol=1e-4, atol=1e-5)
  assert task.visualize(params, batch) is None
  # The exported encoders: the audio stream on `mel`, the face stream on `video`.
  assert {n: k for n, (_, k) in task.encoders().items()} == {
      'speaker_encoder': 'mel', 'face_encoder': 'video'}
  assert task.encoders()['face_encoder'][0] is task.face
  # The audio trunk keeps 4 mel frames a step.
  trunk = twostream.AudioTrunk((4, 4, 4, 4, 4, 8))
  shape = jax.eval_shape(trunk.init_with_output, key(0), jnp.zeros((2, 4 * 13, 40)))[0].shape
  assert shape == (2, 13, 8)


def _moved(tree):
  return any(bool(jnp.any(x != 0)) for x in jax.tree.leaves(tree))


def test_face_stream_reads_both_windows_as_if_alone_and_normalises_by_the_video_steps(
    task, batch, params):
  expanded = task.expand(batch)
  face = lambda frames, **kw: task.face.apply({'params': params['face_encoder']}, frames, **kw)
  stacked = jax.jit(lambda p, b, train: task.embed(p, b, train), static_argnums=2)
  evaluated, _ = stacked(params, expanded, False)
  (video_identity, video), (face_identity, face_aux) = face(expanded['video']), face(
      expanded['face'])
  for got, want in ((evaluated['video_identity'], video_identity),
                    (evaluated['video_content'], video['content']),
                    (evaluated['face_identity'], face_identity),
                    (evaluated['face_content'], face_aux['content'])):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  trained, averages = stacked(params, expanded, True)
  (video_identity, _), state = face(expanded['video'], train=True,
                                    mutable=[twostream.STATISTICS])
  np.testing.assert_allclose(trained['video_identity'], video_identity, rtol=1e-4, atol=1e-4)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5),
               averages['face_encoder'], state[twostream.STATISTICS])


def mean_cosine(x):
  """The mean cosine of the rows of x [N, D] with one another."""
  x = x / np.linalg.norm(x, axis=-1, keepdims=True)
  return float((np.sum(x @ x.T) - len(x)) / (len(x) * (len(x) - 1)))


def test_identity_embeddings_of_other_clips_start_spread(task, batch, params):
  """Initialised on `batch` (4 clips), the identity embeddings of 8 other clips of 4
  speakers point many ways: per-example norms alone gave a mean cosine of 0.97. Averaged
  over 4 initialisations: the running statistics come from 4 clips, so one
  initialisation's mean cosine varies (0.00-0.36 for the voices)."""
  rng, preset = np.random.default_rng(1), heads.PRESETS['heads_tiny']
  others = stack([task.preprocess(heads.render_clip(preset, 'train', i), rng)
                  for i in (2, 7, 13, 16, 24, 28, 33, 37)])
  embed = jax.jit(lambda p, b: task.embed(p, task.expand(b))[0])
  runs = [embed(params if seed == 0 else jax.jit(task.init)(key(seed), batch), others)
          for seed in range(4)]
  cosines = [[mean_cosine(np.asarray(run['audio_identity']).mean(1)),
              mean_cosine(np.asarray(run['face_identity'])[:, 2])] for run in runs]
  assert (np.abs(np.mean(cosines, 0)) < 0.3).all(), cosines
  embeddings = runs[0]
  for name in ('audio_identity', 'video_content'):  # Centred over clips and steps.
    steps = np.asarray(embeddings[name]).reshape(-1, task.embedding)
    assert np.abs(steps.mean(0)).mean() < 0.5 * steps.std(0).mean(), name


def test_running_norm_trains_by_batch_statistics_and_sets_running_averages():
  norm = twostream.RunningNorm(momentum=0.75)
  x = jax.random.normal(key(0), (6, 5, 3)) * jnp.array([1.0, 2.0, 3.0]) + jnp.array([4.0, 0, -1])
  params = norm.init(key(1), x)['params']
  np.testing.assert_allclose(params['mean'], x.mean((0, 1)), rtol=1e-5)  # From the data.
  np.testing.assert_allclose(params['var'], x.var((0, 1)), rtol=1e-5)
  y = 0.5 * x + 3.0  # Another batch.
  out, state = norm.apply({'params': params}, y, train=True, mutable=[twostream.STATISTICS])
  np.testing.assert_allclose(out.mean((0, 1)), 0, atol=1e-5)  # By y's own statistics.
  np.testing.assert_allclose(out.std((0, 1)), 1, atol=1e-3)
  averages = state[twostream.STATISTICS]
  np.testing.assert_allclose(averages['mean'], 0.75 * x.mean((0, 1)) + 0.25 * y.mean((0, 1)),
                             rtol=1e-5)
  np.testing.assert_allclose(averages['var'], 0.75 * x.var((0, 1)) + 0.25 * y.var((0, 1)),
                             rtol=1e-5)
  # Without train, by the running averages, which no gradient reaches.
  evaluated = norm.apply({'params': params}, y)
  np.testing.assert_allclose(evaluated, (y - params['mean']) / np.sqrt(params['var'] + 1e-5),
                             rtol=1e-4, atol=1e-5)
  grads = jax.grad(lambda p: jnp.sum(norm.apply({'params': p}, y) ** 3))(params)
  assert not _moved({'mean': grads['mean'], 'var': grads['var']}) and _moved(grads['scale'])


def test_set_parameters_replaces_the_named_leaves_only():
  params = {'a': {'mean': jnp.zeros(2), 'kernel': jnp.ones(2)}, 'b': jnp.ones(())}
  new = train.set_parameters(params, {'a': {'mean': jnp.full(2, 3.0)}})
  np.testing.assert_array_equal(new['a']['mean'], [3, 3])
  assert new['a']['kernel'] is params['a']['kernel'] and new['b'] is params['b']
  with pytest.raises(KeyError, match='name no parameters'):
    train.set_parameters(params, {'a': {'var': jnp.zeros(2)}})


def test_confusion_trains_the_streams_and_the_adversary_term_only_the_adversaries(
    task, batch, params):
  def terms(params):
    embeddings, _ = task.embed(params, task.expand(batch))
    adversary, confused, _ = task.factor_terms(params, embeddings, batch)
    return {'adversary': adversary, 'confusion': confused}

  grads = jax.jit(jax.jacrev(terms))(params)  # One gradient per term.
  for name in ('content_adversary', 'identity_adversary'):
    assert not _moved(grads['confusion'][name]), name
    assert _moved(grads['adversary'][name]), name
  for stream in ('speaker_encoder', 'face_encoder'):
    confusion = grads['confusion'][stream]
    assert _moved(confusion['trunk']), stream
    assert _moved(confusion['heads']['content_head']), stream
    assert _moved(confusion['heads']['identity_head']), stream
    assert not _moved(grads['adversary'][stream]), stream


def test_prior_matched_confusion_pushes_no_shared_offset():
  """A skewed label (one class 80%): a classifier that predicts its prior from embeddings
  [N, D]. Uniform targets push every embedding one way (their gradients add up); the
  prior target's gradients cancel over the positions, and vanish where nothing is read."""
  rng = np.random.default_rng(0)
  weights, bias = rng.normal(size=(8, 4)), np.array([3.0, 0, 0, 0])
  embeddings = jnp.asarray(0.3 * rng.normal(size=(64, 8)), jnp.float32)
  valid = jnp.ones(64, bool)
  logits = lambda e: e @ weights + bias

  def grad_sum(target):
    loss = lambda e: disentangle.confusion(logits(e), target(logits(e)), valid)
    return np.abs(np.asarray(jax.grad(loss)(embeddings)).sum(0)).max()

  uniform = grad_sum(lambda l: jnp.full(l.shape, 0.25))
  prior = grad_sum(lambda l: disentangle.prior_target(l, valid))
  assert uniform > 0.1 and prior < 1e-5 * uniform
  constant = jnp.zeros((64, 8))  # Embeddings that carry nothing meet the prior at once.
  np.testing.assert_allclose(
      disentangle.confusion(logits(constant), disentangle.prior_target(logits(constant), valid)),
      0, atol=1e-6)
  # Matching: uniform over each row's candidates, excluded ones left out.
  excluded = jnp.array([[False, True, False], [False, False, False]])
  np.testing.assert_allclose(disentangle.uniform_target(excluded), [[0.5, 0, 0.5], [1 / 3] * 3])


def test_confusion_gate_waits_for_identity_to_learn(task, batch, params):
  gate = lambda progress: float(disentangle.confusion_gate(jnp.float32(progress), 0.1, 0.2))
  assert gate(-0.5) == gate(0.1) == 0 and gate(0.3) == gate(2.0) == 1
  np.testing.assert_allclose(gate(0.2), 0.5, rtol=1e-6)
  assert float(disentangle.confusion_gate(jnp.float32(0.1), 0.1, 0)) == 1
  # The loss ramps by the running average of the identity loss below chance, and hands
  # on its next value.
  loss = jax.jit(task.loss)
  for progress, expected in ((0.0, 0.0), (0.2, 0.5), (0.5, 1.0)):
    _, metrics = loss(dict(params, identity_progress=jnp.float32(progress)), batch, None)
    assert float(metrics['confusion_gate']) == pytest.approx(expected, abs=1e-6)
    batch_progress = metrics['identity_chance'] - metrics['identity_loss']
    np.testing.assert_allclose(metrics['statistics']['identity_progress'],
                               0.9 * progress + 0.1 * batch_progress, rtol=1e-5)


def test_unknown_or_missing_confusion_targets_are_errors():
  config = disentangle_config.get_config('tiny')
  config.disentangle.content_target = 'word'
  with pytest.raises(ValueError, match="unknown disentangle.content_target 'word'"):
    disentangle.Disentangle(config)
  config = disentangle_config.get_config('tiny')
  config.data.update(name='voxceleb2', config='')
  disentangle.Disentangle(config)  # The default targets read no labels.
  config.disentangle.content_target = 'viseme'
  with pytest.raises(ValueError, match="dataset voxceleb2.* has no feature 'viseme'"):
    disentangle.Disentangle(config)


@pytest.fixture(scope='module')
def tiny_clips():
  """Every heads_tiny train clip, rendered."""
  preset = heads.PRESETS['heads_tiny']
  return [heads.render_clip(preset, 'train', i) for i in range(heads.split_sizes(preset)['train'])]


def train_tiny(variant, clips, steps, params=None):
  """The tiny preset's `variant` trained `steps` steps (warmup 5; the confusion loss, if
  any, at full weight throughout) from `params` or an init, on random batches of
  `clips`: ({metric: [steps] values}, initial params, final params)."""
  config = disentangle_config.get_config(f'tiny,variant={variant}')
  config.optimizer.warmup_steps = 5
  config.disentangle.confusion_start = -np.inf
  task = disentangle.Disentangle(config)
  rng = np.random.default_rng(0)
  draw = lambda: stack([task.preprocess(clips[i], rng)
                        for i in rng.choice(len(clips), config.batch_size, replace=False)])
  tx, _ = train.make_optimizer(config.optimizer, steps)
  state = jax.jit(functools.partial(train.init_state, task=task, tx=tx))(key(0), draw())
  if params is not None:
    state = state.replace(params=params, opt_state=tx.init(params))
  step = jax.jit(functools.partial(train.train_step, task=task, tx=tx), donate_argnums=0)
  initial, rows = jax.device_get(state.params), []
  for _ in range(steps):
    state, metrics = step(state, draw(), key(1))
    rows.append(metrics)
  return ({k: np.array([float(r[k]) for r in rows]) for k in rows[0]}, initial,
          jax.device_get(state.params))


def evaluate_tiny(variant, clips, params):
  """`evaluate` of the tiny preset's `variant` on all of `clips` in one batch."""
  task = disentangle.Disentangle(disentangle_config.get_config(f'tiny,variant={variant}'))
  rng = np.random.default_rng(5)
  return jax.jit(task.evaluate)(params, stack([task.preprocess(c, rng) for c in clips]))


@pytest.fixture(scope='module')
def tiny_both(tiny_clips):
  """`train_tiny` of `both`, 60 steps."""
  return train_tiny('both', tiny_clips, 60)


def test_identity_loss_falls_within_a_few_dozen_steps(tiny_both, tiny_clips):
  """In 60 steps of batch 8 the identity loss falls below the loss of no information
  (`identity_chance`, with same-speaker clips left out of each row; the first steps sit
  at it); evaluated on all 40 train clips (4 speakers) it ends below that loss too, which
  the initialised model is above."""
  metrics, initial, final = tiny_both
  assert 'statistics' not in metrics  # The trainer set them: the running averages moved.
  norm = lambda p: p['speaker_encoder']['heads']['identity_head']['out_norm']
  assert np.abs(norm(final)['mean'] - norm(initial)['mean']).max() > 1e-3
  excess = metrics['identity_loss'] - metrics['identity_chance']  # Each batch's own chance.
  assert excess[-20:].mean() < min(0, excess[:5].mean()) - 0.1
  before, after = (evaluate_tiny('both', tiny_clips, p) for p in (initial, final))
  assert before['identity_chance'] == after['identity_chance'] == np.float32(np.log(31))
  assert after['identity_loss'] < after['identity_chance'] < before['identity_loss']


def test_confusion_variant_keeps_identity_while_it_confuses(tiny_both, tiny_clips):
  """From `both`'s 60 steps, 20 more of `disentangle` with the confusion loss at full
  weight: the adversaries are confused more, and the identity loss keeps falling
  (evaluated, it stays below the initialised model's)."""
  both, initial, learnt = tiny_both
  metrics, _, final = train_tiny('disentangle', tiny_clips, 20, params=learnt)
  assert (metrics['confusion_gate'] == 1).all()
  confusion, loss = metrics['confusion_loss'], metrics['identity_loss']
  assert confusion[-5:].mean() < confusion[:5].mean()
  assert loss[-10:].mean() < both['identity_loss'][-10:].mean()
  evaluated = evaluate_tiny('disentangle', tiny_clips, final)
  assert evaluated['identity_loss'] < evaluate_tiny('both', tiny_clips, initial)['identity_loss']


@pytest.fixture(scope='module')
def tiny_run(data_dir, tmp_path_factory):
  """The tiny preset trained 2 steps: (config, workdir, state)."""
  config = disentangle_config.get_config('tiny')
  config.update(TINY_RUN)
  config.data.data_dir = data_dir
  workdir = tmp_path_factory.mktemp('disentangle_run')
  state = train.train_and_evaluate(config, str(workdir))
  return config, workdir, state


def test_tiny_run_trains_with_finite_losses_and_exports_the_evaluation_embeddings(
    tiny_run, task, batch, tmp_path):
  config, workdir, state = tiny_run
  assert int(state.step) == 2
  with open(workdir / 'metrics.jsonl') as f:
    rows = [json.loads(line) for line in f]
  for name in ('loss', 'content_loss', 'identity_loss', 'confusion_loss', 'adversary_loss'):
    values = [r[name] for r in rows if name in r]
    assert len(values) == 2 and np.isfinite(values).all(), name
  assert [r['val_identity_accuracy'] for r in rows if 'val_identity_accuracy' in r]
  out = tmp_path / 'export'
  assert export.export_encoders(str(workdir), str(out)) == ['speaker_encoder', 'face_encoder']
  params = jax.device_get(state.params)
  embeddings, _ = jax.jit(lambda p, b: task.embed(p, task.expand(b)))(params, batch)
  expanded = task.expand(batch)
  for name, key_in, outputs in (('speaker_encoder', 'mel', ('audio_identity', 'audio_content')),
                                ('face_encoder', 'video', ('video_identity', 'video_content'))):
    apply, loaded = export.load_encoder(str(out), name)
    jax.tree.map(np.testing.assert_array_equal, loaded, params[name])
    identity, aux = apply(loaded, expanded[key_in])  # The embeddings evaluation reads.
    # The same function compiled into another program: float32 rounding differs (up
    # to 1.4e-5 on embeddings of unit scale).
    np.testing.assert_allclose(identity, embeddings[outputs[0]], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(aux['content'], embeddings[outputs[1]], rtol=1e-4, atol=1e-4)
  clip = heads.render_clip(heads.PRESETS['heads_tiny'], 'test', 0)
  mel = disentangle.log_mel_features(clip['audio'])[None]  # A whole test utterance.
  identity, aux = export.load_encoder(str(out), 'speaker_encoder')[0](
      params['speaker_encoder'], mel)
  assert identity.shape == (1, NUM_FRAMES, config.model.embedding)
  assert np.isfinite(np.asarray(identity)).all() and aux['content'].shape == identity.shape
