"""Metrics as JSON lines and TensorBoard events, and the progress line.

The workdir may be a bucket path (`gs://...`: etils.epath over gcsfs for the
JSON lines and images, google-cloud-storage for tensorboardX's events).
"""

import json
import logging as std_logging
import time

import numpy as np
from absl import logging
from etils import epath


class MetricWriter:
  """Writes scalars to WORKDIR/metrics.jsonl and TensorBoard; images to PNG."""

  def __init__(self, workdir):
    from tensorboardX import SummaryWriter  # Imported here: only process 0 writes.
    self._workdir = epath.Path(workdir)
    self._jsonl = _open_to_append(self._workdir / 'metrics.jsonl')
    self._tb = SummaryWriter(str(self._workdir / 'tensorboard'))

  def scalars(self, step, metrics):
    metrics = {k: float(v) for k, v in metrics.items()}
    self._jsonl.write(json.dumps({'step': step, **metrics}) + '\n')
    self._jsonl.flush()
    for name, value in metrics.items():
      self._tb.add_scalar(name, value, step)
    self._tb.flush()

  def image(self, step, name, image):
    import imageio.v3 as iio
    png = iio.imwrite('<bytes>', np.asarray(image), extension='.png')
    (self._workdir / f'{name}_{step:07d}.png').write_bytes(png)
    self._tb.add_image(name, np.asarray(image), step, dataformats='HWC')

  def close(self):
    self._jsonl.close()
    self._tb.close()


class _ObjectAppender:
  """Appends text to an object in a bucket, which has no append: keeps the text (what
  an earlier run wrote first) and rewrites the object whole at each flush."""

  def __init__(self, path):
    self._path = path
    self._text = path.read_text() if path.exists() else ''

  def write(self, text):
    self._text += text

  def flush(self):
    self._path.write_text(self._text)

  def close(self):
    pass


def _open_to_append(path):
  """A local text file opened to append, or an `_ObjectAppender` on a bucket path."""
  return _ObjectAppender(path) if '://' in str(path) else open(path, 'a')


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
