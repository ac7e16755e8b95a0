r"""Runs an evaluation suite: pretrains what it needs, exports, probes, writes results.

  python -m avjax.evaluate --suite=speech --workdir=/tmp/speech
  python -m avjax.evaluate --suite=speech --preset=tiny --workdir=/tmp/speech_tiny \
      --data_dir=/tmp/tfds --methods=mfcc,random,recon
  python -m avjax.evaluate --suite=sync --workdir=/tmp/sync_suite --methods=localisation
  python -m avjax.evaluate --suite=speaker --workdir=/tmp/speaker_suite
  python -m avjax.evaluate --suite=speaker --workdir=/tmp/speaker_suite --docs=docs/speaker.md

writes WORKDIR/results.json ({"rows": [...], ...}), results.md and PNG plots. A
rerun in the same workdir resumes each pretraining run from its checkpoint.
With --docs=PAGE nothing runs: WORKDIR/results.json's tables replace the text
between PAGE's `<!-- avjax:results SUITE -->` and `<!-- /avjax:results -->`.
"""

import sys

import jax
from absl import app
from absl import flags
from absl import logging

from avjax import metric_writers
from avjax.evaluate import results
from avjax.evaluate import runs
from avjax.evaluate import speaker
from avjax.evaluate import speech
from avjax.evaluate import sync

SUITES = {'speech': speech, 'sync': sync, 'speaker': speaker}

_SUITE = flags.DEFINE_enum('suite', None, list(SUITES), 'Which suite to run.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for pretraining runs and results.')
_PRESET = flags.DEFINE_string('preset', 'default', 'Suite size: default or tiny.')
_DATA_DIR = flags.DEFINE_string('data_dir', '', "TFDS data dir ('': TFDS's default).")
_DATA = flags.DEFINE_string(
    'data', '', "Downstream dataset, NAME or NAME/CONFIG (crema_d_av, lrw, voxceleb1, "
    "ucf101_av/fold2_s64, ...); '': the suite's avsynth default.")
_MANUAL_DIR = flags.DEFINE_string('manual_dir', '', "Its local copy ('': DATA_DIR/manual/NAME).")
_PRETRAIN_DATA = flags.DEFINE_string(
    'pretrain_data', '', "Dataset the suite pretrains on, NAME or NAME/CONFIG (lrw, "
    "voxceleb2, ...); '': the suite's avsynth default.")
_PRETRAIN_MANUAL_DIR = flags.DEFINE_string('pretrain_manual_dir', '', 'Its local copy.')
_METHODS = flags.DEFINE_list('methods', None, "Methods (speech), applications (sync) or "
                             "disentangle variants (speaker) to run (default: the preset's).")
_DOCS = flags.DEFINE_string(
    'docs', '', "A markdown page (docs/SUITE.md): instead of running the suite, write "
    "WORKDIR/results.json's tables into it between its avjax:results SUITE markers.")
flags.mark_flags_as_required(['suite', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(metric_writers.quiet_orbax)
  jax.config.update('jax_threefry_partitionable', True)
  suite = SUITES[_SUITE.value]
  try:
    if _DOCS.value:
      results.write_docs(_WORKDIR.value, _DOCS.value, _SUITE.value)
      print(f'wrote the tables of {_WORKDIR.value}/results.json into {_DOCS.value}')
      return
    config = suite.get_config(_PRESET.value)
    config.data.data_dir = _DATA_DIR.value
    if _DATA.value:
      config.data.update(runs.parse_data(_DATA.value, _MANUAL_DIR.value))
    if _PRETRAIN_DATA.value:
      config.pretrain_data.update(runs.parse_data(_PRETRAIN_DATA.value,
                                                  _PRETRAIN_MANUAL_DIR.value))
    if _METHODS.value is not None:
      config.methods = tuple(_METHODS.value)
    rows = suite.run(config, _WORKDIR.value)
  except (ValueError, OSError, FloatingPointError) as e:
    logging.debug('traceback of the error below', exc_info=True)  # --verbosity=1
    sys.exit(f'avjax.evaluate: error: {e}')
  print(f'wrote {len(rows)} results to {_WORKDIR.value}/results.json and results.md')


if __name__ == '__main__':
  app.run(main)
