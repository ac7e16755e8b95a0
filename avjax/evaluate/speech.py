"""The speech suite: audio features probed on talking heads (avsynth) or real speech.

  python -m avjax.evaluate --suite=speech --workdir=DIR [--preset=tiny]
  python -m avjax.evaluate --suite=speech --workdir=DIR --data=crema_d_av/audio \
      --manual_dir=/data/crema-d [--pretrain_data=lrw --pretrain_manual_dir=/data/lrw]

Data: the probes' dataset is `config.data` (--data, --manual_dir; default
avsynth/heads), pretrained methods train on `config.pretrain_data`
(--pretrain_data, --pretrain_manual_dir; default avsynth/heads, heads_tiny in
`tiny`), through `runs.run_config`. Clips of real datasets vary in length: a
split's waveforms are zero-padded to its longest clip (clips longer than
`config.max_clip_frames`, when set, are cropped to it), and each example reads
its own clip's frames only; encoders are given each clip's length, so the
padding changes none of its features.

Methods (`config.methods`, or --methods):
* `mfcc`, `logmel`: hand-crafted features (frozen; log-mel is off by default);
* `random`: a randomly initialised audio encoder shaped as `config.encoder_config`'s;
* `supervised`: that random encoder fine-tuned with the head, from scratch;
* any other name: a pretext task pretrained with `configs/NAME.py` in
  DIR/pretrain/NAME, its `audio_encoder` exported to DIR/encoders/NAME, then
  probed frozen and (if in `config.finetune`) fine-tuned.

Tasks, each where the dataset has its labels: `word` (each word's frames,
word_start..word_end, classified among the vocabulary; accuracy; avsynth,
LRW), `emotion` (per clip; accuracy and UAR; avsynth, CREMA-D, RAVDESS),
`affect` (per-frame arousal and valence; CCC over all test frames, rows
`arousal` and `valence`; avsynth). Class counts are the dataset's
(`pipeline.class_names`; avsynth's vocabulary for its words). `config.tasks`
() runs every task the dataset has; `config.finetune_tasks` () fine-tunes
on emotion where it runs, else on the first task that runs. A task named in
either that the dataset lacks is a ValueError, raised before any work.

Each head trains on a class-stratified `label_fraction` of the train split
(stratified by word, or by emotion for clip tasks; nested subsets), is
selected on the whole clean validation split, and is scored on the test
split's unseen speakers, clean and with white Gaussian noise at each of
`config.snrs_db` (noise on test audio only, over each clip's own samples, so
each head trains once per method, task and fraction). Fine-tuning, which
costs far more, runs for `config.finetune` methods on the fine-tuned tasks x
`config.finetune_fractions` only (default: supervised, recon and multitask on
emotion at every fraction, on avsynth).

Loudness: encoders standardise each waveform, which removes its level, while
MFCCs keep it in c0, and emotions differ in loudness (anger louder, sadness
softer). So that a score that comes from loudness alone shows as such, the
emotion probe (frozen) also runs on `energy` (each clip's log mean power over
its own samples, alone), `M+energy` (each frozen encoder's features, random
included, with that log energy appended as one more dimension on every frame,
standardised like the features) and `mfcc-c0` (MFCCs without c0), at
`config.loudness_fractions` of the labels (default 100% only: a head per
method, cheap beside the rest) and, as every frozen row, clean and at each
SNR (the energy of the noisy clip). () leaves these rows out.

Seeds: `run` is one seed, `config.seed`, which every run it makes takes
(pretraining through `method_config`, probes, label subsets, test noise, the
random encoder); `python -m avjax.evaluate --seeds=N` runs N of them
(`runs.run_seeds`). results.md compares (`results.compare`, with 2+ seeds)
each pretrained method with `random` and `mfcc`, recon (visual) with aot and
odd (audio-only), multitask with each of them, each `M+energy` with `M` and
with `energy`, `mfcc` with `mfcc-c0`, and each fine-tuned method with
`supervised`: at the reference conditions and at each SNR and label fraction.
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
from avjax import export
from avjax import tasks
from avjax import train
from avjax.data import ops
from avjax.data import pipeline
from avjax.data.synth import heads as synth_heads
from avjax.evaluate import checks
from avjax.evaluate import features
from avjax.evaluate import metrics
from avjax.evaluate import probe
from avjax.evaluate import results
from avjax.evaluate import runs

RANDOM, SUPERVISED = 'random', 'supervised'
VISUAL, MULTITASK, AUDIO_ONLY = 'recon', 'multitask', ('aot', 'odd')  # The paper's pretexts.
# name: (probe kind, the features its labels come from).
TASKS = {
    'word': ('classify', ('words', 'word_start', 'word_end')),
    'emotion': ('classify', ('emotion',)),
    'affect': ('regress', ('arousal', 'valence')),
}
PRESETS = ('default', 'tiny')
SPLITS = ('train', 'validation', 'test')  # What each head trains on, is selected on, scored on.
RUN_DIRS = ('pretrain', 'encoders')  # What `run` writes under its workdir besides results.
ENERGY = 'energy'  # The loudness rows' method: each clip's log energy alone.
_SPF = ops.SAMPLES_PER_FRAME


def get_config(preset='default'):
  """The suite's settings; `default` is sized for a 2-core CPU (README has the
  measured run), `tiny` (on avsynth/heads_tiny) takes a minute or two."""
  if preset not in PRESETS:
    raise ValueError(f'unknown preset {preset!r}; known: {PRESETS}')
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = dict(name='avsynth', config='heads', data_dir='', manual_dir='')  # Probed.
  config.pretrain_data = runs.avsynth('heads')  # What pretrained methods train on.
  # Also known: 'logmel'; any configs/NAME.py whose task has an `audio_encoder`.
  config.methods = ('mfcc', RANDOM, SUPERVISED, 'recon', 'aot', 'odd', 'multitask')
  config.finetune = (SUPERVISED, 'recon', 'multitask')  # Fine-tuned as well as frozen.
  config.tasks = ()  # (): every task the dataset has labels for.
  config.label_fractions = (0.01, 0.1, 1.0)
  config.min_examples = 8  # The smallest labelled subset.
  config.snrs_db = (20.0, 10.0, 5.0, 0.0)  # Besides clean.
  config.finetune_tasks = ()  # (): emotion where it runs, else the first task that runs.
  config.finetune_fractions = (0.01, 0.1, 1.0)
  config.loudness_fractions = (1.0,)  # Of the loudness rows (emotion, frozen); (): none.
  config.max_clip_frames = 0  # Longer clips are cropped to it; 0: none are.
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
    config.data.config = config.pretrain_data.config = 'heads_tiny'
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


def dataset_tasks(data_config):
  """The tasks whose labels the dataset has, in TASKS order (known before it is prepared)."""
  names = set(pipeline.unprepared_builder(data_config).info.features)
  return tuple(task for task, (_, needs) in TASKS.items() if set(needs) <= names)


def resolve_tasks(config, available):
  """(frozen tasks, fine-tuned tasks) on a dataset that has the tasks `available`.

  `config.tasks` () is every task in `available`; `config.finetune_tasks` ()
  is emotion where it runs, else the first task that runs. A named task the
  dataset lacks raises ValueError.
  """
  unknown = (set(config.tasks) | set(config.finetune_tasks)) - set(TASKS)
  if unknown:
    raise ValueError(f'unknown speech tasks {sorted(unknown)}; known: {sorted(TASKS)}')
  name = runs.dataset_name(config.data)
  if not available:
    raise ValueError(f'dataset {name} has the labels of no speech task (' + '; '.join(
        f'{t}: {", ".join(needs)}' for t, (_, needs) in TASKS.items()) + ')')
  for task in (*config.tasks, *config.finetune_tasks):
    if task not in available:
      raise ValueError(f'speech task {task!r} needs the features {list(TASKS[task][1])}, which '
                       f'dataset {name} lacks; its tasks: {list(available)}')
  frozen = tuple(config.tasks) or available
  finetune = tuple(config.finetune_tasks) or ('emotion' if 'emotion' in frozen else frozen[0],)
  return frozen, finetune


def num_outputs(data_config, task):
  """How many classes (or regressed values) `task` has on the dataset."""
  if task == 'affect':
    return 2
  if task == 'word' and data_config.name == 'avsynth':
    return len(synth_heads.VOCABULARY)  # Its words are ids into its vocabulary.
  return len(pipeline.class_names(data_config, task))


def _pad(arrays, size):
  """[N, size, ...]: each array, zero-padded to `size` along its first axis."""
  out = np.zeros((len(arrays), size) + arrays[0].shape[1:], arrays[0].dtype)
  for row, a in zip(out, arrays):
    row[:len(a)] = a
  return out


def _clip(example, max_frames):
  """An example's float waveform, cut to whole frames (at most `max_frames`, if set),
  and its speech labels within them."""
  audio = ops.to_float(example['audio'])
  frames = len(audio) // _SPF
  frames = min(frames, max_frames) if max_frames else frames
  clip = dict(waveform=audio[:frames * _SPF])
  if 'emotion' in example:
    clip['emotion'] = example['emotion']
  if 'arousal' in example:
    clip['affect'] = np.stack([example['arousal'], example['valence']], -1)[:frames]
  if 'words' in example:
    keep = np.asarray(example['word_start']) < frames
    clip.update(words=np.asarray(example['words'])[keep],
                word_start=np.asarray(example['word_start'])[keep],
                word_end=np.minimum(np.asarray(example['word_end'])[keep], frames))
  return clip


def load_clips(data_config, split, max_frames=0):
  """A split's waveforms [N, S] (zero-padded to its longest clip), their `length` [N] in
  frames, and the speech labels it has, as numpy arrays (words ragged, per-frame affect
  padded as the waveforms). Clips are cut to `max_frames` frames when it is set."""
  source = pipeline.load_source(data_config, split)
  clips = [_clip(source[i], max_frames) for i in range(len(source))]
  if not clips:
    raise ValueError(f'the {split} split of dataset {runs.dataset_name(data_config)} is empty')
  length = np.array([len(c['waveform']) // _SPF for c in clips], np.int32)
  num_frames = int(length.max())
  out = dict(waveform=_pad([c['waveform'] for c in clips], num_frames * _SPF), length=length)
  if 'emotion' in clips[0]:
    out['emotion'] = np.array([c['emotion'] for c in clips], np.int32)
  if 'affect' in clips[0]:
    out['affect'] = _pad([c['affect'] for c in clips], num_frames)
  if 'words' in clips[0]:
    out.update({k: [c[k] for c in clips] for k in ('words', 'word_start', 'word_end')})
  return out


def max_word_frames(clips):
  """The longest word's frames over the splits' `clips` ({split: load_clips(...)})."""
  return max(int(np.max(e - s)) for c in clips.values()
             for s, e in zip(c['word_start'], c['word_end']) if len(s))


def word_examples(clips, max_frames):
  """One example per spoken word: its frames word_start..word_end (at most max_frames)."""
  rows = [(i, s, e, w) for i, ws in enumerate(clips['words'])
          for w, s, e in zip(ws, clips['word_start'][i], clips['word_end'][i])]
  clip, start, end, word = (np.array(col, np.int32) for col in zip(*rows))
  last = clips['length'][clip][:, None] - 1
  index = np.minimum(start[:, None] + np.arange(max_frames, dtype=np.int32), last)
  length = np.clip(end - start, 1, max_frames).astype(np.int32)
  return probe.Examples(clip, index, length, word)


def task_examples(task, clips, max_word):
  """`task`'s examples of a split's clips (`max_word`: frames read per word)."""
  if task == 'word':
    return word_examples(clips, max_word)
  return probe.whole_clips(clips['length'], clips['emotion' if task == 'emotion' else 'affect'])


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
  """configs/NAME.py's config under the suite's pretraining preset, step count and seed,
  on `config.pretrain_data` (`runs.run_config`)."""
  suite = ml_collections.ConfigDict(dict(
      seed=config.seed, preset=config.pretrain.preset,
      total_steps=config.pretrain.total_steps.to_dict(),
      configs_dir=config.configs_dir, data=dict(data_dir=config.data.data_dir)))
  try:
    return runs.run_config(suite, name, config.pretrain_data)
  except ValueError as e:
    raise ValueError(f'method {name!r} has no usable pretraining config: {e}') from e


def pretrain(config, name, workdir):
  """Pretrains (or resumes) method `name` in WORKDIR/pretrain/NAME; exports to encoders/NAME."""
  run_dir = os.path.join(workdir, 'pretrain', name)
  logging.info('pretraining %s in %s', name, run_dir)
  train.train_and_evaluate(method_config(config, name), run_dir)
  export.export_encoders(run_dir, os.path.join(workdir, 'encoders', name))


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
  return module, checkpoint.load_exported_params(export_dir, 'audio_encoder')


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
    self.clips = {s: load_clips(config.data, s, config.max_clip_frames) for s in SPLITS}
    task_names = set(config.tasks) | set(config.finetune_tasks)
    max_word = max_word_frames(self.clips) if 'word' in task_names else 0
    self.examples = {t: {s: task_examples(t, c, max_word) for s, c in self.clips.items()}
                     for t in task_names}
    self.num_outputs = {t: num_outputs(config.data, t) for t in task_names}
    self.snrs = (None,) + tuple(config.snrs_db)
    test = self.clips['test']
    self.test_waveforms = {snr: features.with_white_noise(
        test['waveform'], snr, config.seed, test['length'] * _SPF) for snr in self.snrs}
    self.rows = []
    self._probes = {}

  def _probe(self, task, width, module):
    key = (task, width, _describe(module))
    if key not in self._probes:
      kind, num_outputs = TASKS[task][0], self.num_outputs[task]
      if module is None:
        self._probes[key] = probe.Probe(kind, num_outputs, self.config.probe)
      else:
        apply = lambda p, x: module.apply({'params': p}, *x)  # x: (windows, lengths).
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
    trainer = self._probe(task, jax.tree.leaves(inputs['train'])[0].shape[-1], module)
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
                                seed=self.config.seed, num_train_examples=len(subset)))
          if snr is None:
            clean.append(f'{task_name} {metric} {value:.3f}')
      logging.info('%s %s %s, %g%% labels (%d examples): validation %.3f; clean test %s '
                   '(%.0f s)', method, mode, task, 100 * fraction, len(subset), val,
                   ', '.join(clean), time.time() - start)


def _frozen_inputs(suite, method, module, params):
  """Standardised features of train, validation and (per SNR) test clips."""
  clips = suite.clips
  if method in features.HANDCRAFTED:
    extract = lambda w, _: features.handcrafted_batch(w, method)
  else:  # Each clip read with its length: padding changes none of its features.
    features_fn = jax.jit(lambda p, x: module.apply({'params': p}, *x)[0])
    extract = lambda w, n: features.encode(features_fn, params, (features.windows(module, w), n))
  train_x = extract(clips['train']['waveform'], clips['train']['length'])
  val_x = extract(clips['validation']['waveform'], clips['validation']['length'])
  test_x = {snr: extract(w, clips['test']['length']) for snr, w in suite.test_waveforms.items()}
  train_x, val_x, *test = features.standardize(train_x, val_x, *test_x.values(),
                                               lengths=clips['train']['length'])
  return {'train': train_x, 'validation': val_x, 'test': dict(zip(test_x, test))}


def _finetune_inputs(suite, module):
  """The encoder's inputs, (windows, each clip's length), of train, validation and (per SNR)
  test clips."""
  clips = suite.clips
  inputs = lambda w, split: (features.windows(module, w), clips[split]['length'])
  return {'train': inputs(clips['train']['waveform'], 'train'),
          'validation': inputs(clips['validation']['waveform'], 'validation'),
          'test': {snr: inputs(w, 'test') for snr, w in suite.test_waveforms.items()}}


def clip_log_energy(waveforms, lengths):
  """[N]: each clip's log mean power over its own first `lengths` [N] samples."""
  return np.array([np.log(np.mean(np.square(w[:n], dtype=np.float64)) + 1e-10)
                   for w, n in zip(waveforms, lengths)], np.float32)


def _map_inputs(fn, *inputs):
  """`fn` of the train, validation and each test condition's entries of `inputs`."""
  pick = lambda split: fn(*(x[split] for x in inputs))
  return {'train': pick('train'), 'validation': pick('validation'),
          'test': {snr: fn(*(x['test'][snr] for x in inputs)) for snr in inputs[0]['test']}}


def _energy_inputs(suite):
  """The `energy` method's frozen inputs: each clip's log energy (`clip_log_energy`, of
  the noisy clip at each SNR) on each of its frames [N, T, 1], standardised."""
  clips = suite.clips
  frames = lambda w, split: np.broadcast_to(
      clip_log_energy(w, clips[split]['length'] * _SPF)[:, None, None],
      (len(w), w.shape[1] // _SPF, 1))
  train = frames(clips['train']['waveform'], 'train')
  validation = frames(clips['validation']['waveform'], 'validation')
  test = {snr: frames(w, 'test') for snr, w in suite.test_waveforms.items()}
  train, validation, *scaled = features.standardize(train, validation, *test.values(),
                                                    lengths=clips['train']['length'])
  return {'train': train, 'validation': validation, 'test': dict(zip(test, scaled))}


def without_c0(mfcc):
  """MFCC frames [..., hops * C] (`features.handcrafted`) without each hop's c0."""
  hops = _SPF // (ops.SAMPLE_RATE // 100)  # 10 ms hops per video frame.
  return mfcc.reshape(mfcc.shape[:-1] + (hops, -1))[..., 1:].reshape(mfcc.shape[:-1] + (-1,))


def loudness_inputs(method, inputs, energy):
  """{name: frozen inputs} of the loudness rows a method's frozen `inputs` give:
  `mfcc-c0` for mfcc, `METHOD+energy` (`energy` appended) for an encoder's.

  Standardising is per dimension, so appending the standardised energy to the
  standardised features equals standardising both together.
  """
  if method == 'mfcc':
    return {'mfcc-c0': _map_inputs(without_c0, inputs)}
  if method in features.HANDCRAFTED:
    return {}
  return {f'{method}+{ENERGY}': _map_inputs(lambda x, e: np.concatenate([x, e], -1),
                                            inputs, energy)}


def loudness_rows(config):
  """Whether the suite (its tasks resolved, `with_tasks`) runs the loudness rows."""
  return 'emotion' in config.tasks and bool(config.loudness_fractions)


def comparisons(config):
  """The (method, mode) pairs results.md compares (module docstring)."""
  frozen = lambda m: (m, 'frozen')
  pretrained = pretrained_methods(config)
  pairs = [(frozen(m), frozen(base)) for m in pretrained
           for base in (RANDOM, 'mfcc') if base in config.methods]
  pairs += [(frozen(VISUAL), frozen(m)) for m in AUDIO_ONLY
            if VISUAL in pretrained and m in pretrained]
  pairs += [(frozen(MULTITASK), frozen(m)) for m in (VISUAL, *AUDIO_ONLY)
            if MULTITASK in pretrained and m in pretrained]
  if loudness_rows(config):
    encoders = [m for m in config.methods if m not in (SUPERVISED, *features.HANDCRAFTED)]
    pairs += [(frozen(f'{m}+{ENERGY}'), frozen(m)) for m in encoders]
    pairs += [(frozen(f'{m}+{ENERGY}'), frozen(ENERGY)) for m in encoders]
    pairs += [(frozen('mfcc'), frozen('mfcc-c0'))] if 'mfcc' in config.methods else []
  if SUPERVISED in config.finetune and SUPERVISED in config.methods:
    pairs += [((m, 'finetune'), (SUPERVISED, 'finetune')) for m in pretrained_methods(config)
              if m in config.finetune]
  return pairs


def pretrained_methods(config):
  """The methods that pretrain a configs/NAME.py, in `config.methods` order."""
  return [m for m in config.methods if m not in (RANDOM, SUPERVISED, *features.HANDCRAFTED)]


def _check_methods(config):
  """Raises ValueError on a grid of methods the suite cannot run, before any work."""
  finetune = set(config.finetune) & set(config.methods)
  frozen_only = finetune & {RANDOM, *features.HANDCRAFTED}
  if frozen_only:
    raise ValueError(f'cannot fine-tune {sorted(frozen_only)}: `{SUPERVISED}` is the '
                     'fine-tuned random encoder')
  for name in pretrained_methods(config):
    method_config(config, name)


def with_tasks(config):
  """A copy of `config` with its tasks and fine-tuned tasks named (`resolve_tasks` on the
  dataset's); ValueError where the dataset lacks one."""
  frozen, finetune = resolve_tasks(config, dataset_tasks(config.data))
  config = config.copy_and_resolve_references()
  config.tasks, config.finetune_tasks = frozen, finetune
  return config


def check_data(config):
  """ValueError, before any training, unless `config.data` has the splits and class names
  the probes of `config.tasks` read and each pretraining run's dataset what it reads
  (`checks`); prepares the datasets. Its tasks' features: `with_tasks`."""
  checks.check_splits(config.data, SPLITS, 'the speech probes')
  for task in set(config.tasks) | set(config.finetune_tasks):
    num_outputs(config.data, task)
  for name in pretrained_methods(config):
    checks.check_run(method_config(config, name), f'pretraining {name}')


def _notes(config):
  """What results.md states about how its numbers were measured."""
  pretrained = pretrained_methods(config)
  pretraining = (f'; {", ".join(pretrained)} pretrained on {runs.dataset_name(config.pretrain_data)}'
                 if pretrained else '')
  cropped = f', cropped at {config.max_clip_frames} frames' if config.max_clip_frames else ''
  return (f'Probed on {runs.dataset_name(config.data)}{pretraining}. Clips are zero-padded to the '
          f"split's longest{cropped}; each example reads its own frames. Each BGRU probe "
          f'({config.probe.hidden} units per direction) trains on a class-stratified fraction '
          f'of the train split (at most {config.probe.steps} steps frozen, '
          f'{config.finetune_probe.steps} fine-tuning), is selected on the clean validation '
          "split and scored on the test split's unseen speakers; white Gaussian noise is added "
          f'to test audio only. Fine-tuning covers {", ".join(config.finetune_tasks)} only.'
          + _loudness_note(config))


def _loudness_note(config):
  """What results.md says of the loudness rows, if any ran."""
  if not loudness_rows(config):
    return ''
  fractions = ', '.join(results.condition_label('label_fraction', f)
                        for f in config.loudness_fractions)
  return (f' Loudness rows (emotion, frozen, {fractions} of the labels): `{ENERGY}` is each '
          "clip's log energy alone, `M+energy` M's features with it appended, `mfcc-c0` "
          'MFCCs without c0.')


def run(config, workdir):
  """Runs the suite; writes WORKDIR/results.{json,md} and plots; returns the rows."""
  config = with_tasks(config)
  _check_methods(config)
  check_data(config)
  os.makedirs(workdir, exist_ok=True)
  for name in pretrained_methods(config):
    pretrain(config, name, workdir)
  suite = _Suite(config)
  energy = _energy_inputs(suite) if loudness_rows(config) else None
  if energy:
    suite.probe_task(ENERGY, 'emotion', config.loudness_fractions, energy)
  for method in config.methods:
    module = params = None
    if method not in features.HANDCRAFTED:
      module, params = audio_encoder(config, method, workdir, suite.clips['train']['waveform'][0])
    if method != SUPERVISED:
      inputs = _frozen_inputs(suite, method, module, params)
      for task in config.tasks:
        suite.probe_task(method, task, config.label_fractions, inputs)
      for name, extra in (loudness_inputs(method, inputs, energy) if energy else {}).items():
        suite.probe_task(name, 'emotion', config.loudness_fractions, extra)
    if method in config.finetune:
      inputs = _finetune_inputs(suite, module)
      for task in config.finetune_tasks:
        suite.probe_task(method, task, config.finetune_fractions, inputs, module, params)
    results.write(workdir, suite.rows, reference=dict(snr_db=None, label_fraction=1.0),
                  title='Speech suite', notes=_notes(config), comparisons=comparisons(config))
  return suite.rows
