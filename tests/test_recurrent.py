"""recurrent.gru against flax's nn.RNN(nn.GRUCell): parameters, outputs, gradients, loop shape."""

import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from avjax.models import recurrent

LENGTHS = np.array([7, 4, 1])


class FlaxGRU(nn.Module):
  """The GRU avjax used before `recurrent.gru`, as audio.py and heads.py built it."""
  features: int
  bidirectional: bool = True
  dtype: object = None

  @nn.compact
  def __call__(self, x, lengths=None):
    rnn = lambda name: nn.RNN(nn.GRUCell(self.features, dtype=self.dtype), name=name)
    if self.bidirectional:
      return nn.Bidirectional(rnn('gru_fwd'), rnn('gru_bwd'), name='gru')(x, seq_lengths=lengths)
    return rnn('gru')(x, seq_lengths=lengths)


class GRU(FlaxGRU):

  @nn.compact
  def __call__(self, x, lengths=None):
    return recurrent.gru(x, self.features, self.bidirectional, lengths, self.dtype)


def inputs():
  return jax.random.normal(jax.random.key(0), (3, 7, 5))


@pytest.mark.parametrize('bidirectional', [True, False])
def test_parameters_are_flaxs(bidirectional):
  """Same names, shapes and initial values: checkpoints load either way."""
  flax_params = FlaxGRU(6, bidirectional).init(jax.random.key(1), inputs())
  params = GRU(6, bidirectional).init(jax.random.key(1), inputs())
  assert jax.tree.structure(params) == jax.tree.structure(flax_params)
  assert sorted(params['params']) == ['GRUCell_0', 'GRUCell_1'][:1 + bidirectional]
  jax.tree.map(np.testing.assert_array_equal, params, flax_params)


@pytest.mark.parametrize('bidirectional', [True, False])
@pytest.mark.parametrize('lengths', [None, LENGTHS])
def test_outputs_and_gradients_match_flax(bidirectional, lengths):
  x = inputs()
  params = FlaxGRU(6, bidirectional).init(jax.random.key(1), x)
  valid = np.ones((3, 7, 1), bool) if lengths is None else (
      np.arange(7) < lengths[:, None])[..., None]
  weights = jax.random.normal(jax.random.key(2), (3, 7, 6 * (1 + bidirectional)))

  def loss(module):  # Padding's outputs are meaningless.
    return lambda p, x: (jnp.where(valid, module.apply(p, x, lengths), 0) * weights).sum()

  flax_gru, gru = FlaxGRU(6, bidirectional), GRU(6, bidirectional)
  np.testing.assert_allclose(np.where(valid, gru.apply(params, x, lengths), 0),
                             np.where(valid, flax_gru.apply(params, x, lengths), 0),
                             rtol=1e-5, atol=1e-6)
  expected = jax.grad(loss(flax_gru), (0, 1))(params, x)
  got = jax.grad(loss(gru), (0, 1))(params, x)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), got, expected)


def test_bfloat16_keeps_a_float32_state_and_matches_flax():
  x = inputs()
  params = FlaxGRU(6).init(jax.random.key(1), x)
  y = GRU(6, dtype=jnp.bfloat16).apply(params, x)
  assert y.dtype == jnp.float32
  np.testing.assert_allclose(y, FlaxGRU(6, dtype=jnp.bfloat16).apply(params, x), atol=1e-2)


def _loops(jaxpr):
  """The scans in a jaxpr, each as the number of dot_generals in its body."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'scan':
      body = eqn.params['jaxpr'].jaxpr
      found.append(sum(e.primitive.name == 'dot_general' for e in body.eqns))
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else [param]:
        if isinstance(sub, jax.extend.core.ClosedJaxpr):
          found += _loops(sub.jaxpr)
        elif isinstance(sub, jax.extend.core.Jaxpr):
          found += _loops(sub)
  return found


def test_one_loop_a_pass_with_one_matmul_a_step():
  """Both directions share one scan forward and one backward, each step one GEMM;
  the input projections and the weight gradients are outside the loops."""
  x = inputs()
  gru = GRU(6)
  params = gru.init(jax.random.key(1), x)
  grad = jax.grad(lambda p, x: gru.apply(p, x).sum(), (0, 1))
  assert _loops(jax.make_jaxpr(grad)(params, x).jaxpr) == [1, 1]
