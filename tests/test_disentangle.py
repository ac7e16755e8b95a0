"""Tests for the disentangle task (Nagrani et al. 2020): two streams, content and identity
matching, the confusion losses, the presets and a tiny run end to end."""

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
  assert task.num_tracks == preset.num_train_speakers * preset.sessions_per_speaker
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
                         'identity_similarity', 'classifiers'}
  loss, metrics = jax.eval_shape(task.loss, params, shapes, None)
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
  sharp = dict(params, content_similarity={'scale': jnp.float32(50), 'bias': jnp.float32(-5)})
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


def test_identity_matches_each_voice_to_its_own_face_and_drops_same_track_clips(task, params):
  b, d = 4, task.embedding
  identities = jnp.eye(b, d)
  sharp = dict(params, identity_similarity={'scale': jnp.float32(30), 'bias': jnp.float32(0)})
  embeddings = {'audio_identity': jnp.repeat(identities[:, None], 6, axis=1),
                'face_identity': jnp.repeat(identities[:, None], 5, axis=1),
                'audio_content': jnp.zeros((b, 6, d)), 'video_content': jnp.zeros((b, 6, d))}
  _, logits = task.logits(sharp, embeddings)
  np.testing.assert_allclose(logits, 30 * np.eye(b), atol=1e-5)
  loss, accuracy = disentangle.identity_metrics(logits)
  assert loss < 1e-11 and accuracy == 1
  # Clips 0 and 1 from one track, and clip 1's face scoring higher for voice 0: without the
  # mask that is a (false) negative beating the positive; with it, it leaves the softmax.
  logits = np.asarray(logits).copy()
  logits[0, 1] = 40
  track = jnp.array([7, 7, 3, -1])
  np.testing.assert_array_equal(disentangle.same_track_negatives(track),
                                [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
  assert disentangle.identity_metrics(logits)[1] == 0.75
  loss, accuracy = disentangle.identity_metrics(logits, track)
  assert loss < 1e-11 and accuracy == 1
  assert not disentangle.same_track_negatives(jnp.array([-1, -1])).any()  # Unknown tracks.


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
    embeddings = task.embed(params, task.expand(batch))
    classified = task.classifiers.apply(
        {'params': params['classifiers']}, embeddings['audio_identity'],
        embeddings['face_identity'], embeddings['audio_content'], embeddings['video_content'])
    return (embeddings, task.logits(params, embeddings), classified,
            task.loss(params, batch, None), task.evaluate(params, batch))

  embeddings, (content, identity), classified, (loss, metrics), evaluated = outputs(params, batch)
  assert {n: e.shape for n, e in embeddings.items()} == {
      'audio_content': (b, t, d), 'audio_identity': (b, t, d),
      'video_content': (b, t, d), 'face_identity': (b, k, d)}
  assert all(e.dtype == jnp.float32 for e in embeddings.values())
  assert content.shape == (b, t, t) and identity.shape == (b, b)
  assert float(params['content_similarity']['scale']) == 10
  assert float(params['identity_similarity']['bias']) == -5
  n_v, n_t = heads.NUM_VISEMES, task.num_tracks
  assert {n: x.shape for n, x in classified.items()} == {
      'audio_identity': (b, t, n_v), 'face_identity': (b, k, n_v),
      'audio_content': (b, t, n_t), 'video_content': (b, t, n_t)}
  assert set(metrics) == {
      'loss', 'content_loss', 'content_accuracy', 'identity_loss', 'identity_accuracy',
      'classifier_loss', 'confusion_loss', 'viseme_from_identity_loss',
      'viseme_from_identity_accuracy', 'track_from_content_loss', 'track_from_content_accuracy'}
  assert all(np.isfinite(v) and np.shape(v) == () for v in metrics.values())
  cfg = task.config
  np.testing.assert_allclose(loss, cfg.content_weight * metrics['content_loss']
                             + cfg.identity_weight * metrics['identity_loss']
                             + cfg.classifier_weight * metrics['classifier_loss']
                             + cfg.confusion_weight * metrics['confusion_loss'], rtol=1e-5)
  assert metrics['confusion_loss'] >= 0
  for name, value in metrics.items():
    np.testing.assert_allclose(evaluated[name], value, rtol=1e-5)
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


def test_confusion_trains_the_streams_and_the_classifier_term_only_the_classifiers(
    task, batch, params):
  def terms(params):
    classifier, confused, _ = task.factor_terms(params, task.embed(params, task.expand(batch)),
                                                batch)
    return {'classifier': classifier, 'confusion': confused}

  grads = jax.jit(jax.jacrev(terms))(params)  # One gradient per term.
  assert not _moved(grads['confusion']['classifiers'])
  for stream in ('speaker_encoder', 'face_encoder'):
    confusion = grads['confusion'][stream]
    assert _moved(confusion['trunk']), stream
    assert _moved(confusion['heads']['content_head']), stream
    assert _moved(confusion['heads']['identity_head']), stream
    assert not _moved(grads['classifier'][stream]), stream
  for name in ('audio_identity_to_content', 'face_identity_to_content',
               'audio_content_to_track', 'video_content_to_track'):
    assert _moved(grads['classifier']['classifiers'][name]), name


@pytest.fixture(scope='module')
def tiny_run(data_dir, tmp_path_factory):
  """The tiny preset trained 2 steps: (config, workdir, state)."""
  config = disentangle_config.get_config('tiny')
  config.update(TINY_RUN)
  config.data.data_dir = data_dir
  workdir = tmp_path_factory.mktemp('disentangle_run')
  state = train.train_and_evaluate(config, str(workdir))
  return config, workdir, state


def test_tiny_run_trains_with_finite_losses_and_exports_the_speaker_encoder(
    tiny_run, tmp_path):
  config, workdir, state = tiny_run
  assert int(state.step) == 2
  with open(workdir / 'metrics.jsonl') as f:
    rows = [json.loads(line) for line in f]
  for name in ('loss', 'content_loss', 'identity_loss', 'confusion_loss', 'classifier_loss'):
    values = [r[name] for r in rows if name in r]
    assert len(values) == 2 and np.isfinite(values).all(), name
  assert [r['val_identity_accuracy'] for r in rows if 'val_identity_accuracy' in r]
  out = tmp_path / 'export'
  assert export.export_encoders(str(workdir), str(out)) == ['speaker_encoder', 'face_encoder']
  apply, loaded = export.load_encoder(str(out), 'speaker_encoder')
  jax.tree.map(np.testing.assert_array_equal, loaded,
               jax.device_get(state.params['speaker_encoder']))
  clip = heads.render_clip(heads.PRESETS['heads_tiny'], 'test', 0)
  mel = disentangle.log_mel_features(clip['audio'])[None]  # A whole test utterance.
  identity, aux = apply(loaded, mel)
  assert identity.shape == (1, NUM_FRAMES, config.model.embedding)
  assert np.isfinite(np.asarray(identity)).all() and aux['content'].shape == identity.shape
