"""The speech suite: audio features probed on avsynth talking heads.

  python -m avjax.evaluate --suite=speech --workdir=DIR [--preset=tiny]

Methods (`config.methods`, or --methods):
* `mfcc`, `logmel`: hand-crafted features (frozen; log-mel is off by default);
* `random`: a randomly initialised audio encoder shaped as `config.encoder_config`'s;
* `supervised`: that random encoder fine-tuned with the head, from scratch;
* any other name: a pretext task pretrained with `configs/NAME.py` in
  DIR/pretrain/NAME, its `audio_encoder` exported to DIR/encoders/NAME, then
  probed frozen and (if in `config.finetune`) fine-tuned.

Tasks: `word` (each word's frames, word_start..word_end, classified among the
vocabulary; accuracy), `emotion` (per clip; accuracy and UAR), `affect`
(per-frame arousal and valence; CCC over all test frames, rows `arousal`
and `valence`). Each head trains on a class-stratified `label_fraction` of the
train split (stratified by word, or by emotion for clip tasks; nested
subsets), is selected on the whole clean validation split, and is scored on
the test split's unseen speakers, clean and with white Gaussian noise at each
of `config.snrs_db` (noise on test audio only, so each head trains once per
method, task and fraction). Fine-tuning, which costs far more, runs for
`config.finetune` methods on `config.finetune_tasks` x
`config.finetune_fractions` only (default: supervised, recon and multitask on
emotion at every fraction).
"""

import dataclasses
import json
import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from avjax import checkpoint
from avjax import config_lib
from avjax import tasks
from avjax import train
from avjax.data import ops
from avjax.data import pipeline
from avjax.data.synth import heads as synth_heads
from avjax.evaluate import features
from avjax.evaluate import metrics
from avjax.evaluate import probe
from avjax.evaluate import results

RANDOM, SUPERVISED = 'random', 'supervised'
# name: (probe kind, number of outputs).
TASKS = {
    'word': ('classify', len(synth_heads.VOCABULARY)),
    'emotion': ('classify', len(synth_heads.EMOTIONS)),
    'affect': ('regress', 2),
}
PRESETS = ('default', 'tiny')


def get_config(preset='default'):
  """The suite's settings; `default` is sized for a 2-core CPU (README has the
  measured run), `tiny` (on avsynth/heads_tiny) takes a minute or two."""
  if preset not in PRESETS:
    raise ValueError(f'unknown preset {preset!r}; known: {PRESETS}')
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = dict(name='avsynth', config='heads', data_dir='')
  # Also known: 'logmel'; any configs/NAME.py whose task has an `audio_encoder`.
  config.methods = ('mfcc', RANDOM, SUPERVISED, 'recon', 'aot', 'odd', 'multitask')
  config.finetune = (SUPERVISED, 'recon', 'multitask')  # Fine-tuned as well as frozen.
  config.tasks = tuple(TASKS)
  config.label_fractions = (0.01, 0.1, 1.0)
  config.min_examples = 8  # The smallest labelled subset.
  config.snrs_db = (20.0, 10.0, 5.0, 0.0)  # Besides clean.
  config.finetune_tasks = ('emotion',)
  config.finetune_fractions = (0.01, 0.1, 1.0)
  config.encoder_config = 'recon'  # The shape of `random` and `supervised`.
  config.configs_dir = ''  # '' = the repository's configs/.
  config.pretrain = dict(
      preset='',  # The argument of each configs/NAME.py.
      total_steps={})  # NAME: steps, else the config's own (each sized for a 2-core CPU).
  config.probe = dict(hidden=64, steps=300, batch_size=32, eval_batch_size=128,
                      eval_every=50, patience=3, learning_rate=1e-3)
  config.finetune_probe = dict(hidden=64, steps=150, batch_size=16, eval_batch_size=128,
                               eval_every=50, patience=2, learning_rate=1e-3,
                               encoder_learning_rate=3e-4)
  if preset == 'tiny':
    config.data.config = 'heads_tiny'
    config.methods = ('mfcc', SUPERVISED, 'recon')
    config.finetune = (SUPERVISED, 'recon')
    config.label_fractions = (0.25, 1.0)
    config.min_examples = 4
    config.snrs_db = (0.0,)
    config.finetune_fractions = (1.0,)
    config.pretrain.preset = 'tiny'
    config.pretrain.total_steps = dict(recon=2, aot=2, odd=2, multitask=2)
    for probe_config in (config.probe, config.finetune_probe):
      probe_config.update(hidden=8, steps=4, eval_every=2, batch_size=8, eval_batch_size=32)
  return config


def load_clips(data_config, split):
  """A split's waveforms and speech labels, as numpy arrays (words ragged)."""
  source = pipeline.load_source(data_config, split)
  clips = [source[i] for i in range(len(source))]
  return dict(
      waveform=np.stack([ops.to_float(c['audio']) for c in clips]),
      emotion=np.array([c['emotion'] for c in clips], np.int32),
      affect=np.stack([np.stack([c['arousal'], c['valence']], -1) for c in clips]),
      words=[np.asarray(c['words']) for c in clips],
      word_start=[np.asarray(c['word_start']) for c in clips],
      word_end=[np.asarray(c['word_end']) for c in clips])


def word_examples(clips, num_frames, max_frames):
  """One example per spoken word: its frames word_start..word_end (at most max_frames)."""
  rows = [(i, s, e, w) for i, ws in enumerate(clips['words'])
          for w, s, e in zip(ws, clips['word_start'][i], clips['word_end'][i])]
  clip, start, end, word = (np.array(col, np.int32) for col in zip(*rows))
  index = np.minimum(start[:, None] + np.arange(max_frames, dtype=np.int32), num_frames - 1)
  length = np.clip(end - start, 1, max_frames).astype(np.int32)
  return probe.Examples(clip, index, length, word)


def task_examples(task, clips, max_word_frames):
  num_clips, num_frames = clips['affect'].shape[:2]
  if task == 'word':
    return word_examples(clips, num_frames, max_word_frames)
  target = clips['emotion'] if task == 'emotion' else clips['affect']
  return probe.whole_clips(num_clips, num_frames, target)


def strata(task, examples, clips):
  """The classes a label subset is stratified by: words, or the clips' emotions."""
  return examples.target if task == 'word' else clips['emotion'][examples.clip]


def measure(task, predictions, examples):
  """[(task, metric, value)] of a task's predictions on its examples."""
  if task == 'word':
    return [('word', 'accuracy', metrics.accuracy(examples.target, predictions))]
  if task == 'emotion':
    return [('emotion', 'accuracy', metrics.accuracy(examples.target, predictions)),
            ('emotion', 'uar', metrics.uar(examples.target, predictions))]
  valid = np.arange(examples.index.shape[1]) < examples.length[:, None]
  target, pred = examples.target[valid], predictions[valid]
  return [(name, 'ccc', metrics.ccc(target[:, k], pred[:, k]))
          for k, name in enumerate(('arousal', 'valence'))]


def method_config(config, name):
  """configs/NAME.py's config under the suite's preset, data and step count."""
  try:
    method = config_lib.load(name, config.pretrain.preset or None, config.configs_dir)
  except ValueError as e:
    raise ValueError(f'method {name!r} has no usable pretraining config: {e}') from e
  method.data.config = config.data.config
  method.data.data_dir = config.data.data_dir
  method.total_steps = config.pretrain.total_steps.get(name, method.total_steps)
  return method


def pretrain(config, name, workdir):
  """Pretrains (or resumes) method `name` in WORKDIR/pretrain/NAME; exports to encoders/NAME."""
  run_dir = os.path.join(workdir, 'pretrain', name)
  logging.info('pretraining %s in %s', name, run_dir)
  train.train_and_evaluate(method_config(config, name), run_dir)
  checkpoint.export_encoders(run_dir, os.path.join(workdir, 'encoders', name))


def audio_encoder(config, method, workdir, waveform):
  """(module, params) of a method's audio encoder: exported, or random.

  A random encoder is shaped as `config.encoder_config`'s and initialised on
  one clip's `waveform` with `config.seed`.
  """
  if method in (RANDOM, SUPERVISED):
    task_config = method_config(config, config.encoder_config)
    module = tasks.TASKS[task_config.task](task_config).encoders()['audio_encoder'][0]
    windows = features.windows(module, waveform[None])
    return module, module.init(jax.random.key(config.seed), windows)['params']
  export_dir = os.path.join(workdir, 'encoders', method)
  task_config = checkpoint.load_config(os.path.join(export_dir, 'audio_encoder'))
  module = tasks.TASKS[task_config.task](task_config).encoders()['audio_encoder'][0]
  return module, checkpoint.load_encoder(export_dir, 'audio_encoder')[1]


def _describe(module):
  """A hashable description of an encoder module (None stays None).

  Exported configs come back from JSON with lists where the code has tuples,
  so the fields are compared as JSON.
  """
  if module is None:
    return None
  fields = {f.name: getattr(module, f.name) for f in dataclasses.fields(module)
            if f.name not in ('parent', 'name')}
  return type(module).__name__, json.dumps(fields, sort_keys=True, default=str)


class _Suite:
  """The data, examples and conditions shared by every method's probes.

  Probes are kept by (task, feature width, encoder), so methods with equal
  shapes reuse one compiled head.
  """

  def __init__(self, config):
    self.config = config
    self.clips = {s: load_clips(config.data, s) for s in ('train', 'validation', 'test')}
    max_word = max(int(np.max(e - s)) for c in self.clips.values()
                   for s, e in zip(c['word_start'], c['word_end']) if len(s))
    self.examples = {t: {s: task_examples(t, c, max_word) for s, c in self.clips.items()}
                     for t in set(config.tasks) | set(config.finetune_tasks)}
    self.snrs = (None,) + tuple(config.snrs_db)
    self.test_waveforms = {snr: features.with_white_noise(
        self.clips['test']['waveform'], snr, config.seed) for snr in self.snrs}
    self.rows = []
    self._probes = {}

  def _probe(self, task, width, module):
    key = (task, width, _describe(module))
    if key not in self._probes:
      kind, num_outputs = TASKS[task]
      if module is None:
        self._probes[key] = probe.Probe(kind, num_outputs, self.config.probe)
      else:
        apply = lambda p, x: module.apply({'params': p}, x)
        self._probes[key] = probe.Probe(kind, num_outputs, self.config.finetune_probe, apply)
    return self._probes[key]

  def _subsets(self, task, fractions):
    train = self.examples[task]['train']
    classes = strata(task, train, self.clips['train'])
    for fraction in fractions:
      yield fraction, train.take(pipeline.label_subset(classes, fraction, self.config.seed,
                                              self.config.min_examples))

  def probe_task(self, method, task, fractions, inputs, module=None, params=None):
    """Trains `task`'s head (fine-tuning `module` if given) at each label fraction;
    adds a row per test condition and metric."""
    mode = 'frozen' if module is None else 'finetune'
    examples = self.examples[task]
    trainer = self._probe(task, inputs['train'].shape[-1], module)
    for fraction, subset in self._subsets(task, fractions):
      start = time.time()
      init = trainer.init(self.config.seed, inputs['train'], params)
      best, val = trainer.fit(init, inputs['train'], subset, inputs['validation'],
                              examples['validation'], self.config.seed)
      clean = []
      for snr in self.snrs:
        predictions = trainer.predict(best, inputs['test'][snr], examples['test'])
        for task_name, metric, value in measure(task, predictions, examples['test']):
          self.rows.append(dict(method=method, mode=mode, task=task_name, metric=metric,
                                value=float(value), snr_db=snr, label_fraction=fraction,
                                num_train_examples=len(subset)))
          if snr is None:
            clean.append(f'{task_name} {metric} {value:.3f}')
      logging.info('%s %s %s, %g%% labels (%d examples): validation %.3f; clean test %s '
                   '(%.0f s)', method, mode, task, 100 * fraction, len(subset), val,
                   ', '.join(clean), time.time() - start)


def _frozen_inputs(suite, method, module, params):
  """Standardised features of train, validation and (per SNR) test clips."""
  clips = suite.clips
  if method in features.HANDCRAFTED:
    extract = lambda w: features.handcrafted_batch(w, method)
  else:
    features_fn = jax.jit(lambda p, x: module.apply({'params': p}, x)[0])
    extract = lambda w: features.encode(features_fn, params, features.windows(module, w))
  train_x, val_x = extract(clips['train']['waveform']), extract(clips['validation']['waveform'])
  test_x = {snr: extract(w) for snr, w in suite.test_waveforms.items()}
  train_x, val_x, *test = features.standardize(train_x, val_x, *test_x.values())
  return {'train': train_x, 'validation': val_x, 'test': dict(zip(test_x, test))}


def _finetune_inputs(suite, module):
  """The encoder's inputs for train, validation and (per SNR) test clips."""
  clips = suite.clips
  return {'train': features.windows(module, clips['train']['waveform']),
          'validation': features.windows(module, clips['validation']['waveform']),
          'test': {snr: features.windows(module, w) for snr, w in suite.test_waveforms.items()}}


def _check_methods(config):
  """Raises ValueError on a grid the suite cannot run, before any work."""
  finetune = set(config.finetune) & set(config.methods)
  frozen_only = finetune & {RANDOM, *features.HANDCRAFTED}
  if frozen_only:
    raise ValueError(f'cannot fine-tune {sorted(frozen_only)}: `{SUPERVISED}` is the '
                     'fine-tuned random encoder')
  unknown = (set(config.tasks) | set(config.finetune_tasks)) - set(TASKS)
  if unknown:
    raise ValueError(f'unknown speech tasks {sorted(unknown)}; known: {sorted(TASKS)}')
  for name in config.methods:
    if name not in (RANDOM, SUPERVISED, *features.HANDCRAFTED):
      method_config(config, name)


def _notes(config):
  """What results.md states about how its numbers were measured."""
  return (f'avsynth/{config.data.config}. Each BGRU probe ({config.probe.hidden} units per '
          'direction) trains on a class-stratified fraction of the train split (at most '
          f'{config.probe.steps} steps frozen, {config.finetune_probe.steps} fine-tuning), '
          "is selected on the clean validation split and scored on the test split's unseen "
          'speakers; white Gaussian noise is added to test audio only. Fine-tuning covers '
          f'{", ".join(config.finetune_tasks)} only.')


def run(config, workdir):
  """Runs the suite; writes WORKDIR/results.{json,md} and plots; returns the rows."""
  _check_methods(config)
  os.makedirs(workdir, exist_ok=True)
  for name in config.methods:
    if name not in (RANDOM, SUPERVISED, *features.HANDCRAFTED):
      pretrain(config, name, workdir)
  suite = _Suite(config)
  for method in config.methods:
    module = params = None
    if method not in features.HANDCRAFTED:
      module, params = audio_encoder(config, method, workdir, suite.clips['train']['waveform'][0])
    if method != SUPERVISED:
      inputs = _frozen_inputs(suite, method, module, params)
      for task in config.tasks:
        suite.probe_task(method, task, config.label_fractions, inputs)
    if method in config.finetune:
      inputs = _finetune_inputs(suite, module)
      for task in config.finetune_tasks:
        suite.probe_task(method, task, config.finetune_fractions, inputs, module, params)
    results.write(workdir, suite.rows, reference=dict(snr_db=None, label_fraction=1.0),
                  title='Speech suite', notes=_notes(config))
  return suite.rows
