"""Tests for the on/off-screen separation task: STFT, mixtures, losses, metrics, sync init."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from avjax import checkpoint
from avjax import export
from avjax.data import ops
from avjax.data.synth import heads
from avjax.data.synth import scenes
from avjax.evaluate import bss
from avjax.models import fusion
from avjax.tasks import separation
from configs import separation as separation_config
from configs import sync as sync_config

SPF = 640  # Audio samples per video frame: 16 kHz at 25 fps.
STFT = dict(frame_length=1024, hop_length=256, n_fft=1024)  # 64 ms / 16 ms at 16 kHz.
DB_RANGE = (-100.0, 80.0)


def key(seed):
  """A PRNG key; 'rbg' compiles far faster than threefry on a CPU."""
  return jax.random.key(seed, impl='rbg')


def tones(shape, seed=0):
  """Sums of eight random tones between 80 Hz and 6 kHz (nothing near Nyquist), [..., S]."""
  rng = np.random.default_rng(seed)
  t = np.arange(shape[-1]) / ops.SAMPLE_RATE
  lead = shape[:-1] + (8, 1)
  waves = rng.uniform(0.05, 0.3, lead) * np.sin(
      2 * np.pi * rng.uniform(80, 6000, lead) * t + rng.uniform(0, 2 * np.pi, lead))
  return waves.sum(-2).astype(np.float32)


def tiny_config(**separation_overrides):
  config = separation_config.get_config('tiny')
  config.separation.update(separation_overrides)
  return config


def make_batch(task, num_examples=4):
  rng, preset = np.random.default_rng(0), heads.PRESETS['heads_tiny']
  examples = [task.preprocess(heads.render_clip(preset, 'train', i), rng)
              for i in range(num_examples)]
  return jax.tree.map(lambda *x: np.stack(x), *examples)


@pytest.fixture(scope='module')
def task():
  return separation.Separation(tiny_config())


@pytest.fixture(scope='module')
def batch(task):
  return make_batch(task)


@pytest.fixture(scope='module')
def params(task, batch):
  return jax.jit(task.init)(key(0), batch)


@pytest.fixture(scope='module')
def evaluate(task):
  return jax.jit(task.evaluate)


@pytest.fixture(scope='module')
def pit(batch):
  """The audio-only baseline: its task, batch (no video) and parameters."""
  task = separation.Separation(tiny_config(mode='pit'))
  pit_batch = {'audio': batch['audio']}
  return task, pit_batch, jax.jit(task.init)(key(0), pit_batch)


@pytest.fixture(scope='module')
def adam_step(pit):
  """Adam's init and a jitted step of the baseline on its fixed batch:
  (params, opt_state) -> (params, opt_state, loss)."""
  task, batch, _ = pit
  optimizer = optax.adam(1e-2)

  @jax.jit
  def step(params, opt_state):
    (loss, _), grads = jax.value_and_grad(task.loss, has_aux=True)(params, batch, None)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return optimizer.init, step


@pytest.mark.parametrize('arg, world, samples', [
    (None, heads, 80 * 256), ('tiny', heads, 40 * 256), ('paper', scenes, 128 * 256)])
def test_presets_read_their_clips_and_fit_the_unet(arg, world, samples):
  config = separation_config.get_config(arg)
  assert config.model.sync == sync_config.get_config(arg).model
  task = separation.Separation(config)
  assert task.num_samples == samples
  clip = world.render_clip(world.PRESETS[config.data.config], 'train', 0)
  out = task.preprocess({k: clip[k] for k in task.features}, np.random.default_rng(0))
  frames = -(-config.separation.window_frames // config.separation.frame_stride)
  size = clip['video'].shape[1] // config.separation.frame_downsample
  sync_block = sync_config.get_config(arg).sync
  assert (config.separation.frame_stride, config.separation.frame_downsample) == (
      sync_block.frame_stride, sync_block.frame_downsample)
  assert out['audio'].shape == (samples,) and out['video'].shape == (frames, size, size, 3)
  assert (out['audio'].dtype, out['video'].dtype) == (np.int16, np.uint8)
  batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct((2,) + x.shape, x.dtype), out)
  params = jax.eval_shape(task.init, key(0), batch)  # The u-net's size checks pass.
  assert set(params) == {'unet', 'sync_net'}
  estimates, references, mixture = jax.eval_shape(task.separate, params, batch)
  assert estimates.shape == references.shape == (2, 2, samples) and mixture.shape == (2, samples)


def test_preprocess_takes_a_window_under_the_frames_rms_normalised(task):
  video = np.zeros((25, 32, 32, 3), np.uint8)
  video[..., 0] = 5 * np.arange(25)[:, None, None]  # Frame t's red channel is 5 t.
  audio = ops.to_int16(tones((25 * SPF,)))
  clip, rng = {'video': video, 'audio': audio}, np.random.default_rng(0)
  starts, expand = set(), jax.jit(task.expand)
  for _ in range(10):
    out = task.preprocess(clip, rng)
    assert out['audio'].dtype == np.int16 and out['video'].dtype == np.uint8
    shown = out['video'][:, 0, 0, 0].astype(int) // 5
    start = shown[0]
    stride = task.config.frame_stride
    np.testing.assert_array_equal(shown, start + np.arange(0, 16, stride))  # Of the 16 frames.
    np.testing.assert_array_equal(out['audio'], audio[start * SPF:start * SPF + task.num_samples])
    expanded = expand(jax.tree.map(lambda x: x[None], out))  # RMS-normalised on the device.
    window = ops.to_float(out['audio'])
    np.testing.assert_allclose(expanded['audio'][0], window * (0.1 / ops.rms(window)), rtol=1e-5)
    assert ops.rms(expanded['audio'][0]) == pytest.approx(0.1, rel=1e-5)
    starts.add(start)
  assert len(starts) > 3 and max(starts) <= 25 - 16
  pit = separation.Separation(tiny_config(mode='pit'))
  assert set(pit.preprocess(clip, rng)) == {'audio'}  # The baseline sees no video.


def float_preprocess(task, example, rng):
  """The float example the separation task's preprocess gave before compact batches
  (numpy, the same draws): the reference that `expand` of a compact batch must give."""
  config = task.config
  start = int(rng.integers(0, max(len(example['video']) - config.window_frames, 0) + 1))
  samples, clip = ops.time_crop(example['audio'], example['video'], start, config.window_frames)
  audio = samples[:task.num_samples].astype(np.float32) / 32768.0
  clip = clip[::config.frame_stride]
  if config.frame_downsample > 1:
    clip = ops.downsample_frames(clip, config.frame_downsample)
  return {'audio': (audio * (config.rms / max(ops.rms(audio), 1e-8))).astype(np.float32),
          'video': clip.astype(np.float32) / 127.5 - 1.0}


def test_expand_of_a_compact_batch_gives_the_float_batch_and_its_loss(task, batch, params,
                                                                      evaluate):
  """The compact batch (uint8 frames, int16 samples) expanded on the device is the float
  one preprocess gave before, from the same draws, and so is the loss."""
  rng, preset = np.random.default_rng(0), heads.PRESETS['heads_tiny']  # As `make_batch`'s.
  reference = jax.tree.map(lambda *x: np.stack(x), *[
      float_preprocess(task, heads.render_clip(preset, 'train', i), rng) for i in range(4)])
  assert batch['video'].dtype == np.uint8 and batch['audio'].dtype == np.int16
  expanded = jax.jit(task.expand)(batch)
  assert set(expanded) == set(reference)
  np.testing.assert_allclose(expanded['video'], reference['video'], rtol=0, atol=1e-6)
  np.testing.assert_allclose(expanded['audio'], reference['audio'], rtol=1e-5, atol=1e-7)
  float_loss = jax.jit(lambda p, r: task._heads_and_loss(p, r)[0].mean())(params, reference)
  # The inputs agree to 1e-6; the sync network's frame differences carry that to 1e-4.
  np.testing.assert_allclose(evaluate(params, batch)['loss'], float_loss, rtol=1e-4)


def test_stft_matches_numpy_magnitudes_and_round_trips():
  x = tones((2, 40 * 256))
  spectrum = separation.stft(x, **STFT)
  assert spectrum.shape == (2, 40, 512)
  numpy_magnitude = ops.stft_magnitude(x[1], 1024, 256, 1024)[:, :512]
  np.testing.assert_allclose(np.abs(spectrum[1]), numpy_magnitude, rtol=1e-3, atol=1e-2)
  assert bss.si_sdr(separation.istft(spectrum, **STFT), x).min() > 60
  # Through the normalised features the u-net sees and predicts.
  features = separation.to_features(spectrum, DB_RANGE)
  back = separation.istft(separation.from_features(features, DB_RANGE), **STFT)
  assert bss.si_sdr(back, x).min() > 40
  wide = dict(STFT, n_fft=2048)  # The paper preset's 1024 bins.
  assert bss.si_sdr(separation.istft(separation.stft(x, **wide), **wide), x).min() > 60
  with pytest.raises(ValueError, match='not a multiple of hop_length'):
    separation.stft(x[:, :1000], **STFT)
  with pytest.raises(ValueError, match='at most n_fft'):
    separation.stft(x, frame_length=1024, hop_length=256, n_fft=512)


def test_mixture_is_the_clip_plus_another_clip():
  audio = tones((3, 1024), seed=1)
  sources, mixture = separation.mix(audio)
  np.testing.assert_array_equal(sources[:, 0], audio)
  np.testing.assert_array_equal(sources[:, 1], audio[[2, 0, 1]])
  np.testing.assert_array_equal(mixture, audio + audio[[2, 0, 1]])


def test_targets_are_normalised_into_the_tanh_range():
  spectrum = jnp.array([0.0, 1e-5, 1.0, 1e4, 1e6]) * jnp.exp(1j * jnp.array([0, 1, -2, 3, -3.1]))
  features = separation.to_features(spectrum, DB_RANGE)
  # 0 dB -> (0 + 100) / 180 * 2 - 1; -100 dB and below -> -1; 80 dB and above -> 1.
  np.testing.assert_allclose(features[:, 0], [-1, -1, 200 / 180 - 1, 1, 1], atol=1e-6)
  np.testing.assert_allclose(features[1:, 1], np.array([1, -2, 3, -3.1]) / np.pi, atol=1e-6)
  targets = separation.to_features(separation.stft(100 * tones((2, 4096)), **STFT), DB_RANGE)
  assert float(jnp.abs(targets).max()) <= 1


def test_pit_loss_ignores_the_order_of_the_heads_and_onoff_loss_does_not():
  l1 = lambda p, t: separation.spectrogram_l1(p, t, 0.01)
  rng = np.random.default_rng(0)
  target = rng.uniform(-1, 1, (3, 2, 4, 8, 2)).astype(np.float32)
  pred = rng.uniform(-1, 1, target.shape).astype(np.float32)
  for p in (pred, target):
    np.testing.assert_allclose(separation.pit(l1, p[:, ::-1], target)[0],
                               separation.pit(l1, p, target)[0], rtol=1e-6)
  loss, swapped = separation.pit(l1, target[:, ::-1], target)
  np.testing.assert_allclose(loss, 0)
  assert swapped.all() and not separation.pit(l1, target, target)[1].any()
  assert (separation.spectrogram_l1(target[:, ::-1], target, 0.01) > 0.1).all()
  expected = (np.abs(pred - target)[..., 0].mean((2, 3))
              + 0.01 * np.abs(pred - target)[..., 1].mean((2, 3))).sum(1)
  np.testing.assert_allclose(separation.spectrogram_l1(pred, target, 0.01), expected, rtol=1e-5)


def swap_heads(params):
  unet = dict(params['unet'], head0=params['unet']['head1'], head1=params['unet']['head0'])
  return dict(params, unet=unet)


def test_swapping_the_heads_changes_the_onoff_loss_only(batch, params, evaluate, pit, adam_step):
  _, _, pit_params = pit
  assert set(pit_params) == {'unet'} and set(params) == {'unet', 'sync_net'}
  init, step = adam_step
  pit_loss = lambda p: float(step(p, init(p))[2])
  np.testing.assert_allclose(pit_loss(swap_heads(pit_params)), pit_loss(pit_params), rtol=1e-6)
  onoff_loss = lambda p: float(evaluate(p, batch)['loss'])
  assert abs(onoff_loss(swap_heads(params)) - onoff_loss(params)) > 1e-5


def test_si_sdr_is_that_of_bss():
  rng = np.random.default_rng(0)
  reference = rng.normal(size=(3, 4000))
  estimate = 0.5 * reference + rng.normal(size=(3, 4000)) * [[0.1], [1], [3]] + 0.2
  np.testing.assert_allclose(separation.si_sdr(estimate.astype(np.float32),
                                               reference.astype(np.float32)),
                             bss.si_sdr(estimate, reference), rtol=1e-4)


def test_evaluate_scores_the_mixture_as_bss_does(task, batch, params, evaluate):
  metrics = evaluate(params, batch)
  assert set(metrics) == {'loss', 'si_sdr', 'mixture_si_sdr', 'si_sdr_improvement'}
  audio = np.asarray(task.expand(batch)['audio'], np.float64)
  mixture = audio + np.roll(audio, 1, axis=0)
  np.testing.assert_allclose(metrics['mixture_si_sdr'], bss.si_sdr(mixture, audio).mean(),
                             rtol=1e-4)
  estimates = np.asarray(jax.jit(task.separate)(params, batch)[0], np.float64)
  improvement = bss.si_sdr(estimates[:, 0], audio) - bss.si_sdr(mixture, audio)
  np.testing.assert_allclose(metrics['si_sdr_improvement'], improvement.mean(),
                             rtol=1e-3, atol=1e-3)
  assert np.isfinite(metrics['si_sdr']) and metrics['loss'] > 0


def test_mask_heads_scale_the_mixture_and_keep_its_phase(task, batch, params):
  """'mask' (the default): each estimate is (h + 1) / 2 times the mixture's spectrum, h the
  head's first channel as 'spectrogram' reads it; with Owens's loss, the magnitude L1
  alone for masks, and the phase L1 added for 'spectrogram' outputs."""
  spectrogram = separation.Separation(tiny_config(output='spectrogram', loss='spectrogram'))
  expanded = task.expand(batch)
  loss, heads, sources, mixture = separation.Separation(
      tiny_config(loss='spectrogram'))._heads_and_loss(params, expanded)
  loss_s, raw, _, _ = spectrogram._heads_and_loss(params, expanded)
  heads, raw = (separation.to_features(x, task.db_range) for x in (heads, raw))
  spectrum = np.asarray(separation.stft(mixture, **task.stft_sizes))[:, None]
  expected = separation.to_features((np.asarray(raw[..., 0]) + 1) / 2 * spectrum, task.db_range)
  np.testing.assert_allclose(heads, expected, atol=1e-5)
  loud = np.broadcast_to(np.abs(spectrum) > 1e-2, heads.shape[:-1])
  np.testing.assert_allclose(heads[..., 1][loud],
                             np.broadcast_to(np.angle(spectrum) / np.pi, loud.shape)[loud],
                             atol=1e-5)  # The mixture's phase.
  targets = separation.to_features(separation.stft(sources, **task.stft_sizes), task.db_range)
  np.testing.assert_allclose(loss, np.abs(heads[..., 0] - targets[..., 0]).mean((2, 3)).sum(1),
                             rtol=1e-5)
  magnitude = np.abs(raw[..., 0] - targets[..., 0]).mean((2, 3)).sum(1)
  np.testing.assert_allclose(loss_s - magnitude,
                             0.01 * np.abs(raw[..., 1] - targets[..., 1]).mean((2, 3)).sum(1),
                             rtol=1e-3)
  with pytest.raises(ValueError, match="unknown separation.output 'nosuch'"):
    separation.Separation(tiny_config(output='nosuch'))
  with pytest.raises(ValueError, match="unknown separation.loss 'nosuch'"):
    separation.Separation(tiny_config(loss='nosuch'))


def test_si_sdr_loss_is_minus_the_heads_si_sdr(task, batch, params, pit):
  """The default loss: minus the SI-SDR of each head's waveform, summed; PIT's in the
  better order of its heads."""
  estimates, references, _ = (np.asarray(x, np.float64) for x in task.separate(params, batch))
  loss = float(task.loss(params, batch, None)[0])
  expected = -bss.si_sdr(estimates, references).sum(-1).mean()
  np.testing.assert_allclose(loss, expected, rtol=1e-3)
  pit_task, pit_batch, pit_params = pit
  estimates, references, _ = (np.asarray(x, np.float64)
                              for x in pit_task.separate(pit_params, pit_batch))
  direct = bss.si_sdr(estimates, references).sum(-1)
  crossed = bss.si_sdr(estimates[:, ::-1], references).sum(-1)
  assert (direct >= crossed - 1e-3).all()  # `separate` returns the better order.
  np.testing.assert_allclose(float(pit_task.loss(pit_params, pit_batch, None)[0]),
                             -direct.mean(), rtol=1e-3)


def test_an_untrained_mask_separator_returns_the_mixture_halved(task, batch, params):
  """At initialisation (heads near 0) each mask is near 1/2: SI-SDR improvement near 0."""
  metrics = jax.jit(task.evaluate)(params, batch)
  assert abs(float(metrics['si_sdr_improvement'])) < 1.0


def test_adam_steps_on_a_fixed_batch_lower_the_loss(pit, adam_step):
  _, _, params = pit
  init, step = adam_step
  opt_state, losses = init(params), []
  for _ in range(8):
    params, opt_state, loss = step(params, opt_state)
    losses.append(float(loss))
  # Minus the heads' SI-SDR in dB (it may be negative): the fixed batch gains over 10 dB.
  assert np.mean(losses[-2:]) < losses[0] - 10.0, losses


def export_sync_net(tmp_path, sync_cfg):
  """Exports random `sync_net` params of `sync_cfg`'s model the way a sync run's are exported."""
  net = fusion.SyncNet(**sync_cfg.model.to_dict())
  shapes = jax.eval_shape(net.init, key(0), jnp.zeros((1, 4, 32, 32, 3)), jnp.zeros((1, 2560)))
  rng = np.random.default_rng(0)
  net_params = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32),
                            shapes['params'])
  workdir, out = tmp_path / 'run', tmp_path / 'export'
  workdir.mkdir()
  checkpoint.save_config(sync_cfg, str(workdir))
  manager = checkpoint.make_manager(str(workdir), async_save=False)
  manager.save(1, args=checkpoint.ocp.args.Composite(
      state=checkpoint.ocp.args.StandardSave({'params': {'sync_net': net_params}})))
  manager.wait_until_finished()
  assert export.export_encoders(str(workdir), str(out)) == ['sync_net']
  return str(out), net_params


def test_init_sync_loads_the_exported_sync_net(batch, params, tmp_path):
  out, exported = export_sync_net(tmp_path, sync_config.get_config('tiny'))
  task = separation.Separation(tiny_config(init_sync=out))
  loaded = jax.jit(task.init)(key(0), batch)
  jax.tree.map(np.testing.assert_array_equal, loaded['sync_net'], exported)
  jax.tree.map(np.testing.assert_array_equal, loaded['unet'], params['unet'])  # Same rng.
  with pytest.raises(ValueError, match="mode 'pit' has no sync network"):
    separation.Separation(tiny_config(init_sync=out, mode='pit'))


def test_init_sync_of_another_shape_says_so(batch, tmp_path):
  other = sync_config.get_config('tiny')
  other.model.fusion_hidden = 24
  out, _ = export_sync_net(tmp_path, other)
  task = separation.Separation(tiny_config(init_sync=out))
  with pytest.raises(ValueError, match=r"differs from the one config.model.sync builds.*fusion"):
    jax.eval_shape(task.init, key(0), batch)
