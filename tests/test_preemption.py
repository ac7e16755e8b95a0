"""A single process always saves before it stops on SIGTERM, and its metric fetch
lags a step behind the batches (tests/test_multiprocess.py: two processes)."""

import os
import signal

from avjax import config_lib
from avjax import parallel
from avjax import train

# aot's tiny preset with a small audio encoder, which compiles in a quarter of the time.
SMALL = {'model.audio.conv_features': (8,), 'model.audio.kernels': (80,),
         'model.audio.strides': (16,), 'model.audio.gru_features': 8,
         'model.audio.bidirectional': False, 'probe.num_examples': 8}


def test_a_sigterm_after_the_stop_check_saves_a_later_step(data_dir, tmp_path, monkeypatch):
  """SIGTERM in the window that once stopped a run unsaved: after the step's stop check
  (here while a metrics row is written). The run saves a later step and stops there.
  Its rows show the metric fetch one step behind the batches taken, but at the save."""
  config = config_lib.load('aot', 'tiny')
  config.update_from_flattened_dict({**SMALL, 'data.data_dir': data_dir, 'total_steps': 50,
                                     'log_every': 1, 'eval_every': 50, 'checkpoint_every': 50})
  taken, fetched = [], []  # Batches taken; (row's step, batches taken) at each fetch.

  class Counting(parallel.DevicePrefetch):
    def __next__(self):
      taken.append(1)
      return super().__next__()

  def check_then_sigterm(pending):
    fetched.append((pending[-1][0], len(taken)))
    if pending[-1][0] == 2:
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(parallel, 'DevicePrefetch', Counting)
  monkeypatch.setattr(train, 'check_finite', check_then_sigterm)
  handler = signal.getsignal(signal.SIGTERM)
  step = int(train.train_and_evaluate(config, str(tmp_path)).step)
  assert 2 < step < 50
  saved = [int(p.name) for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit()]
  assert saved == [step]
  assert signal.getsignal(signal.SIGTERM) is handler  # Restored.
  assert fetched == [(s, s + 1) for s in range(1, step)] + [(step, step)]
