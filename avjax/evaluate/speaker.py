"""The speaker suite: disentangle's speaker and content embeddings on unseen speakers.

  python -m avjax.evaluate --suite=speaker --workdir=DIR [--preset=tiny]
  python -m avjax.evaluate --suite=speaker --workdir=DIR --data=voxceleb1 \
      --manual_dir=/data/voxceleb1 --pretrain_data=voxceleb2 --pretrain_manual_dir=/data/voxceleb2

Data: speakers are verified on `config.data` (--data, --manual_dir; default
avsynth/heads, heads_tiny in `tiny`): a dataset with `speaker` and `track`
labels whose test split holds speakers that training never sees and whose
builder lists trials in `metadata['trials']` (rows [label, index_a, index_b]
naming test examples by `index`: avsynth's heads, voxceleb1/verification).
Its train split trains the supervised runs (4.). The disentangle variants
pretrain on `config.pretrain_data` (--pretrain_data, --pretrain_manual_dir;
default avsynth/heads), which needs `video` and `track` (voxceleb2). A
dataset without what it is used for is a ValueError raised before any work.
Utterances of real datasets vary in length; every utterance the suite reads
must hold a crop of `crop_frames` frames: a shorter one is a ValueError
naming it (none is dropped, so the scored trials stay the builder's).

1. pretraining: configs/disentangle.py in each of `config.methods` (content,
   identity, both, disentangle) in DIR/pretrain/VARIANT, its encoders
   exported to DIR/encoders/VARIANT.
2. verification, on the test split's unseen speakers: an utterance's
   embedding is the unit-norm mean of `crops` evenly spaced crops of
   `crop_frames` frames (spaced over each utterance's own length), each the
   time average of the audio stream's per-step embeddings, from the identity
   head (task `verification`) and from the content head
   (`verification_content`). The builder's trial list is scored by cosine:
   EER and minDCF (unit costs) at p_target 0.01 and 0.05. Identification
   (closed set of the test speakers, cross-session): each speaker enrolled on
   the utterances of its first session (lowest track id), the others
   assigned to the nearest speaker mean; chance is 1 / speakers. Baselines:
   MFCC (each crop's mean and standard deviation of 13 coefficients) and a
   random network of the variants' shape (scored with the first variant).
3. disentanglement probes (task `probe`): closed-form ridge classifiers
   (`linear_probe.ridge_accuracy`) on frozen per-step embeddings, from the
   identity and from the content head: the viseme at each step and each word
   (the mean over its frames), fitted on the train split and scored on the
   test split, only on datasets with per-frame `viseme` and `words` (avsynth;
   real datasets have neither, so their rows are left out, not faked); the
   speaker (the mean over the utterance, cut to the shortest probed one:
   whole utterances on avsynth), on tracks the probe was not fitted on: the
   train and validation splits' utterances of the train speakers (each split
   at most `max_probe_utterances`, a speaker-stratified subset) are pooled,
   and of each speaker's tracks (avsynth sessions, VoxCeleb videos) a
   `probe_scored_tracks` share (at least one, all but one at most; drawn by
   seed, `track_split`) is scored, the rest fitted. A track's room noise and
   microphone gain thus cannot pass for its speaker (avsynth's validation
   clips lie in the train clips' sessions). A speaker with one track is
   fitted on, not scored (counted in the notes). `chance` rows: the most
   frequent fitted class; `mfcc` rows (speaker only): the MFCC statistics of
   each whole utterance (`mfcc_statistics`). Both fill both heads' columns.
4. limited labels: configs/speaker.py (supervised speaker classification
   with the same audio stream, over `config.data`'s speakers) from scratch
   (`supervised`) and from DIR/encoders/VARIANT for each of `finetune_from`
   that was pretrained (`VARIANT+finetune`), on class-stratified
   `label_fractions` of `config.data`'s train split's speaker labels;
   verification and identification as in 2.

Plots: det.png (DET curves of the identity heads), projection.png (the test
utterances' identity embeddings of `projected` methods, PCA to 2-D, coloured
by speaker).

Seeds: `run` is one seed, `config.seed`, which every training run takes
(pretraining and fine-tuning, through `runs.run_config`: initialisation, data
order, label subsets), as do the random network and the probes' subsets;
`python -m avjax.evaluate --seeds=N` runs N of them (`runs.run_seeds`).
results.md compares (`results.compare`, with 2+ seeds) each variant with the
random network, `disentangle` with `both`, and each fine-tuned variant with
`supervised`.
"""

import os

import jax
import ml_collections
import numpy as np

from avjax import export
from avjax.data import ops
from avjax.data import pipeline
from avjax.evaluate import checks
from avjax.evaluate import linear_probe
from avjax.evaluate import results
from avjax.evaluate import runs
from avjax.evaluate import verification
from avjax.tasks import disentangle

VARIANTS = ('content', 'identity', 'both', 'disentangle')
PRESETS = ('default', 'tiny')
P_TARGETS = (0.01, 0.05)
SUPERVISED = 'supervised'
VERIFICATION_FEATURES = ('audio', 'speaker', 'track')  # Trials, identification, enrolment.
PRETRAIN_FEATURES = ('audio', 'video', 'track')  # Faces matched to voices within a track.
FRAMEWISE = ('viseme', 'words', 'word_start', 'word_end')  # The viseme and word probes'.
SPLITS = ('train', 'validation', 'test')  # Probes fitted on train; verification on test.
SPEAKER_PROBE_SPLITS = ('train', 'validation')  # Pooled, then divided by track.
RUN_DIRS = ('pretrain', 'encoders', 'speaker')  # What `run` writes under its workdir.


def get_config(preset='default'):
  """The suite's settings; `default` is sized for a 2-core CPU (README has the
  measured run), `tiny` (heads_tiny) takes a few minutes."""
  if preset not in PRESETS:
    raise ValueError(f'unknown preset {preset!r}; known: {PRESETS}')
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = dict(name='avsynth', config='heads', data_dir='', manual_dir='')  # Verified.
  config.pretrain_data = runs.avsynth('heads')  # What the disentangle variants pretrain on.
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
  config.max_probe_utterances = 20_000  # Per split, of the speaker probe (speaker-stratified).
  config.probe_scored_tracks = 1 / 3  # Of each speaker's tracks, the speaker probe's scored.
  config.projected = ('both', 'disentangle', SUPERVISED)  # Drawn in projection.png.
  if preset == 'tiny':
    config.data.config = config.pretrain_data.config = 'heads_tiny'
    config.preset = 'tiny'
    config.methods = ('disentangle',)
    config.total_steps = dict(disentangle=2, speaker=2)
    config.label_fractions = (0.5,)
    config.crops = 2
    config.crop_frames = 10
    config.batch_size = 8
    config.projected = ('disentangle',)
  return config


# ---- data ----

def dataset_features(data_config, data_dir):
  """The feature names of a dataset {'name', 'config'}, known before it is prepared."""
  return set(pipeline.unprepared_builder(
      ml_collections.ConfigDict(dict(data_config, data_dir=data_dir))).info.features)


def check_datasets(config):
  """ValueError unless `config.data` can be verified on and, when variants are to be
  pretrained, `config.pretrain_data` pretrained on (reads no examples)."""
  uses = [(config.data, VERIFICATION_FEATURES, 'the speaker suite verifies speakers on')]
  if config.methods:
    uses.append((config.pretrain_data, PRETRAIN_FEATURES,
                 f'disentangle variants {list(config.methods)} pretrain on'))
  for data, needs, use in uses:
    missing = [k for k in needs if k not in dataset_features(data, config.data.data_dir)]
    if missing:
      raise ValueError(f'{use} dataset {runs.dataset_name(data)}, which lacks the features '
                       f'{missing} (verification needs {list(VERIFICATION_FEATURES)}, '
                       f'pretraining {list(PRETRAIN_FEATURES)}, e.g. --pretrain_data=voxceleb2; '
                       '--methods= scores the baselines and supervised runs only)')


def framewise(clip):
  """Whether an example has the per-frame viseme and word labels of the content probes."""
  return all(k in clip for k in FRAMEWISE)


def probed_positions(source, limit, seed):
  """Record positions to read: all, or a speaker-stratified `limit` of a larger split
  (`pipeline.label_subset`; 0: all)."""
  if not limit or len(source) <= limit:
    return np.arange(len(source))
  speakers = [source[i]['speaker'] for i in range(len(source))]
  return pipeline.label_subset(speakers, limit / len(source), seed)


def utterance(clip, waveform, mfcc):
  """What the suite keeps of one example (`load_split`)."""
  kept = dict(mel=disentangle.log_mel_features(clip['audio']),
              frames=len(clip['audio']) // ops.SAMPLES_PER_FRAME, index=clip['index'],
              speaker=clip['speaker'], track=clip['track'],
              name=clip['path'].decode() if 'path' in clip else f'index {clip["index"]}')
  if waveform:
    kept['audio'] = ops.to_float(clip['audio'])
  if mfcc:
    kept['mfcc'] = mfcc_statistics(ops.to_float(clip['audio']))
  if framewise(clip):
    kept.update(viseme=clip['viseme'],
                words=list(zip(clip['words'], clip['word_start'], clip['word_end'])))
  return kept


def load_split(config, split, waveforms=False, limit=0, mfcc=False):
  """{'mel' [N] (`log_mel_features`), 'frames', 'index', 'speaker', 'track' [N], 'name' [N]
  (its path, or index), 'audio' [N] (waveforms, if asked), 'mfcc' [N, 26]
  (`mfcc_statistics`, if asked), 'viseme' [N, T] and 'words' [(word, start, end)] per
  utterance (where the dataset has them)} of a split of `config.data` in record order:
  all of it, or `probed_positions` of `limit`."""
  source = pipeline.load_source(config.data, split)
  kept = [utterance(source[int(i)], waveforms, mfcc)
          for i in probed_positions(source, limit, config.seed)]
  data = {key: [u[key] for u in kept] for key in kept[0]}
  data.update({key: np.array(data[key])
               for key in ('frames', 'index', 'speaker', 'track', 'mfcc') if key in data})
  if 'viseme' in data:
    data['viseme'] = np.stack(data['viseme'])
  return data


def check_lengths(data, crop_frames, name):
  """ValueError naming the utterances shorter than a crop: none is dropped, so that the
  scored trials stay the builder's."""
  for split, d in data.items():
    short = np.flatnonzero(d['frames'] < crop_frames)
    if short.size:
      examples = ', '.join(sorted(f'{d["name"][i]} ({d["frames"][i]} frames)' for i in short)[:3])
      raise ValueError(
          f'{name} {split}: {short.size} utterances are shorter than a {crop_frames}-frame '
          f'crop ({crop_frames * ops.SAMPLES_PER_FRAME / ops.SAMPLE_RATE:g} s, '
          f'config.crop_frames), e.g. {examples}; the suite drops none (the trials stay the '
          "builder's): remove them from the copy (their trials are dropped) or set a "
          'shorter crop')


# ---- embeddings ----

def crop_starts(num_steps, crop_frames, crops):
  """`crops` evenly spaced starts (in video frames) of crops inside `num_steps`."""
  if num_steps < crop_frames:
    raise ValueError(f'utterances of {num_steps} frames are shorter than a '
                     f'{crop_frames}-frame crop')
  return np.linspace(0, num_steps - crop_frames, crops).round().astype(int)


def crops_of(mels, crop_frames, crops):
  """[N, crops, 4 crop_frames, 40]: evenly spaced crops of each utterance's log-mel
  (utterances may differ in length)."""
  size = disentangle.MELS_PER_FRAME * crop_frames
  starts = lambda m: disentangle.MELS_PER_FRAME * crop_starts(
      len(m) // disentangle.MELS_PER_FRAME, crop_frames, crops)
  return np.stack([[m[s:s + size] for s in starts(m)] for m in mels])


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


def mfcc_statistics(waveform):
  """[26]: the mean and standard deviation over time of 13 MFCCs of a waveform."""
  m = ops.mfcc(waveform)
  return np.concatenate([m.mean(0), m.std(0)])


def mfcc_embeddings(waveforms, crop_frames, crops):
  """[N, 26]: the crop-averaged `mfcc_statistics` of each crop (waveforms may differ in
  length)."""
  size = ops.SAMPLES_PER_FRAME * crop_frames
  starts = lambda w: ops.SAMPLES_PER_FRAME * crop_starts(
      len(w) // ops.SAMPLES_PER_FRAME, crop_frames, crops)
  return verification.average_crops(np.stack([
      [mfcc_statistics(w[s:s + size]) for s in starts(w)] for w in waveforms]))


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


def builder_trials(config):
  """(the trial rows of `config.data`'s builder, its full name, how many trials of its list
  the build dropped), preparing it if needed; ValueError if it lists none."""
  builder = pipeline.prepared_builder(config.data)
  rows = builder.info.metadata.get('trials')
  if not rows:
    raise ValueError(f'dataset {builder.info.full_name} lists no verification trials '
                     "(metadata['trials']); the speaker suite scores those of avsynth heads "
                     'or voxceleb1/verification')
  return rows, builder.info.full_name, builder.info.metadata.get('trials_dropped', 0)


def trials(rows, index, name):
  """`trial_positions` of the trial `rows` in the test split whose `index` is given."""
  try:
    return trial_positions(rows, index)
  except ValueError as e:
    raise ValueError(f'{name}: {e}') from e


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


def probe_splits(data):
  """The splits the probes read: train and validation (speaker), and test where the data
  has the viseme and word labels."""
  return ('train', 'validation', 'test') if 'viseme' in data['train'] else ('train', 'validation')


def track_split(speakers, tracks, scored_share, seed):
  """(fitted, scored) positions of utterances of `speakers` and `tracks` [N]: of each
  speaker's tracks, round(scored_share x its tracks) (at least one, all but one at most;
  drawn by `seed` and the speaker id) are scored, the rest fitted; a speaker with one
  track is fitted only. No track is both fitted and scored."""
  speakers, tracks = np.asarray(speakers), np.asarray(tracks)
  scored = np.zeros(len(speakers), bool)
  for speaker in np.unique(speakers):
    own = speakers == speaker
    names = np.unique(tracks[own])
    if len(names) > 1:
      count = min(max(1, int(round(scored_share * len(names)))), len(names) - 1)
      drawn = np.random.default_rng([seed, int(speaker)]).choice(names, count, replace=False)
      scored |= own & np.isin(tracks, drawn)
  return np.flatnonzero(~scored), np.flatnonzero(scored)


def pooled(data, key):
  """`key` of the SPEAKER_PROBE_SPLITS of `data`, concatenated."""
  return np.concatenate([data[split][key] for split in SPEAKER_PROBE_SPLITS])


def speaker_set(features, data, scored_share, seed):
  """(fitted x, fitted y, scored x, scored y) of the speaker probe on utterance `features`
  [N, D] of the pooled SPEAKER_PROBE_SPLITS, divided by `track_split`; None if no
  speaker has two tracks."""
  speakers = pooled(data, 'speaker')
  fit, scored = track_split(speakers, pooled(data, 'track'), scored_share, seed)
  if not scored.size:
    return None
  return features[fit], speakers[fit], features[scored], speakers[scored]


def probe_sets(steps, data, max_steps, seed, scored_share):
  """{target: (train x, train y, test x, test y)} of one head's per-step embeddings
  `steps` {split: [N, T, D]}: viseme (per step) and word where the data has their labels,
  and speaker (`speaker_set` of the utterance means) where a speaker has two tracks."""
  train = steps['train']
  sets = {}
  if 'viseme' in data['train']:
    rng = np.random.default_rng(seed)
    test = steps['test']
    flat = lambda x: x.reshape(-1, x.shape[-1])
    visemes = data['train']['viseme'][:, :train.shape[1]].reshape(-1)
    keep = np.flatnonzero(visemes >= 0)
    keep = np.sort(rng.choice(keep, min(max_steps, len(keep)), replace=False))
    test_visemes = data['test']['viseme'][:, :test.shape[1]].reshape(-1)
    test_keep = test_visemes >= 0
    sets['viseme'] = (flat(train)[keep], visemes[keep], flat(test)[test_keep],
                      test_visemes[test_keep])
    sets['word'] = (word_features(train, data['train']['words'])
                    + word_features(test, data['test']['words']))
  speaker = speaker_set(np.concatenate([steps[s].mean(axis=1) for s in SPEAKER_PROBE_SPLITS]),
                        data, scored_share, seed)
  if speaker is not None:
    sets['speaker'] = speaker
  return sets


def probe_inputs(data):
  """{split: [N, 4 T, 40]}: the log-mel of each split in `data`, cut to the shortest
  utterance's whole frames (real utterances vary; avsynth's are all of one length)."""
  frames = min(len(m) for d in data.values() for m in d['mel']) // disentangle.MELS_PER_FRAME
  size = disentangle.MELS_PER_FRAME * frames
  return {split: np.stack([m[:size] for m in d['mel']]) for split, d in data.items()}


def probe_rows(method, encoder, params, data, config):
  """Rows of each target probed from the identity and from the content head."""
  inputs = probe_inputs({split: data[split] for split in probe_splits(data)})
  per_split = {split: step_embeddings(encoder, params, x, config.batch_size)
               for split, x in inputs.items()}
  rows = []
  for index, head in enumerate(('identity', 'content')):
    steps = {split: heads[index] for split, heads in per_split.items()}
    for target, sets in probe_sets(steps, data, config.max_probe_steps, config.seed,
                                   config.probe_scored_tracks).items():
      rows.append(runs.row(method, 'frozen', 'probe', f'{target}_from_{head}',
                           linear_probe.ridge_accuracy(*sets)))
  return rows


def chance_rows(data, config):
  """`chance` rows of each probe target: the most frequent fitted class."""
  dummy = {split: np.zeros((len(d['speaker']), d['viseme'].shape[1] if 'viseme' in d else 1, 1))
           for split, d in data.items()}
  return [runs.row('chance', 'baseline', 'probe', f'{target}_from_{head}',
                   majority_accuracy(sets[1], sets[3]))
          for target, sets in probe_sets(dummy, data, 10**9, config.seed,
                                         config.probe_scored_tracks).items()
          for head in ('identity', 'content')]


def mfcc_probe_rows(data, config):
  """`mfcc` rows of the speaker probe on `mfcc_statistics` (both heads' columns); none if
  no speaker has two tracks."""
  sets = speaker_set(pooled(data, 'mfcc'), data, config.probe_scored_tracks, config.seed)
  if sets is None:
    return []
  accuracy = linear_probe.ridge_accuracy(*sets)
  return [runs.row('mfcc', 'baseline', 'probe', f'speaker_from_{head}', accuracy)
          for head in ('identity', 'content')]


def speaker_probe_counts(data, config):
  """(fitted utterances, scored utterances, scored speakers, speakers fitted only) of the
  speaker probe."""
  speakers = pooled(data, 'speaker')
  fit, scored = track_split(speakers, pooled(data, 'track'), config.probe_scored_tracks,
                            config.seed)
  scored_speakers = len(np.unique(speakers[scored]))
  return len(fit), len(scored), scored_speakers, len(np.unique(speakers)) - scored_speakers


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

def pretrain_config(config, variant):
  """configs/disentangle.py:variant=VARIANT under the suite's preset, on
  `config.pretrain_data`."""
  arg = ','.join(filter(None, (config.preset, f'variant={variant}')))
  suite = ml_collections.ConfigDict(dict(config.to_dict(), preset=arg))
  return runs.run_config(suite, 'disentangle', config.pretrain_data)


def pretrain(config, variant, workdir):
  """Trains (or resumes) `pretrain_config` in WORKDIR/pretrain/VARIANT and exports it to
  WORKDIR/encoders/VARIANT; returns (method config, task, params)."""
  method = pretrain_config(config, variant)
  run_dir = os.path.join(workdir, 'pretrain', variant)
  task, params = runs.train_run(method, run_dir)
  export.export_encoders(run_dir, os.path.join(workdir, 'encoders', variant))
  return method, task, params


def finetune_config(config, init, fraction, workdir):
  """configs/speaker.py on `config.data`, on `fraction` of its train split's labels, its
  encoder from WORKDIR/encoders/INIT ('' = from scratch)."""
  return runs.run_config(config, 'speaker', config.data, {
      'data.label_fraction': fraction,
      'speaker.init_from': os.path.join(workdir, 'encoders', init) if init else ''})


def finetune(config, name, init, fraction, workdir):
  """Trains (or resumes) `finetune_config` in WORKDIR/speaker/NAME_FRACTION; returns
  (task, params)."""
  method = finetune_config(config, init, fraction, workdir)
  return runs.train_run(method, os.path.join(workdir, 'speaker', f'{name}_{fraction:g}'))


def check_data(config, workdir):
  """ValueError, before any training, unless `config.data` has the features
  (`check_datasets`), splits and trials the suite reads and each training run's dataset
  what it reads (`checks`; a fine-tuning run from an export reads what the same run
  from scratch does); prepares the datasets."""
  check_datasets(config)
  checks.check_splits(config.data, SPLITS, 'the speaker probes and verification')
  builder_trials(config)
  for variant in config.methods:
    checks.check_run(pretrain_config(config, variant),
                     f'pretraining disentangle variant={variant}')
  for fraction in config.label_fractions:
    checks.check_run(finetune_config(config, '', fraction, workdir),
                     f'supervised speaker runs on {fraction:g} of the labels')


def _speaker_probe_note(config, counts):
  """What the speaker probe fitted and scored (`speaker_probe_counts`)."""
  fitted, scored, speakers, fitted_only = counts
  if not scored:
    return 'no speaker probe: no train speaker has two tracks'
  single = (f'; speakers with a single track, fitted on but not scored: {fitted_only}'
            if fitted_only else '')
  return ('speaker: utterance means, cut to the shortest probed utterance, and MFCC '
          "statistics of whole utterances; the train speakers' train and validation "
          f'utterances (at most {config.max_probe_utterances} of each) pooled, fitted on '
          f'{fitted} and scored on {scored} utterances of {speakers} speakers, from tracks '
          f'(sessions, videos) the probe was not fitted on ({config.probe_scored_tracks:.2g} '
          f"of each speaker's tracks, drawn by seed){single}")


def _notes(config, steps, content_probes, trials_dropped, speaker_probe):
  data = runs.dataset_name(config.data)
  pretraining = (f'disentangle pretrained on {runs.dataset_name(config.pretrain_data)}, '
                 f'{max(steps)} steps per variant' if steps else 'no disentangle variant run')
  dropped = (f' ({trials_dropped} trials of the list name files missing or broken, dropped '
             'by the build)' if trials_dropped else '')
  content = 'viseme, word: train -> test split; ' if content_probes else ''
  skipped = '' if content_probes else (
      f' No viseme or word probes: {data} has no per-frame viseme and word labels.')
  return (f'Verified on {data}; {pretraining}; supervised runs on its train split. Test '
          "speakers are unseen in training; verification scores the builder's trial list"
          f'{dropped} by cosine of {config.crops}-crop averaged embeddings '
          f'({config.crop_frames} frames a crop, spread over each utterance); identification '
          'enrols each test speaker on its first session. Probes: ridge classifiers on frozen '
          f'embeddings ({content}{_speaker_probe_note(config, speaker_probe)}); chance = the '
          f'most frequent fitted class.{skipped}')


def comparisons(config):
  """The (method, mode) pairs results.md compares (module docstring)."""
  pairs = [((v, 'frozen'), ('random', 'baseline')) for v in config.methods]
  if {'both', 'disentangle'} <= set(config.methods):
    pairs.append((('disentangle', 'frozen'), ('both', 'frozen')))
  return pairs + [((f'{v}+finetune', 'finetune'), (SUPERVISED, 'finetune'))
                  for v in config.finetune_from if v in config.methods]


def load_data(config):
  """{split: `load_split`}: test whole, with waveforms; train and validation (the probes')
  at most `max_probe_utterances` each, with MFCC statistics."""
  limit = config.max_probe_utterances
  return {split: load_split(config, split, waveforms=split == 'test',
                            limit=0 if split == 'test' else limit, mfcc=split != 'test')
          for split in SPLITS}


def run(config, workdir):
  """Runs the suite; writes WORKDIR/results.{json,md} and plots; returns the rows."""
  unknown = set(config.methods) - set(VARIANTS)
  if unknown:
    raise ValueError(f'unknown disentangle variants {sorted(unknown)}; known: {VARIANTS}')
  check_data(config, workdir)
  trial_rows, dataset, trials_dropped = builder_trials(config)
  data = load_data(config)
  check_lengths(data, config.crop_frames, dataset)
  os.makedirs(workdir, exist_ok=True)
  test = data['test']
  trial_list = trials(trial_rows, test['index'], dataset)
  test_crops = crops_of(test['mel'], config.crop_frames, config.crops)
  rows = chance_rows(data, config) + mfcc_probe_rows(data, config)
  curves, projected, steps = {}, {}, []

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
    results.write(workdir, results.with_seed(rows, config.seed),
                  reference=dict(snr_db=None, label_fraction=1.0), title='Speaker suite',
                  by_task=True, comparisons=comparisons(config),
                  notes=_notes(config, steps, 'viseme' in test, trials_dropped,
                               speaker_probe_counts(data, config)),
                  images=[n for n, c in (('det.png', curves), ('projection.png', projected)) if c])

  new, scores = verification_rows(
      'mfcc', 'baseline', mfcc_embeddings(test['audio'], config.crop_frames, config.crops),
      test, trial_list)
  rows.extend(new)
  curves['mfcc'] = (scores, trial_list[0])
  write()
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
  return results.with_seed(rows, config.seed)
