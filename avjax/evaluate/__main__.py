r"""Runs an evaluation suite: pretrains what it needs, exports, probes, writes results.

  python -m avjax.evaluate --suite=speech --workdir=/tmp/speech
  python -m avjax.evaluate --suite=speech --preset=tiny --workdir=/tmp/speech_tiny \
      --data_dir=/tmp/tfds --methods=mfcc,random,recon
  python -m avjax.evaluate --suite=sync --workdir=/tmp/sync_suite --methods=localisation
  python -m avjax.evaluate --suite=speaker --workdir=/tmp/speaker_suite
  python -m avjax.evaluate --suite=speech --workdir=/tmp/speech --seeds=3
  python -m avjax.evaluate --suite=speaker --workdir=/tmp/speaker_suite --docs=docs/speaker.md

runs the suite once per seed K of --first_seed .. --first_seed + --seeds - 1 in
WORKDIR/seed_K (its training runs, exports and results.json with rows of seed K:
every training run, probe, label subset, test noise and random baseline of the
seed takes K), then writes WORKDIR/results.json (every seed's rows), results.md
(each cell the mean ± standard error over the seeds) and PNG plots. A rerun in
the same workdir reuses each seed that finished with the same settings
(seed_K/finished.json) and resumes the others' training runs from their
checkpoints, so --seeds=5 after --seeds=3 runs seeds 3 and 4 only. A workdir
of a run before seeds has its runs moved into seed_0. With --docs=PAGE nothing
runs: WORKDIR/results.json's tables replace the text between PAGE's
`<!-- avjax:results SUITE -->` and `<!-- /avjax:results -->`.
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
_SEEDS = flags.DEFINE_integer('seeds', 1, 'How many seeds to run (and aggregate).',
                              lower_bound=1)
_FIRST_SEED = flags.DEFINE_integer('first_seed', 0, 'The first of them.', lower_bound=0)
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
    seeds = range(_FIRST_SEED.value, _FIRST_SEED.value + _SEEDS.value)
    rows = runs.run_seeds(suite.run, config, _WORKDIR.value, seeds, suite.RUN_DIRS)
  except (ValueError, OSError, FloatingPointError) as e:
    logging.debug('traceback of the error below', exc_info=True)  # --verbosity=1
    sys.exit(f'avjax.evaluate: error: {e}')
  print(f'wrote {len(rows)} results of {_SEEDS.value} seeds to {_WORKDIR.value}/results.json '
        'and results.md')


if __name__ == '__main__':
  app.run(main)
