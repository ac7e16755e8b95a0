"""The separation u-net: shapes, size checks, conditioning, output range, fitting."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from avjax.models import unet

TINY = dict(features=(8, 16, 16, 32), time_strides=(1, 2, 2, 2))


def key(seed):
  """A PRNG key; 'rbg' compiles far faster than threefry on a CPU (3 s vs 33 s for this init)."""
  return jax.random.key(seed, impl='rbg')


def normal(shape, seed=0):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.fixture(scope='module')
def tiny():
  """A tiny conditioned u-net, its inputs, parameters and jitted apply."""
  model = unet.SpectrogramUNet(**TINY, cond_levels=(2, 4))
  x = normal((2, 16, 32, 2))
  cond = [normal((2, 5, 3), seed=1), normal((2, 20, 6), seed=2)]  # Up- and downsampled.
  params = jax.jit(model.init)(key(0), x, cond)
  return model, x, cond, params, jax.jit(model.apply)


@pytest.mark.parametrize('t, f, spec, num_sources', [
    (16, 32, TINY, 2),
    (32, 16, dict(features=(8, 16, 32), time_strides=(2, 2, 2)), 1),
    (8, 64, dict(features=(8, 8, 16, 16, 32), time_strides=(1, 1, 2, 1, 2)), 3),
])
def test_output_shape(t, f, spec, num_sources):
  model = unet.SpectrogramUNet(**spec, num_sources=num_sources)
  x = jax.ShapeDtypeStruct((2, t, f, 2), jnp.float32)
  out, _ = jax.eval_shape(lambda x: model.init_with_output(key(0), x), x)
  assert out.shape == (2, num_sources, t, f, 2) and out.dtype == jnp.float32


def test_published_configuration_shapes_and_dtype():
  """Paper sizes, traced only: 128 frames x 1024 bins, sync features at levels 3-5."""
  model = unet.SpectrogramUNet(cond_levels=(3, 4, 5), dtype=jnp.bfloat16)
  x = jax.ShapeDtypeStruct((1, 128, 1024, 2), jnp.float32)
  cond = [jax.ShapeDtypeStruct((1, 63, d), jnp.float32) for d in (64, 128, 512)]
  out, variables = jax.eval_shape(
      lambda x, c: model.init_with_output(key(0), x, c), x, cond)
  assert out.shape == (1, 2, 128, 1024, 2) and out.dtype == jnp.bfloat16
  params = variables['params']
  assert params['down1']['Conv_0']['kernel'].shape == (4, 4, 2, 64)
  assert params['down4']['Conv_0']['kernel'].shape == (4, 4, 256 + 64, 512)  # Level 3 + cond.
  assert params['up1']['kernel'].shape == (4, 4, 128 + 128, 64)
  assert params['head1']['kernel'].shape == (4, 4, 64 + 64, 2)


@pytest.mark.parametrize('shape, kwargs, cond, match', [
    ((1, 12, 32, 2), TINY, (), r'12 frames x 32 bins.*divisible by 8 and bins by 16'),
    ((1, 16, 24, 2), TINY, (), r'divisible by 8 and bins by 16'),
    ((1, 16, 32, 2), dict(TINY, cond_levels=(5,)), ((1, 4, 3),), r'levels in 1\.\.4'),
    ((1, 16, 32, 2), dict(TINY, cond_levels=(2, 2)), ((1, 4, 3),) * 2, 'distinct'),
    ((1, 16, 32, 2), dict(TINY, cond_levels=(2, 3)), ((1, 4, 3),), '1 conditioning tensors'),
    ((1, 16, 32, 2), dict(TINY, time_strides=(2, 2)), (), '2 time strides for 4 levels'),
    ((16, 32, 2), TINY, (), r'\[B, T, F, C\]'),
])
def test_bad_sizes_and_specs_raise(shape, kwargs, cond, match):
  model = unet.SpectrogramUNet(**kwargs)
  with pytest.raises(ValueError, match=match):
    model.init(key(0), jnp.zeros(shape), [jnp.zeros(c) for c in cond])


def test_conditioning_changes_the_output_and_gets_gradient(tiny):
  model, x, cond, params, apply = tiny
  base = apply(params, x, cond)
  for i in range(2):
    other = list(cond)
    other[i] = normal(cond[i].shape, seed=10 + i)
    assert float(jnp.abs(apply(params, x, other) - base).max()) > 1e-3
  grads = jax.jit(jax.grad(lambda c: jnp.sum(model.apply(params, x, c) ** 2)))(cond)
  for g, c in zip(grads, cond):
    assert g.shape == c.shape
    assert np.all(np.abs(np.asarray(g)).sum(axis=(1, 2)) > 1e-6)  # Every example's condition.


def test_tile_condition_resizes_time_and_tiles_frequency():
  cond = jnp.stack([jnp.arange(4.0), jnp.ones(4)], -1)[None]  # [1, 4, 2]: a ramp, a constant.
  tiled = unet.tile_condition(cond, 8, 3)
  assert tiled.shape == (1, 8, 3, 2)
  np.testing.assert_array_equal(tiled[:, :, 0], tiled[:, :, 2])
  # Half-pixel centres, edges clamped.
  np.testing.assert_allclose(tiled[0, :, 0, 0], [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])
  np.testing.assert_allclose(unet.tile_condition(cond, 4, 1)[:, :, 0], cond)
  down = unet.tile_condition(cond, 2, 1)[0, :, 0]
  np.testing.assert_allclose(down[:, 1], 1.0, rtol=1e-6)
  assert 0 < down[0, 0] < down[1, 0] < 3 and float(down[:, 0].mean()) == pytest.approx(1.5)


def test_outputs_lie_in_the_tanh_range(tiny):
  _, x, cond, params, apply = tiny
  out = apply(params, 100.0 * x, cond)  # Large enough to saturate some outputs.
  assert out.shape == (2, 2, 16, 32, 2)
  assert float(jnp.abs(out).max()) <= 1.0
  assert float(jnp.abs(out).max()) > 0.9


def test_a_few_adam_steps_fit_one_example(tiny):
  model, x, cond, params, _ = tiny
  target = 0.5 * np.tanh(normal((2, 2, 16, 32, 2), seed=3))
  optimizer = optax.adam(3e-3)

  def loss_fn(p):
    return jnp.mean(jnp.abs(model.apply(p, x, cond) - target))

  @jax.jit
  def step(p, state):
    loss, grads = jax.value_and_grad(loss_fn)(p)
    updates, state = optimizer.update(grads, state)
    return optax.apply_updates(p, updates), state, loss

  state = optimizer.init(params)
  losses = []
  for _ in range(20):
    params, state, loss = step(params, state)
    losses.append(float(loss))
  assert losses[-1] < 0.6 * losses[0], losses
