"""Device mesh, shardings, multi-host start-up and per-host batches.

The mesh has two axes: `data` (batch split, parameters replicated) and `fsdp`
(batch split too, and each parameter's largest divisible dimension split).
`DevicePrefetch` puts the next batches on the devices from a background thread.
"""

import json
import os
import queue
import threading

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

BATCH_AXES = ('data', 'fsdp')
# Set by a launcher (launch/tpu.py, launch/slurm.py: AVJAX_DISTRIBUTED=1) or a cluster; jax
# then finds the coordinator, process count and id itself (jax/_src/clusters/).
_CLUSTER_ENV = ('AVJAX_DISTRIBUTED', 'JAX_COORDINATOR_ADDRESS', 'TPU_WORKER_HOSTNAMES',
                'OMPI_COMM_WORLD_SIZE')
# Set by launch/local.py (or by hand); jax reads JAX_COORDINATOR_ADDRESS but not the other two.
_EXPLICIT_ENV = ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID')


def distributed_args(environ):
  """The arguments of `jax.distributed.initialize` that `environ` asks for, or None
  for a single-process run (no launcher or cluster variable set)."""
  if environ.get('JAX_NUM_PROCESSES'):
    missing = [k for k in _EXPLICIT_ENV if not environ.get(k)]
    if missing:
      raise ValueError(f'JAX_NUM_PROCESSES is set but {missing} are not')
    return dict(coordinator_address=environ['JAX_COORDINATOR_ADDRESS'],
                num_processes=int(environ['JAX_NUM_PROCESSES']),
                process_id=int(environ['JAX_PROCESS_ID']),
                cluster_detection_method='deactivate')
  if any(environ.get(k) for k in _CLUSTER_ENV):
    return {}
  return None


def maybe_initialize_distributed(environ=os.environ):
  """Calls `jax.distributed.initialize` when `environ` names a multi-process run."""
  args = distributed_args(environ)
  if args is not None:
    jax.distributed.initialize(**args)


def make_mesh(mesh_config, devices=None):
  """A ('data', 'fsdp') mesh; `data=-1` takes every device `fsdp` leaves."""
  devices = jax.devices() if devices is None else devices
  fsdp = mesh_config.fsdp
  data = mesh_config.data if mesh_config.data > 0 else len(devices) // fsdp
  if data * fsdp != len(devices):
    raise ValueError(f'mesh data={mesh_config.data} x fsdp={fsdp} does not fit '
                     f'{len(devices)} devices')
  return jax.sharding.Mesh(np.asarray(devices).reshape(data, fsdp), BATCH_AXES)


def batch_sharding(mesh):
  """Leading (batch) dimension split over every device."""
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh):
  return NamedSharding(mesh, P())


def fsdp_spec(shape, fsdp_size, min_size=2**10):
  """Splits the largest dimension divisible by `fsdp_size`; small arrays stay whole."""
  if fsdp_size == 1 or int(np.prod(shape)) < min_size:
    return P()
  for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
    if shape[dim] % fsdp_size == 0:
      spec = [None] * len(shape)
      spec[dim] = 'fsdp'
      return P(*spec)
  return P()


def state_shardings(mesh, abstract_state):
  """Shardings for a pytree of ShapeDtypeStructs (parameters, optimizer state)."""
  fsdp_size = mesh.shape['fsdp']
  return jax.tree.map(
      lambda x: NamedSharding(mesh, fsdp_spec(x.shape, fsdp_size)), abstract_state)


def global_batch_size(config, mesh):
  """`config.batch_size`, or `per_device_batch_size` times the mesh's devices when set."""
  if config.get('per_device_batch_size', 0) > 0:
    return config.per_device_batch_size * mesh.size
  return config.batch_size


def per_host_batch_size(global_batch_size):
  count = jax.process_count()
  if global_batch_size % count:
    raise ValueError(f'batch_size {global_batch_size} is not divisible by the '
                     f'{count} hosts')
  return global_batch_size // count


def check_batch_size(global_batch_size, mesh):
  if global_batch_size % mesh.size:
    raise ValueError(f'batch_size {global_batch_size} is not divisible by the '
                     f'{mesh.size} devices of the mesh')


def to_global(batch, mesh):
  """Assembles each host's numpy batch into global arrays split on the batch axes: the
  global batch is the hosts' batches stacked in process order (a host's devices hold
  consecutive rows of the batch sharding)."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


class DevicePrefetch:
  """Iterates over `iterator`'s host batches as global arrays (`to_global`), which a
  background thread puts on the devices up to `size` batches ahead of the one taken.

  `get_state()` is the data position after the batches taken so far (not those
  prefetched), in the form Grain's checkpoint handler saves of an iterator other than
  its own (JSON bytes); restore the underlying Grain iterator before prefetching. An
  error of `iterator` is raised by `next`; `close()` (or the end of a `with` block)
  stops the thread.
  """

  def __init__(self, iterator, mesh, size=2):
    self._iterator, self._mesh = iterator, mesh
    self._state = iterator.get_state()
    self._slots = threading.Semaphore(size)  # Batches on the devices, not yet taken.
    self._ready = queue.Queue()  # (global batch, position after it, error).
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._fill, name='DevicePrefetch', daemon=True)
    self._thread.start()

  def _fill(self):
    try:
      while self._slots.acquire() and not self._stop.is_set():
        batch = next(self._iterator)
        self._ready.put((to_global(batch, self._mesh), self._iterator.get_state(), None))
    except Exception as e:  # pylint: disable=broad-except  (`next` raises it, StopIteration too)
      self._ready.put((None, None, e))

  def __iter__(self):
    return self

  def __next__(self):
    batch, state, error = self._ready.get()
    if error is not None:
      self._ready.put((None, None, error))  # The next call raises it again.
      raise error
    self._slots.release()
    self._state = state
    return batch

  def get_state(self):
    return json.dumps(self._state, indent=4).encode()

  def close(self):
    self._stop.set()
    self._slots.release()  # Wakes the thread if it waits for a slot.
    self._thread.join()

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()
