"""The speaker suite: disentangle's speaker and content embeddings on unseen avsynth speakers.

  python -m avjax.evaluate --suite=speaker --workdir=DIR [--preset=tiny]

1. pretraining: configs/disentangle.py in each of `config.variants` (content,
   identity, both, disentangle) in DIR/pretrain/VARIANT, its encoders
   exported to DIR/encoders/VARIANT.
2. verification, on the test split's unseen speakers: an utterance's
   embedding is the unit-norm mean of `crops` evenly spaced crops of
   `crop_frames` frames, each the time average of the audio stream's
   per-step embeddings, from the identity head (task `verification`) and
   from the content head (`verification_content`). The builder's trial list
   is scored by cosine: EER and minDCF (unit costs) at p_target 0.01 and
   0.05. Identification (closed set of the test speakers, cross-session):
   each speaker enrolled on the utterances of its first session (lowest
   track id), the others assigned to the nearest speaker mean; chance is
   1 / speakers. Baselines: MFCC (each crop's mean and standard deviation of
   13 coefficients) and a random network of the variants' shape.
3. disentanglement probes (task `probe`): closed-form ridge classifiers
   (`linear_probe.ridge_accuracy`) on frozen per-step embeddings of whole
   utterances, from the identity and from the content head: the viseme at
   each step and each word (the mean over its frames), fitted on the train
   split and scored on the test split; the speaker (utterance mean), fitted
   on the train split and scored on the validation split (other clips of the
   same 48 speakers). `chance` rows: the most frequent fitted class.
4. limited labels: configs/speaker.py (supervised speaker classification
   with the same audio stream) from scratch (`supervised`) and from
   DIR/encoders/VARIANT for each of `finetune_from` that was pretrained
   (`VARIANT+finetune`), on class-stratified `label_fractions` of the train
   split's speaker labels; verification and identification as in 2.

Plots: det.png (DET curves of the identity heads), projection.png (the test
utterances' identity embeddings of `projected` methods, PCA to 2-D, coloured
by speaker).
"""

import os

import jax
import ml_collections
import numpy as np
from absl import logging

from avjax import checkpoint
from avjax.data import ops
from avjax.data import pipeline
from avjax.evaluate import linear_probe
from avjax.evaluate import results
from avjax.evaluate import runs
from avjax.evaluate import verification
from avjax.tasks import disentangle

VARIANTS = ('content', 'identity', 'both', 'disentangle')
PRESETS = ('default', 'tiny')
P_TARGETS = (0.01, 0.05)
SUPERVISED = 'supervised'


def get_config(preset='default'):
  """The suite's settings; `default` is sized for a 2-core CPU (README has the
  measured run), `tiny` (heads_tiny) takes a few minutes."""
  if preset not in PRESETS:
    raise ValueError(f'unknown preset {preset!r}; known: {PRESETS}')
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = dict(data_dir='', heads='heads')
  config.methods = VARIANTS  # Disentangle variants pretrained and scored.
  config.finetune_from = ('both', 'disentangle')  # Fine-tuned with labels, if pretrained.
  config.configs_dir = ''  # '' = the repository's configs/.
  config.preset = ''  # The argument of each configs/NAME.py.
  config.total_steps = dict(disentangle=0, speaker=0)  # 0: the config's own.
  config.label_fractions = (0.01, 0.1, 1.0)
  config.crops = 5  # Per test utterance, evenly spaced.
  config.crop_frames = 20  # 0.8 s each.
  config.batch_size = 64  # Of the embedding passes.
  config.max_probe_steps = 20_000  # Train-split steps a viseme probe is fitted on.
  config.projected = ('both', 'disentangle', SUPERVISED)  # Drawn in projection.png.
  if preset == 'tiny':
    config.data.heads = 'heads_tiny'
    config.preset = 'tiny'
    config.methods = ('disentangle',)
    config.total_steps = dict(disentangle=2, speaker=2)
    config.label_fractions = (0.5,)
    config.crops = 2
    config.crop_frames = 10
    config.batch_size = 8
    config.projected = ('disentangle',)
  return config


# ---- embeddings ----

def heads_data(config):
  """The `config.data` of the suite's avsynth heads preset."""
  return ml_collections.ConfigDict(dict(name='avsynth', config=config.data.heads,
                                        data_dir=config.data.data_dir))


def load_split(config, split):
  """{'audio', 'mel' [N] (waveform, `log_mel_features`), 'index', 'speaker', 'track' [N],
  'viseme' [N, T], 'words' [(word, start, end)] per utterance} of a heads split, in
  record order."""
  source = pipeline.load_source(heads_data(config), split)
  clips = [source[i] for i in range(len(source))]
  return dict(
      audio=[ops.to_float(c['audio']) for c in clips],
      mel=[disentangle.log_mel_features(c['audio']) for c in clips],
      index=np.array([c['index'] for c in clips]),
      speaker=np.array([c['speaker'] for c in clips]),
      track=np.array([c['track'] for c in clips]),
      viseme=np.stack([c['viseme'] for c in clips]),
      words=[list(zip(c['words'], c['word_start'], c['word_end'])) for c in clips])


def crop_starts(num_steps, crop_frames, crops):
  """`crops` evenly spaced starts (in video frames) of crops inside `num_steps`."""
  if num_steps < crop_frames:
    raise ValueError(f'utterances of {num_steps} frames are shorter than a '
                     f'{crop_frames}-frame crop')
  return np.linspace(0, num_steps - crop_frames, crops).round().astype(int)


def crops_of(mels, crop_frames, crops):
  """[N, crops, 4 crop_frames, 40]: evenly spaced crops of each utterance's log-mel."""
  size = disentangle.MELS_PER_FRAME * crop_frames
  num_steps = min(len(m) for m in mels) // disentangle.MELS_PER_FRAME
  starts = disentangle.MELS_PER_FRAME * crop_starts(num_steps, crop_frames, crops)
  return np.stack([[m[s:s + size] for s in starts] for m in mels])


def step_embeddings(encoder, params, inputs, batch_size):
  """(identity, content) per-step embeddings [N, T, D] of log-mel inputs [N, 4 T, 40]."""
  apply = jax.jit(lambda p, x: (lambda out: (out[0], out[1]['content']))(
      encoder.apply({'params': p}, x)))
  outputs = [jax.device_get(apply(params, inputs[i:i + batch_size]))
             for i in range(0, len(inputs), batch_size)]
  return tuple(np.concatenate(x) for x in zip(*outputs))


def utterance_embeddings(encoder, params, crops, batch_size):
  """{'identity', 'content'}: [N, D] crop-averaged embeddings of crops [N, C, 4 T, 40]."""
  n, c = crops.shape[:2]
  heads = step_embeddings(encoder, params, crops.reshape((n * c,) + crops.shape[2:]), batch_size)
  return {name: verification.average_crops(h.mean(axis=1).reshape(n, c, -1))
          for name, h in zip(('identity', 'content'), heads)}


def mfcc_embeddings(waveforms, crop_frames, crops):
  """[N, 26]: the crop-averaged mean and standard deviation of 13 MFCCs over each crop."""
  size = ops.SAMPLES_PER_FRAME * crop_frames
  num_steps = min(len(w) for w in waveforms) // ops.SAMPLES_PER_FRAME
  starts = ops.SAMPLES_PER_FRAME * crop_starts(num_steps, crop_frames, crops)
  stats = lambda m: np.concatenate([m.mean(0), m.std(0)])
  return verification.average_crops(np.stack([
      [stats(ops.mfcc(w[s:s + size])) for s in starts] for w in waveforms]))


# ---- scores ----

def trial_positions(rows, index):
  """Trial rows (label, index_a, index_b) naming examples by their `index` feature ->
  (labels, a, b), a and b positions in record order of the split whose `index` [N] is
  given. ValueError if a trial names an example the split lacks."""
  labels, a, b = np.asarray(rows).T
  position = dict(zip(np.asarray(index).tolist(), range(len(index))))
  missing = sorted(set(a.tolist() + b.tolist()) - set(position))
  if missing:
    raise ValueError(f'trials name examples {missing[:5]} that the split lacks')
  return labels, np.array([position[i] for i in a]), np.array([position[i] for i in b])


def trials(config, index):
  """The builder's test trial list as `trial_positions` of the test split's `index`."""
  builder = pipeline.prepared_builder(heads_data(config))
  try:
    return trial_positions(builder.info.metadata['trials'], index)
  except ValueError as e:
    raise ValueError(f'{builder.info.full_name}: {e}') from e


def first_session_mask(speakers, tracks):
  """[N] bool: the utterances of each speaker's first (lowest-id) track."""
  first = {s: tracks[speakers == s].min() for s in np.unique(speakers)}
  return np.array([t == first[s] for s, t in zip(speakers, tracks)])


def verification_rows(method, mode, embeddings, test, trial_list, task='verification',
                      label_fraction=1.0):
  """Rows of EER, minDCF at each of P_TARGETS and identification accuracy; and the
  trials' scores."""
  labels, a, b = trial_list
  scores = verification.cosine_scores(embeddings[a], embeddings[b])
  row = lambda metric, value: runs.row(method, mode, task, metric, value, label_fraction)
  rows = [row('eer', verification.eer(scores, labels)[0])]
  rows += [row(f'min_dcf_{p:g}', verification.min_dcf(scores, labels, p)[0]) for p in P_TARGETS]
  enrol = first_session_mask(test['speaker'], test['track'])
  rows.append(row('identification', verification.identification_accuracy(
      embeddings, test['speaker'], enrol)))
  return rows, scores


def word_features(steps, words):
  """(features [W, D], word ids [W]): each word's mean per-step embedding."""
  pairs = [(x[s:max(e, s + 1)].mean(axis=0), w)
           for x, ws in zip(steps, words) for w, s, e in ws]
  return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def majority_accuracy(train_y, test_y):
  """Accuracy of always predicting the most frequent class of `train_y`."""
  classes, counts = np.unique(train_y, return_counts=True)
  return float(np.mean(np.asarray(test_y) == classes[np.argmax(counts)]))


def probe_sets(steps, data, max_steps, seed):
  """{target: (train x, train y, test x, test y)} of one head's per-step embeddings
  `steps` {split: [N, T, D]}: viseme (per step), word, speaker."""
  rng = np.random.default_rng(seed)
  train, test = steps['train'], steps['test']
  flat = lambda x: x.reshape(-1, x.shape[-1])
  visemes = data['train']['viseme'][:, :train.shape[1]].reshape(-1)
  keep = np.flatnonzero(visemes >= 0)
  keep = np.sort(rng.choice(keep, min(max_steps, len(keep)), replace=False))
  test_visemes = data['test']['viseme'][:, :test.shape[1]].reshape(-1)
  test_keep = test_visemes >= 0
  return {
      'viseme': (flat(train)[keep], visemes[keep], flat(test)[test_keep],
                 test_visemes[test_keep]),
      'word': word_features(train, data['train']['words'])
              + word_features(test, data['test']['words']),
      'speaker': (train.mean(axis=1), data['train']['speaker'],
                  steps['validation'].mean(axis=1), data['validation']['speaker']),
  }


def probe_rows(method, encoder, params, data, config):
  """Rows of each target probed from the identity and from the content head."""
  per_split = {split: step_embeddings(encoder, params, np.stack(d['mel']), config.batch_size)
               for split, d in data.items()}
  rows = []
  for index, head in enumerate(('identity', 'content')):
    steps = {split: heads[index] for split, heads in per_split.items()}
    for target, sets in probe_sets(steps, data, config.max_probe_steps, config.seed).items():
      rows.append(runs.row(method, 'frozen', 'probe', f'{target}_from_{head}',
                           linear_probe.ridge_accuracy(*sets)))
  return rows


def chance_rows(data):
  """`chance` rows of each probe target: the most frequent fitted class."""
  dummy = {split: np.zeros(d['viseme'].shape + (1,)) for split, d in data.items()}
  return [runs.row('chance', 'baseline', 'probe', f'{target}_from_{head}',
                   majority_accuracy(sets[1], sets[3]))
          for target, sets in probe_sets(dummy, data, 10**9, 0).items()
          for head in ('identity', 'content')]


# ---- plots ----

def plot_det(curves, path):
  """DET curves {name: (scores, labels)} on normal-deviate axes; a PNG."""
  import matplotlib  # Imported here: only plotting needs it.
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt
  from scipy import stats
  ticks = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9])
  fig, ax = plt.subplots(figsize=(5, 5))
  deviate = lambda p: stats.norm.ppf(np.clip(p, 1e-3, 1 - 1e-3))
  for name, (scores, labels) in curves.items():
    far, frr = verification.det_curve(scores, labels)
    eer = verification.eer(scores, labels)[0]
    ax.plot(deviate(far), deviate(frr), label=f'{name} (EER {100 * eer:.1f}%)')
  ax.plot(stats.norm.ppf([1e-3, 0.95]), stats.norm.ppf([1e-3, 0.95]), 'k:', linewidth=0.8)
  ax.set_xticks(stats.norm.ppf(ticks), [f'{100 * t:g}' for t in ticks])
  ax.set_yticks(stats.norm.ppf(ticks), [f'{100 * t:g}' for t in ticks])
  ax.set(xlabel='false acceptance (%)', ylabel='false rejection (%)',
         xlim=stats.norm.ppf([0.005, 0.95]), ylim=stats.norm.ppf([0.005, 0.95]),
         title='Speaker verification, unseen speakers')
  ax.grid(alpha=0.3)
  ax.legend(fontsize='small')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def pca_2d(x):
  """[N, D] -> [N, 2]: the projection on the two leading principal components."""
  centred = x - x.mean(axis=0)
  return centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T


def plot_projection(embeddings, speakers, path):
  """A panel per method {name: [N, D]}: 2-D PCA of the embeddings, coloured by speaker."""
  import matplotlib  # Imported here: only plotting needs it.
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt
  fig, axes = plt.subplots(1, len(embeddings), squeeze=False,
                           figsize=(4.2 * len(embeddings), 4.2))
  ids = np.unique(speakers, return_inverse=True)[1]
  for ax, (name, x) in zip(axes[0], embeddings.items()):
    points = pca_2d(x)
    ax.scatter(points[:, 0], points[:, 1], c=ids, cmap='tab20', s=9)
    ax.set(title=f'{name}: identity embeddings', xticks=[], yticks=[])
  fig.suptitle('Test utterances (unseen speakers), PCA; colour = speaker', fontsize='medium')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


# ---- the suite ----

def pretrain(config, variant, workdir):
  """Trains (or resumes) configs/disentangle.py:variant=VARIANT in WORKDIR/pretrain/VARIANT
  and exports it to WORKDIR/encoders/VARIANT; returns (method config, task, params)."""
  arg = ','.join(filter(None, (config.preset, f'variant={variant}')))
  suite = ml_collections.ConfigDict(dict(config.to_dict(), preset=arg))
  method = runs.run_config(suite, 'disentangle', runs.avsynth(config.data.heads))
  run_dir = os.path.join(workdir, 'pretrain', variant)
  task, params = runs.train_run(method, run_dir)
  checkpoint.export_encoders(run_dir, os.path.join(workdir, 'encoders', variant))
  return method, task, params


def finetune(config, name, init, fraction, workdir):
  """Trains (or resumes) configs/speaker.py on `fraction` of the labels, its encoder
  from WORKDIR/encoders/INIT ('' = from scratch); returns (task, params)."""
  method = runs.run_config(config, 'speaker', runs.avsynth(config.data.heads), {
      'data.label_fraction': fraction,
      'speaker.init_from': os.path.join(workdir, 'encoders', init) if init else ''})
  return runs.train_run(method, os.path.join(workdir, 'speaker', f'{name}_{fraction:g}'))


def _notes(config, steps):
  return (f'avsynth/{config.data.heads}: disentangle {max(steps, default=0)} steps per '
          "variant. Test speakers are unseen in training; verification scores the builder's "
          f'trial list by cosine of {config.crops}-crop averaged embeddings '
          f'({config.crop_frames} frames a crop); identification enrols each test speaker on '
          'its first session. Probes: ridge classifiers on frozen embeddings (viseme, word: '
          'train -> test split; speaker: train -> validation split); chance = the most '
          'frequent class.')


def run(config, workdir):
  """Runs the suite; writes WORKDIR/results.{json,md} and plots; returns the rows."""
  unknown = set(config.methods) - set(VARIANTS)
  if unknown:
    raise ValueError(f'unknown disentangle variants {sorted(unknown)}; known: {VARIANTS}')
  os.makedirs(workdir, exist_ok=True)
  data = {split: load_split(config, split) for split in ('train', 'validation', 'test')}
  test = data['test']
  trial_list = trials(config, test['index'])
  test_crops = crops_of(test['mel'], config.crop_frames, config.crops)
  rows, curves, projected, steps = chance_rows(data), {}, {}, []

  def score(method, mode, encoder, params, label_fraction=1.0, heads=('identity', 'content')):
    embeddings = utterance_embeddings(encoder, params, test_crops, config.batch_size)
    for head in heads:
      task = 'verification' if head == 'identity' else 'verification_content'
      new, scores = verification_rows(method, mode, embeddings[head], test, trial_list, task,
                                      label_fraction)
      rows.extend(new)
      if head == 'identity' and label_fraction == 1.0:
        curves[method] = (scores, trial_list[0])
        if method in config.projected:
          projected[method] = embeddings[head]

  def write():
    if curves:
      plot_det(curves, os.path.join(workdir, 'det.png'))
    if projected:
      plot_projection(projected, test['speaker'], os.path.join(workdir, 'projection.png'))
    results.write(workdir, rows, reference=dict(snr_db=None, label_fraction=1.0),
                  title='Speaker suite', notes=_notes(config, steps), by_task=True,
                  images=[n for n, c in (('det.png', curves), ('projection.png', projected)) if c])

  new, scores = verification_rows(
      'mfcc', 'baseline', mfcc_embeddings(test['audio'], config.crop_frames, config.crops),
      test, trial_list)
  rows.extend(new)
  curves['mfcc'] = (scores, trial_list[0])
  for variant in config.methods:
    method, task, params = pretrain(config, variant, workdir)
    steps.append(method.total_steps)
    if 'random' not in curves:  # A random audio stream of the variants' shape.
      random_params = task.audio.init(jax.random.key(config.seed), test_crops[:1, 0])['params']
      score('random', 'baseline', task.audio, random_params)
      rows.extend(probe_rows('random', task.audio, random_params, data, config))
    score(variant, 'frozen', task.audio, params['speaker_encoder'])
    rows.extend(probe_rows(variant, task.audio, params['speaker_encoder'], data, config))
    write()
  inits = [(SUPERVISED, '')] + [(f'{v}+finetune', v) for v in config.finetune_from
                                if v in config.methods]
  for name, init in inits:
    for fraction in config.label_fractions:
      task, params = finetune(config, name, init, fraction, workdir)
      score(name, 'finetune', task.encoder, params['speaker_encoder'], fraction,
            heads=('identity',))
      write()
  return rows
