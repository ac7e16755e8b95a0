"""Speed options (bf16 compute, remat, per-device batch) and every config's `accel` preset.

Only `test_remat_gives_the_same_loss_and_gradients` compiles; the rest traces
(`jax.make_jaxpr`, `jax.eval_shape`) at each accel preset's real per-device
batch, made of ShapeDtypeStructs from one rendered and preprocessed avsynth clip.
"""

import functools
import pathlib

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avjax import config_lib
from avjax import parallel
from avjax import tasks
from avjax import train
from avjax.data.synth import heads
from avjax.data.synth import scenes

NAMES = sorted(p.stem for p in pathlib.Path(config_lib.configs_dir()).glob('[!_]*.py'))
COMPUTE = ('conv_general_dilated', 'dot_general')
REMAT = ('checkpoint', 'remat2')  # The primitive's name, printed and internal.
# Left in float32 on purpose: the cosine logits of disentangle's losses.
FLOAT32_SCOPES = ('ScaledCosine',)


def key(seed):
  """A PRNG key; 'rbg' compiles far faster than threefry on a CPU."""
  return jax.random.key(seed, impl='rbg')


def equations(jaxpr):
  """Every equation of a jaxpr and of the jaxprs inside it (remat, scan, pjit, ...)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in value if isinstance(value, (list, tuple)) else (value,):
        if isinstance(sub, jax.extend.core.ClosedJaxpr):
          yield from equations(sub.jaxpr)
        elif isinstance(sub, jax.extend.core.Jaxpr):
          yield from equations(sub)


def primitives(jaxpr):
  return {eqn.primitive.name for eqn in equations(jaxpr)}


def example(config, task, index=0):
  """Clip `index` of the config's avsynth preset, rendered and preprocessed."""
  world = heads if config.data.config in heads.PRESETS else scenes
  clip = world.render_clip(world.PRESETS[config.data.config], 'train', index, seed=0)
  return task.preprocess(clip, np.random.default_rng(index))


def abstract_batch(config, task, size):
  """ShapeDtypeStructs of `size` examples shaped as `example`'s."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct((size,) + np.shape(x), np.asarray(x).dtype),
                      example(config, task))


def with_remat(config, remat):
  config = config.copy_and_resolve_references()
  config.remat = remat
  return config


class Traced:
  """An accel preset, its task and optimizer, and its train step traced at the real
  per-device batch (a mesh of this process's one device)."""

  def __init__(self, name):
    self.config = config_lib.load(name, 'accel')
    self.task = tasks.TASKS[self.config.task](self.config)
    self.tx, _ = train.make_optimizer(self.config.optimizer, self.config.total_steps)
    self.batch_size = parallel.global_batch_size(self.config, parallel.make_mesh(self.config.mesh))
    self.batch = abstract_batch(self.config, self.task, self.batch_size)
    self.state = jax.eval_shape(functools.partial(train.init_state, task=self.task, tx=self.tx),
                                key(0), self.batch)
    step = functools.partial(train.train_step, task=self.task, tx=self.tx)
    self.step = jax.make_jaxpr(step, return_shape=True)(self.state, self.batch, key(1))


@pytest.fixture(scope='module', params=NAMES)
def traced(request):
  return Traced(request.param)


def test_accel_preset_trains_at_its_per_device_batch_in_float32_state(traced):
  config = traced.config
  assert config.dtype == 'bfloat16' and config.per_device_batch_size > 0
  assert (config.mesh.data, config.mesh.fsdp) == (-1, 1)
  assert traced.batch_size == config.per_device_batch_size
  _, (state, metrics) = traced.step
  assert jax.tree.structure(state) == jax.tree.structure(traced.state)
  for leaf in jax.tree.leaves((state.params, state.opt_state)):
    assert leaf.dtype in (jnp.float32, jnp.int32), leaf
  assert metrics['loss'].shape == () and metrics['loss'].dtype == jnp.float32
  assert all(m.dtype == jnp.float32 for m in metrics.values())


def test_accel_convolutions_and_matmuls_run_in_bfloat16(traced):
  jaxpr = traced.step[0].jaxpr
  checked = 0
  for eqn in equations(jaxpr):
    scope = str(eqn.source_info.name_stack)
    if eqn.primitive.name in COMPUTE and not any(s in scope for s in FLOAT32_SCOPES):
      dtypes = {v.aval.dtype for v in eqn.invars}
      assert dtypes == {jnp.dtype(jnp.bfloat16)}, (eqn.primitive, dtypes, scope)
      checked += 1
  assert checked > 0


def test_remat_keeps_the_parameter_tree_and_adds_checkpoints(traced):
  """The preset as it is against the same preset with `remat` flipped."""
  remat = traced.config.remat
  other = tasks.TASKS[traced.config.task](with_remat(traced.config, not remat))
  init, params = jax.make_jaxpr(other.init, return_shape=True)(key(0), traced.batch)
  shapes = lambda tree: jax.tree.map(lambda x: x.shape, tree)
  assert jax.tree.structure(params) == jax.tree.structure(traced.state.params)
  assert shapes(params) == shapes(traced.state.params)
  assert bool(primitives(traced.step[0].jaxpr) & set(REMAT)) == remat
  assert bool(primitives(init.jaxpr) & set(REMAT)) == (not remat)


def test_remat_gives_the_same_loss_and_gradients():
  config = config_lib.load('speaker', 'tiny')
  task = tasks.TASKS[config.task](config)
  batch = jax.tree.map(lambda *x: np.stack(x), *[example(config, task, i) for i in range(4)])
  rng = np.random.default_rng(0)  # Random parameters: no init to compile.
  params = jax.tree.map(lambda x: rng.normal(0, 0.3, x.shape).astype(x.dtype),
                        jax.eval_shape(task.init, key(0), batch))
  params = flax.traverse_util.path_aware_map(  # Running variances (`RunningNorm`) stay positive.
      lambda path, x: np.abs(x) + 0.5 if path[-1] == 'var' else x, params)
  grad_fns = [jax.value_and_grad(tasks.TASKS[config.task](with_remat(config, r)).loss,
                                 has_aux=True) for r in (False, True)]
  # One compile for both: XLA keeps the rematerialised forward pass apart (remat's
  # optimisation barriers), so the remat gradients come from their own recomputation.
  ((loss, _), grads), ((remat_loss, _), remat_grads) = jax.jit(
      lambda p: [f(p, batch, key(1)) for f in grad_fns])(params)
  close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6)
  close(remat_loss, loss)
  jax.tree.map(close, remat_grads, grads)
  assert np.isfinite(loss) and max(np.abs(g).max() for g in jax.tree.leaves(grads)) > 0


def test_per_device_batch_size_sets_the_global_batch():
  config = config_lib.trainer_defaults()
  one = parallel.make_mesh(config.mesh)
  several = jax.sharding.AbstractMesh((4, 2), parallel.BATCH_AXES)
  assert parallel.global_batch_size(config, one) == config.batch_size
  assert parallel.global_batch_size(config, several) == config.batch_size
  config.per_device_batch_size = 24
  assert parallel.global_batch_size(config, one) == 24
  assert parallel.global_batch_size(config, several) == 24 * 8
