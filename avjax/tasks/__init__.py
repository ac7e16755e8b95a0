"""Training objectives. One module per task; `TASKS` maps config names to them
(classification.py: the softmax metrics that action and speaker share).

A task is an object built from the whole config, `Task(config)`, with:

* `init(rng, batch) -> params`: the model's parameters (a pytree, no mutable
  collections), created from one preprocessed batch.
* `preprocess(example, rng) -> features`: numpy, runs in Grain workers on one
  decoded example (a dict of numpy arrays) with a `np.random.Generator`; features
  may nest (multitask returns {task name: that task's features}). They are
  compact, what crosses to the device: uint8 frames, int16 audio, small ints
  for every random choice (tasks/expand.py).
* `features` (optional): the example keys `preprocess` reads; the pipeline then
  decodes only those (all of them when a task has none).
* `join(source, load, data_config, seed) -> source` (optional): the data source
  `preprocess` reads, made from `source` (a split's records, `load(features)`)
  with what it needs of other records (`load(keys)`: the same records, other
  features), or a ValueError naming the dataset and what it lacks
  (`data_source` calls it before training; recon's other-clip still).
* `expand(batch) -> batch`: pure jnp, jit-able, draws nothing: a batch of
  compact features -> the float batch the model reads. `init`, `loss`,
  `evaluate` and `visualize` take compact batches and expand them first.
* `loss(params, batch, rng) -> (loss, metrics)`: pure and jit-able; `metrics`
  is a dict of scalars averaged over the batch, and optionally `statistics`:
  new values of parameters set from batches, not trained (BatchNorm-like running
  averages; a nested dict of params' names), which the trainer writes over the
  optimizer's step (disentangle's heads, `twostream.RunningNorm`).
* `evaluate(params, batch) -> metrics`: pure and jit-able, deterministic, on a
  validation batch; scalars averaged over the batch.
* `visualize(params, batch) -> np.ndarray | None`: host-side, a uint8 RGB
  image [H, W, 3] summarising a validation batch (or None).
* `encoders() -> dict[name, (flax module, input feature key)]`: the encoders
  that `avjax.export` writes, e.g. {"audio_encoder": (module, "audio")}, the
  key naming the input in an expanded batch; a tuple of keys for a module
  called with several inputs, in that order.
"""

from avjax.tasks import action
from avjax.tasks import aot
from avjax.tasks import disentangle
from avjax.tasks import multitask
from avjax.tasks import odd
from avjax.tasks import recon
from avjax.tasks import separation
from avjax.tasks import speaker
from avjax.tasks import sync

TASKS = {
    'recon': recon.Recon,
    'aot': aot.ArrowOfTime,
    'odd': odd.OddOneOut,
    'multitask': multitask.Multitask,
    'sync': sync.Sync,
    'separation': separation.Separation,
    'action': action.Action,
    'disentangle': disentangle.Disentangle,
    'speaker': speaker.Speaker,
}


def data_source(task, load, data_config, seed):
  """The data source `task.preprocess` reads: `load(features)` (a split's records with
  the features `task.features`, all if it names none), joined by `task.join` if it has
  one (`data_config` and `seed` are its)."""
  source = load(getattr(task, 'features', None))
  join = getattr(task, 'join', None)
  return join(source, load, data_config, seed) if join else source
