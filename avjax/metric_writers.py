"""Metrics as JSON lines and TensorBoard events, and the progress line."""

import json
import logging as std_logging
import os
import time

import numpy as np
from absl import logging


class MetricWriter:
  """Writes scalars to WORKDIR/metrics.jsonl and TensorBoard; images to PNG."""

  def __init__(self, workdir):
    from tensorboardX import SummaryWriter  # Imported here: only process 0 writes.
    self._workdir = workdir
    self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')
    self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def scalars(self, step, metrics):
    metrics = {k: float(v) for k, v in metrics.items()}
    self._jsonl.write(json.dumps({'step': step, **metrics}) + '\n')
    self._jsonl.flush()
    for name, value in metrics.items():
      self._tb.add_scalar(name, value, step)
    self._tb.flush()

  def image(self, step, name, image):
    import imageio.v3 as iio
    iio.imwrite(os.path.join(self._workdir, f'{name}_{step:07d}.png'), image)
    self._tb.add_image(name, np.asarray(image), step, dataformats='HWC')

  def close(self):
    self._jsonl.close()
    self._tb.close()


class NullWriter:
  """What processes other than 0 write: nothing."""

  def scalars(self, step, metrics):
    pass

  def image(self, step, name, image):
    pass

  def close(self):
    pass


class Progress:
  """Logs step/total, steps/s, examples/s and ETA."""

  def __init__(self, first_step, total_steps, batch_size):
    self._total = total_steps
    self._batch = batch_size
    self._step, self._time = first_step, time.perf_counter()

  def report(self, step):
    now = time.perf_counter()
    rate = (step - self._step) / max(now - self._time, 1e-9)
    self._step, self._time = step, now
    eta = (self._total - step) / max(rate, 1e-9)
    logging.info('step %d/%d  %.2f steps/s  %.1f examples/s  ETA %s', step, self._total,
                 rate, rate * self._batch, time.strftime('%H:%M:%S', time.gmtime(eta)))
    return {'steps_per_sec': rate, 'examples_per_sec': rate * self._batch}


def quiet_orbax(record):
  """A log filter keeping orbax's per-save INFO lines out; its warnings stay."""
  return record.levelno >= std_logging.WARNING or '/orbax/' not in record.pathname
