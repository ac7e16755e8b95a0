"""layers.max_pool and layers.Conv against flax's nn.max_pool and nn.Conv."""

import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from avjax.models import layers


def normal(shape, seed=0):
  return jax.random.normal(jax.random.key(seed), shape)


def primitives(fn, *args):
  """Names of every primitive in fn's jaxpr, sub-jaxprs included."""
  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      yield eqn
      for param in eqn.params.values():
        for sub in param if isinstance(param, (tuple, list)) else [param]:
          if isinstance(sub, jax.extend.core.ClosedJaxpr):
            yield from walk(sub.jaxpr)
          elif isinstance(sub, jax.extend.core.Jaxpr):
            yield from walk(sub)
  return list(walk(jax.make_jaxpr(fn)(*args).jaxpr))


POOLS = [  # (input shape, window, strides, padding): every pool of the models, and edge cases.
    ((2, 13, 3), (4,), (4,), 'SAME'),  # Non-overlapping, a remainder padded.
    ((2, 13, 3), (4,), (4,), 'VALID'),  # Non-overlapping, a remainder dropped.
    ((2, 3, 9, 11, 3), (3, 3), (2, 2), 'SAME'),  # Two batch axes.
    ((2, 9, 11, 3), (3, 3), (1, 2), 'SAME'),
    ((2, 9, 11, 3), (3, 1), (2, 1), 'SAME'),
    ((2, 3, 8, 7, 3), (1, 3, 3), (1, 2, 2), 'SAME'),
    ((2, 9, 11, 3), (3, 3), (2, 2), 'VALID'),
    ((2, 9, 11, 3), (3, 3), (2, 2), ((1, 2), (0, 1))),
]


@pytest.mark.parametrize('shape, window, strides, padding', POOLS)
def test_max_pool_matches_flax(shape, window, strides, padding):
  x = normal(shape)
  expected = nn.max_pool(x, window, strides, padding)
  got = layers.max_pool(x, window, strides, padding)
  np.testing.assert_array_equal(got, expected)
  weights = normal(expected.shape, seed=1)
  grad = lambda pool: jax.grad(lambda x: (pool(x, window, strides, padding) * weights).sum())(x)
  np.testing.assert_allclose(grad(layers.max_pool), grad(nn.max_pool), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('window, strides', [((4,), (4,)), ((3, 3), (2, 2))])
def test_max_pool_backward_selects_without_scatter(window, strides):
  x = normal((2, 16, 3) if len(window) == 1 else (2, 9, 11, 3))
  grad = jax.grad(lambda x: layers.max_pool(x, window, strides).sum())
  names = {eqn.primitive.name for eqn in primitives(grad, x)}
  assert not {name for name in names if 'scatter' in name or 'gather' in name}, names


def test_max_pool_gradient_of_ties_goes_to_one_maximum():
  x = jnp.round(normal((2, 9, 11, 3)))  # Many ties.
  g = normal((2, 5, 6, 3), seed=1)
  dx = jax.vjp(lambda x: layers.max_pool(x, (3, 3), (2, 2)), x)[1](g)[0]
  np.testing.assert_allclose(dx.sum(), g.sum(), rtol=1e-5)  # Each window's once.
  y = np.asarray(nn.max_pool(x, (3, 3), (2, 2), 'SAME'))
  assert np.isin(np.asarray(x)[np.asarray(dx) != 0], y).all()  # Only to maxima.


CONVS = [  # (input shape, kernel, strides, padding, use_bias).
    ((3, 1, 1, 4), (3, 3), (1, 1), 'SAME', True),  # Clipped to its centre tap.
    ((3, 2, 2, 4), (3, 3), (1, 1), 'SAME', False),  # A matmul.
    ((2, 3, 2, 2, 4), (3, 3), (1, 1), 'SAME', True),  # A matmul, two batch axes.
    ((3, 2, 2, 4), (4, 4), (2, 2), 'SAME', False),  # Clipped to 2 x 2.
    ((3, 2, 4, 4), (4, 4), (2, 2), 'SAME', True),
    ((3, 1, 2, 4), (4, 4), (1, 2), 'SAME', False),
    ((3, 2, 5, 4), (3, 3), (1, 1), 'SAME', True),
    ((3, 4, 4, 4), (3, 3), (1, 1), 'SAME', False),  # Unchanged.
    ((3, 2, 2, 2, 4), (3, 3, 3), (1, 1, 1), 'SAME', True),
    ((2, 6, 5, 5, 4), (3, 3, 3), (1, 1, 1), 'SAME', False),  # On a CPU: 2-D convs summed.
    ((2, 7, 6, 5, 4), (3, 5, 5), (2, 2, 2), 'SAME', True),  # Strided in time.
    ((2, 5, 4, 4, 4), (1, 1, 1), (1, 2, 2), 'SAME', False),
    ((2, 6, 4, 4, 4), (2, 3, 3), (2, 1, 1), ((1, 0), (1, 1), (0, 2)), True),
    ((3, 2, 4), (5,), (1,), 'SAME', False),
    ((3, 9, 4), (3,), (2,), 'VALID', True),
    ((3, 2, 2, 4), (3, 3), (1, 1), ((1, 1), (2, 0)), False),
]


@pytest.mark.parametrize('shape, kernel, strides, padding, use_bias', CONVS)
def test_conv_matches_flax(shape, kernel, strides, padding, use_bias):
  x = normal(shape)
  flax_conv = nn.Conv(5, kernel, strides, padding=padding, use_bias=use_bias)
  conv = layers.Conv(5, kernel, strides, padding=padding, use_bias=use_bias)
  params = flax_conv.init(jax.random.key(1), x)
  jax.tree.map(np.testing.assert_array_equal, conv.init(jax.random.key(1), x), params)
  expected = flax_conv.apply(params, x)
  np.testing.assert_allclose(conv.apply(params, x), expected, rtol=1e-5, atol=1e-5)
  weights = normal(expected.shape, seed=2)
  grad = lambda m: jax.grad(lambda p, x: (m.apply(p, x) * weights).sum(), (0, 1))(params, x)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
               grad(conv), grad(flax_conv))


def test_conv_3d_on_a_cpu_is_2d_convs():
  """A 3 x 3 x 3 conv strided 2 in time: three 2-D convs (one per time tap) of 3 frames each."""
  x = normal((2, 6, 5, 5, 4))
  conv = layers.Conv(5, (3, 3, 3), strides=(2, 1, 1))
  params = conv.init(jax.random.key(1), x)
  eqns = primitives(lambda x: conv.apply(params, x), x)
  convs = [e for e in eqns if e.primitive.name == 'conv_general_dilated']
  assert [e.invars[0].aval.shape for e in convs] == [(2 * 3, 5, 5, 4)] * 3
  assert [e.invars[1].aval.shape for e in convs] == [(3, 3, 4, 5)] * 3


@pytest.mark.parametrize('size, kernel', [(1, (1, 1)), (2, None), (4, (3, 3))])
def test_conv_on_small_maps_skips_padding(size, kernel):
  """3 x 3 'SAME' on a 1x1 map: a 1x1 conv; on 2x2: a matmul; on 4x4: the conv."""
  x = normal((3, size, size, 4))
  conv = layers.Conv(5, (3, 3))
  params = conv.init(jax.random.key(1), x)
  eqns = primitives(lambda x: conv.apply(params, x), x)
  kernels = [e.invars[1].aval.shape[:2] for e in eqns if e.primitive.name == 'conv_general_dilated']
  assert kernels == ([kernel] if kernel else [])
  assert any(e.primitive.name == 'dot_general' for e in eqns) == (kernel is None)
