"""The sync suite: Owens & Efros's multisensory network and its applications.

  python -m avjax.evaluate --suite=sync --workdir=DIR [--preset=tiny]
  python -m avjax.evaluate --suite=sync --workdir=DIR --data=ucf101_av --manual_dir=UCF \
      --pretrain_data=video_folder --pretrain_manual_dir=VIDEOS --methods=action,separation

Datasets: the sync network trains on `config.pretrain_data` (--pretrain_data;
default avsynth scenes); the pretext score, localisation and action read the
test split of `config.data` (--data; default avsynth scenes); separation mixes
the talking heads of `config.separation_data` (avsynth heads, whatever --data).

1. pretext: configs/sync.py trained in DIR/pretrain/sync and exported to
   DIR/encoders/sync; aligned-vs-shifted accuracy on one random window per
   test clip of `data` (chance 0.5), and pair accuracy (aligned scored above
   shifted); beside it, the pair accuracy of a hand-crafted detector
   (`sync_detector`) on the same windows, on the frames the network sees and
   at the full frame rate and size; each pair accuracy per `action` class too,
   where the data has it.
2. localisation: on the middle window of each test scene, the class
   activation map of the aligned audio (trained, and a random network as a
   control; conv5's, and the fusion's where the model has `fusion_logit`;
   each also as a contrast with the map of a shifted track; each of these and
   motion energy also as one map a clip, their mean over the window: `*_clip`)
   against `source_mask`, beside a centre prior, motion energy and the masks
   at each trained CAM's grid (the oracle a map at that resolution reaches):
   pointing accuracy, pixel AUC and per-frame AUC on the frames the network
   sees; overlay GIFs and localisation.png. Only avsynth scenes have source
   masks: on any other `data` the suite stops before any work.
3. action: configs/action.py on `data` (its `action` labels and their
   classes), fine-tuned from the sync export (`sync`) and from scratch
   (`scratch`) on class-stratified `label_fractions` of the train split;
   accuracy on one random window per test clip.
4. separation: configs/separation.py on talking-head mixtures, audio-only
   `pit`, `onoff` from scratch and `onoff_sync` from the sync export, and the
   mixture itself as the estimate; BSS Eval SDR, SIR, SAR, SI-SDR and its
   improvement over the mixture's, of the on-screen voice (PIT heads in their
   better order: oracle assignment);
   example WAVs.

Real clips vary in length: a test clip shorter than a method's window (the
pretext's: the window and its smallest shift, `sync.min_clip_frames`) is left
out of its score, and so is a silent one (UCF-101's `has_audio`) from the
pretext and separation scores; results.md says how many. Training clips are
not checked: a train or validation clip shorter than the window stops training.

`config.methods` (--methods) picks the applications; the pretext always runs.

Seeds: `run` is one seed, `config.seed`, which every training run takes (sync,
action and separation, through `runs.run_config`: initialisation, data order,
action label subsets) and the random network of localisation;
`python -m avjax.evaluate --seeds=N` runs N of them (`runs.run_seeds`).
results.md compares (`results.compare`, with 2+ seeds) `COMPARISONS`.
"""

import os

import imageio.v3 as iio
import jax
import ml_collections
import numpy as np
import soundfile as sf
from absl import logging

from avjax import export
from avjax.data import ops
from avjax.data import pipeline
from avjax.evaluate import bss
from avjax.evaluate import checks
from avjax.evaluate import localization
from avjax.evaluate import results
from avjax.evaluate import runs
from avjax.evaluate import sync_detector
from avjax.tasks import action as action_task
from avjax.tasks import sync as sync_task

APPLICATIONS = ('localisation', 'action', 'separation')
PRESETS = ('default', 'tiny')
RUN_DIRS = ('pretrain', 'encoders', 'localisation', 'action', 'separation')  # Under a workdir.


def _against_baselines(suffix):
  """The comparisons of the trained network's map `sync{suffix}` with a random network's
  same map, the centre prior and motion energy."""
  trained = (f'sync{suffix}', 'frozen')
  return ((trained, (f'random{suffix}', 'frozen')), (trained, ('centre_prior', 'baseline')),
          (trained, ('motion_energy', 'baseline')))


COMPARISONS = ((('sync', 'frozen'), ('detector_seen', 'baseline')),  # Pretext.
               (('sync', 'frozen'), ('detector_full_rate', 'baseline')),
               (('sync', 'frozen'), ('random', 'frozen')),  # Localisation.
               (('sync', 'frozen'), ('motion_energy', 'baseline')),
               *_against_baselines('_fusion_logit'),
               (('sync_contrast', 'frozen'), ('random_contrast', 'frozen')),
               *_against_baselines('_fusion_logit_contrast'),
               *_against_baselines('_fusion_logit_clip'),
               *_against_baselines('_fusion_logit_contrast_clip'),
               (('sync', 'finetune'), ('scratch', 'finetune')),  # Action.
               (('onoff_sync', 'finetune'), ('onoff', 'finetune')),  # Separation.
               (('onoff_sync', 'finetune'), ('pit', 'finetune')))


def get_config(preset='default'):
  """The suite's settings; `default` is sized for a 2-core CPU (README has the
  measured run), `tiny` (scenes_tiny and heads_tiny) takes a few minutes."""
  if preset not in PRESETS:
    raise ValueError(f'unknown preset {preset!r}; known: {PRESETS}')
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = dict(name='avsynth', config='scenes', data_dir='', manual_dir='')
  config.pretrain_data = dict(name='avsynth', config='scenes', manual_dir='')
  config.separation_data = dict(name='avsynth', config='heads', manual_dir='')
  config.methods = APPLICATIONS
  config.configs_dir = ''  # '' = the repository's configs/.
  config.preset = ''  # The argument of each configs/NAME.py.
  config.total_steps = dict(sync=0, action=0, separation=0)  # 0: the config's own.
  config.label_fractions = (0.1, 1.0)
  config.batch_size = 16  # Of the test-split passes.
  config.num_examples = 4  # Overlay GIFs and separated WAVs written.
  if preset == 'tiny':
    config.data.config = config.pretrain_data.config = 'scenes_tiny'
    config.separation_data.config = 'heads_tiny'
    config.preset = 'tiny'
    config.total_steps = dict(sync=2, action=2, separation=2)
    config.label_fractions = (0.5,)  # One run each of sync and scratch: the subset path.
    config.batch_size = 4
    config.num_examples = 2
  return config


# ---- datasets and clips ----

def dataset_label(data):
  """'NAME/CONFIG' of a dataset's `data`, CONFIG its builder's default if none is named."""
  return f'{data.name}/{pipeline.unprepared_builder(data).builder_config.name}'


def check_methods(config):
  """Raises ValueError, before any work, on an unknown application or one that
  `config.data` cannot score."""
  unknown = set(config.methods) - set(APPLICATIONS)
  if unknown:
    raise ValueError(f'unknown sync applications {sorted(unknown)}; known: {APPLICATIONS}')
  # Loading a method's config checks its dataset: known, with the features the task needs.
  runs.run_config(config, 'sync', config.pretrain_data)
  runs.run_config(config, 'sync', config.data)
  if 'action' in config.methods:
    runs.run_config(config, 'action', config.data)
  if ('localisation' in config.methods
      and 'source_mask' not in pipeline.unprepared_builder(config.data).info.features):
    raise ValueError(
        f'localisation scores class activation maps against `source_mask`, which dataset '
        f'{dataset_label(config.data)} does not have (avsynth scenes do); leave it out '
        '(--methods=action,separation)')


def clip_frames(example):
  """The whole frames a clip has of both video and audio."""
  return min(len(example['video']), len(example['audio']) // ops.SAMPLES_PER_FRAME)


def usable(min_frames, audible=False):
  """A `keep` of `runs.split_examples`: clips of at least `min_frames` frames and, if
  `audible`, with an audio track (`has_audio`, where a dataset has it)."""
  return lambda example: (clip_frames(example) >= min_frames
                          and (not audible or bool(example.get('has_audio', True))))


def scored_examples(method, task, min_frames, audible=False):
  """(The test split's usable examples, (clips left out, clips, why)); logs what it left out."""
  examples, left_out = runs.split_examples(method, task, keep=usable(min_frames, audible))
  why = f'{"silent or " if audible else ""}shorter than {min_frames} frames'
  if left_out:
    logging.warning('%s: left out %d of %d test clips of %s (%s)', method.task, left_out,
                    left_out + len(examples), dataset_label(method.data), why)
  if not examples:
    raise ValueError(f'{method.task}: none of the {left_out} test clips of '
                     f'{dataset_label(method.data)} can be scored ({why})')
  return examples, (left_out, left_out + len(examples), why)


def pretext_rows(config, method, task, params):
  """(Rows of the pretext on `method`'s test split, left out): the network's accuracy
  and pair accuracy, the hand-crafted detector's pair accuracy on the same windows
  (`detector_hits`), and, where the data has `action` labels, each one's pair
  accuracy per class."""
  min_frames = sync_task.min_clip_frames(method.sync.window_frames, method.sync.min_shift)
  examples, left_out = scored_examples(method, task, min_frames, audible=True)
  keep = usable(min_frames, audible=True)
  test = runs.batches(examples, config.batch_size)
  pretext = runs.mean_metrics(task.evaluate, params, test)
  rows = [runs.row('sync', 'frozen', 'pretext', k, pretext[k])
          for k in ('accuracy', 'pair_accuracy')]
  if 'fusion_pair_accuracy' in pretext:  # The model's `fusion_logit`, read at the fusion.
    rows.append(runs.row('sync_fusion_logit', 'frozen', 'pretext', 'pair_accuracy',
                         pretext['fusion_pair_accuracy']))
  hits = detector_hits(method, examples, keep)
  rows += [runs.row(name, 'baseline', 'pretext', 'pair_accuracy', h.mean())
           for name, h in hits.items()]
  if 'action' in pipeline.unprepared_builder(method.data).info.features:
    logits = jax.jit(task.logits)
    logits = np.concatenate([jax.device_get(logits(params, b)) for b in test])
    hits = {'sync': logits[:, 0] > logits[:, 1], **hits}  # Pair accuracy's hits.
    names = pipeline.class_names(method.data, 'action')
    rows += class_rows(hits, clip_labels(method, keep), names)
  return rows, left_out


def detector_hits(method, examples, keep):
  """{name: bool [N]}: does the hand-crafted detector (`sync_detector`) call the aligned
  track of each of `method`'s test `examples` aligned? 'detector_seen' on the frames
  the network sees, 'detector_full_rate' on the same windows at the full frame rate and
  size (the preprocess draws the same windows whatever its frame stride and size)."""
  full = method.copy_and_resolve_references()
  full.sync.update(frame_stride=1, frame_downsample=1)
  full_examples, _ = runs.split_examples(full, sync_task.Sync(full), keep=keep)
  views = (('detector_seen', examples, method.sync.frame_stride),
           ('detector_full_rate', full_examples, 1))
  return {name: sync_detector.aligned_first(np.stack([x['video'] for x in view]),
                                            np.stack([x['audio'] for x in view]), stride)
          for name, view, stride in views}


def clip_labels(method, keep, key='action'):
  """The `key` label of each test clip of `method` that `keep` accepts, in record order."""
  source = pipeline.load_source(method.data, 'test', ('video', 'audio', 'has_audio', key))
  return np.array([int(source[i][key]) for i in range(len(source)) if keep(source[i])])


def class_rows(hits, labels, class_names):
  """Rows of each method's pair accuracy per class (task 'pretext by action', metric the
  class name) from {method: bool hits [N]} and labels [N]; 'sync' is frozen, the others
  baselines."""
  return [runs.row(name, 'frozen' if name == 'sync' else 'baseline', 'pretext by action',
                   class_names[c], h[labels == c].mean())
          for name, h in hits.items() for c in np.unique(labels)]


# ---- localisation ----

# How far the contrast's shifted track is from the middle window, in windows: one of the
# pretext's shifts (0.52 to 1.4 windows), and beside the middle window of a 4 s scene.
CONTRAST_SHIFT = 0.6


def shifted_start(start, window, clip_frames, name):
  """The first frame of the track `CONTRAST_SHIFT` windows after `start` (before, where
  the clip ends first); ValueError naming the clip where neither fits."""
  shift = round(CONTRAST_SHIFT * window)
  for begin in (start + shift, start - shift):
    if 0 <= begin and begin + window <= clip_frames:
      return begin
  raise ValueError(f'{name}: a clip of {clip_frames} frames has no room for a track '
                   f'{shift} frames from its middle window of {window}')


def middle_windows(method, split='test'):
  """(network inputs {'video', 'audio', 'shifted_audio'}, frames seen [N, T, H, W, 3] uint8,
  full-rate frames, masks [N, T, H, W]) of each clip's middle window; 'shifted_audio'
  is the track `CONTRAST_SHIFT` windows away (`shifted_start`)."""
  source = pipeline.load_source(method.data, split)
  window, stride = method.sync.window_frames, method.sync.frame_stride
  inputs, seen, full, masks = [], [], [], []
  for i in range(len(source)):
    clip = source[i]
    start = (len(clip['video']) - window) // 2
    audio, video = ops.time_crop(clip['audio'], clip['video'], start, window)
    spf = ops.SAMPLES_PER_FRAME
    frames = min(len(clip['video']), len(clip['audio']) // spf)
    begin = shifted_start(start, window, frames, f'{split} clip {i}')
    shifted, _ = ops.time_crop(clip['audio'], clip['video'], start, window,
                               audio_offset=(begin - start) * spf)
    inputs.append({'video': sync_task.video_input(video, stride, method.sync.frame_downsample),
                   'audio': ops.to_float(audio), 'shifted_audio': ops.to_float(shifted)})
    full.append(video)
    seen.append(video[::stride])
    masks.append(clip['source_mask'][start:start + window:stride])
  return inputs, np.stack(seen), np.stack(full), np.stack(masks)


# The rows of the masks at the grid of a trained network's CAM, by that CAM's row.
GRID_ORACLES = {'sync': 'grid_oracle', 'sync_fusion_logit': 'grid_oracle_fusion_logit'}


def cams(net, params, inputs, batch_size, name='cam', audio='audio'):
  """Class activation maps (aux[`name`]) of the video with its track `audio` ('audio':
  aligned, 'shifted_audio': `CONTRAST_SHIFT` away) at the network's grid, [N, t, h, w]."""
  apply = jax.jit(lambda p, b: net.apply({'params': p}, b['video'], b[audio])[1][name])
  return np.concatenate([jax.device_get(apply(params, b))
                         for b in runs.batches(inputs, batch_size)])


def localisation_rows(config, method, task, params, workdir):
  """Rows of the CAM (trained and random; of the model's `fusion_logit` too, trained
  and random), each also as a contrast with the shifted track's (`*_contrast`: CAM(aligned) -
  CAM(shifted), in which a response to motion that ignores the audio's timing cancels),
  each of these and motion energy also averaged over the window (`*_clip`: one map a
  clip, scored on each frame), the centre prior, and the masks at each CAM's grid (the
  oracle `grid_oracle*`); writes overlays."""
  inputs, seen, full, masks = middle_windows(method)
  stride = method.sync.frame_stride
  first = runs.batches(inputs[:1], 1)[0]  # Network inputs, not a batch of `task.preprocess`.
  random_params = task.net.init({'params': jax.random.key(config.seed)}, first['video'],
                                first['audio'])['params']
  heads = {'': 'cam'}  # Row suffix: the aux map it reads.
  if method.model.get('fusion_logit'):
    heads['_fusion_logit'] = 'fusion_cam'
  readings = [(net + suffix, p, head) for suffix, head in heads.items()
              for net, p in (('sync', params), ('random', random_params))]
  size = config.batch_size
  grids = {name: cams(task.net, p, inputs, size, name=head) for name, p, head in readings}
  grids.update({f'{name}_contrast': grids[name] - cams(task.net, p, inputs, size, name=head,
                                                       audio='shifted_audio')
                for name, p, head in readings})
  grids.update({f'{name}_clip': localization.time_mean(m) for name, m in grids.items()})
  maps = {name: localization.resize_maps(m, seen.shape[1:4]) for name, m in grids.items()}
  motion = np.stack([localization.motion_energy(v)[::stride] for v in full])
  maps.update(motion_energy=motion, motion_energy_clip=localization.time_mean(motion),
              centre_prior=localization.centre_prior(masks.shape))
  oracles = {oracle: localization.grid_oracle(masks, grids[name].shape[1:])
             for name, oracle in GRID_ORACLES.items() if name in grids}
  rows = []
  for name, m in {**maps, **oracles}.items():
    mode = 'frozen' if name in grids else 'oracle' if name in oracles else 'baseline'
    for metric, value in localization.score(m, masks).items():
      rows.append(runs.row(name, mode, 'localisation', metric, value))
  write_overlays(os.path.join(workdir, 'localisation'), seen, masks, maps, config.num_examples,
                 fps=ops.FPS / stride)
  return rows


def write_overlays(directory, frames, masks, maps, count, fps, scale=3):
  """GIFs of the first `count` clips, side by side: frames, mask, then each map as
  heat; and localisation.png, their middle frames stacked."""
  os.makedirs(directory, exist_ok=True)
  stills = []
  for i in range(min(count, len(frames))):
    mask = np.repeat(masks[i][..., None] * 255, 3, axis=-1).astype(np.uint8)
    panels = [frames[i], mask] + [localization.overlay(frames[i], m[i]) for m in maps.values()]
    strip = np.concatenate(panels, axis=2).repeat(scale, axis=1).repeat(scale, axis=2)
    localization.write_animation(os.path.join(directory, f'clip{i}.gif'), strip, fps)
    stills.append(strip[len(strip) // 2])
  with open(os.path.join(directory, 'panels.txt'), 'w') as f:
    f.write('left to right: frame, source mask, ' + ', '.join(maps) + '\n')
  iio.imwrite(os.path.join(directory, 'localisation.png'), np.concatenate(stills))


# ---- action recognition ----

def action_config(config, fraction, init_sync=''):
  """configs/action.py on `fraction` of `config.data`'s train labels, its sync network
  from the export INIT_SYNC ('': from scratch)."""
  return runs.run_config(config, 'action', config.data, {
      'action.init_sync': init_sync, 'data.label_fraction': fraction})


def action_test(config):
  """(The test batches of every action run, left out): one random window of each clip
  of `config.data` long enough for it."""
  method = runs.run_config(config, 'action', config.data)
  examples, left_out = scored_examples(method, action_task.Action(method),
                                       method.action.window_frames)
  return runs.batches(examples, config.batch_size), left_out


def action_rows(config, workdir, sync_export, test):
  """Test accuracy on the batches `test` of action recognition from sync and from
  scratch, per label fraction."""
  rows = []
  for fraction in config.label_fractions:
    subset = action_config(config, fraction)
    num_train = len(pipeline.train_source(subset.data, subset.seed))  # What each run trains on.
    for name, init in (('sync', sync_export), ('scratch', '')):
      method = action_config(config, fraction, init)
      task, params = runs.train_run(method, os.path.join(workdir, 'action', f'{name}_{fraction:g}'))
      accuracy = runs.mean_metrics(task.evaluate, params, test)['accuracy']
      rows.append(runs.row(name, 'finetune', 'action', 'accuracy', accuracy, fraction,
                      num_train_examples=num_train))
      logging.info('action %s, %g%% labels: test accuracy %.3f', name, 100 * fraction, accuracy)
  return rows


# ---- separation ----

def bss_rows(method, estimates, references, mixture):
  """Rows of the mean SDR, SIR, SAR, SI-SDR and SI-SDR improvement over the mixture
  (per example, then averaged) of the on-screen estimates.

  estimates, references: [N, 2, S], on-screen first; mixture [N, S]. BSS Eval
  scores each estimate against both references, so the off-screen voice is
  interference.
  """
  scores = [bss.bss_eval(e, r) for e, r in zip(estimates, references)]
  si_sdr = bss.si_sdr(estimates[:, 0], references[:, 0])
  values = {'sdr': [s.sdr[0] for s in scores], 'sir': [s.sir[0] for s in scores],
            'sar': [s.sar[0] for s in scores], 'si_sdr': si_sdr,
            'si_sdr_improvement': si_sdr - bss.si_sdr(mixture, references[:, 0])}
  mode = 'baseline' if method == 'mixture' else 'finetune'
  return [runs.row(method, mode, 'separation', k, np.mean(v)) for k, v in values.items()]


def separation_configs(config, sync_export=''):
  """{name: configs/separation.py on `config.separation_data`} of each separation method,
  `onoff_sync`'s sync network from the export SYNC_EXPORT ('': from scratch)."""
  methods = (('pit', {'separation.mode': 'pit'}),
             ('onoff', {'separation.mode': 'onoff'}),
             ('onoff_sync', {'separation.mode': 'onoff', 'separation.init_sync': sync_export}))
  return {name: runs.run_config(config, 'separation', config.separation_data, overrides)
          for name, overrides in methods}


def separation_rows(config, workdir, sync_export):
  """(Rows of each separation method and of the mixture itself, left out); writes
  example WAVs."""
  wav_dir = os.path.join(workdir, 'separation')
  os.makedirs(wav_dir, exist_ok=True)
  rows, left_out = [], None
  for name, method in separation_configs(config, sync_export).items():
    task, params = runs.train_run(method, os.path.join(workdir, 'separation', name))
    examples, left_out = scored_examples(method, task, method.separation.window_frames,
                                         audible=True)
    separate = jax.jit(task.separate)
    outputs = [jax.device_get(separate(params, b))
               for b in runs.batches(examples, config.batch_size)]
    estimates, references, mixture = (np.concatenate(x) for x in zip(*outputs))
    if not rows:  # The mixtures are the same for every method.
      rows += bss_rows('mixture', np.stack([mixture, mixture], 1), references, mixture)
      write_wavs(wav_dir, 'mixture', mixture, config.num_examples)
      write_wavs(wav_dir, 'on_screen', references[:, 0], config.num_examples)
      write_wavs(wav_dir, 'off_screen', references[:, 1], config.num_examples)
    rows += bss_rows(name, estimates, references, mixture)
    write_wavs(wav_dir, f'{name}_on_screen', estimates[:, 0], config.num_examples)
  return rows, left_out


def write_wavs(directory, name, audio, count):
  """DIRECTORY/NAME_i.wav of the first `count` waveforms, peak-normalised together."""
  audio = np.asarray(audio[:count])
  audio = audio / max(np.abs(audio).max(), 1e-9) * 0.9
  for i, x in enumerate(audio):
    sf.write(os.path.join(directory, f'{i}_{name}.wav'), x, ops.SAMPLE_RATE, subtype='PCM_16')


# ---- the suite ----

def _notes(config, sync_method, left_out):
  """results.md's notes: the datasets, the sync run, what the scores mean, and the test
  clips left out of each score."""
  on_data = [m for m in ('pretext', 'localisation', 'action')
             if m == 'pretext' or m in config.methods]
  notes = [f'Sync network pretrained on {dataset_label(config.pretrain_data)} '
           f'({sync_method.total_steps} steps of batch {sync_method.batch_size}); '
           f'{", ".join(on_data)} tested on {dataset_label(config.data)}']
  if 'separation' in config.methods:
    notes[0] += f'; separation on {dataset_label(config.separation_data)}'
  notes.append('Pretext accuracy has chance 0.5; detector_seen and detector_full_rate are a '
               'hand-crafted detector (no learning, no mask: the track whose loudness '
               'correlates better with the motion energy of its best cell of an 8x8 grid is '
               'called aligned), scored by pair accuracy on the same windows, on the frames '
               'the network sees and at the full frame rate and size')
  if 'localisation' in config.methods:
    notes.append('Localisation scores the middle window of each test scene on the frames '
                 'the network sees; grid_oracle (grid_oracle_fusion_logit) is the true '
                 'mask averaged over the cells of the sync CAM (the fusion logit\'s CAM) and '
                 'resized as the CAM is: what a perfect map at that resolution scores; '
                 '*_clip is a map averaged over the window (of a CAM, the map of the clip\'s '
                 'logit), scored on each frame')
  if 'separation' in config.methods:
    notes.append('PIT heads are assigned to on/off-screen by the better permutation (oracle)')
  notes += [f'Left out of {task}: {n} of {total} test clips ({why})'
            for task, (n, total, why) in left_out.items() if n]
  return '. '.join(notes) + '.'


def check_data(config):
  """ValueError, before any training, unless each dataset has the test split the suite
  scores and each training run's dataset what it reads (`checks`; a run from the sync
  export reads what the same run from scratch does); prepares the datasets."""
  check_methods(config)
  scored = runs.run_config(config, 'sync', config.data).data
  checks.check_splits(scored, ('test',), 'the sync pretext and localisation scores')
  checks.check_run(runs.run_config(config, 'sync', config.pretrain_data), 'pretraining sync')
  if 'action' in config.methods:
    for fraction in config.label_fractions:
      checks.check_run(action_config(config, fraction), f'action on {fraction:g} of the labels',
                       ('test',))
  if 'separation' in config.methods:
    for name, method in separation_configs(config).items():
      checks.check_run(method, f'separation {name}', ('test',))


def run(config, workdir):
  """Runs the suite; writes WORKDIR/results.{json,md}, plots and examples; returns the rows."""
  check_data(config)
  sync_method = runs.run_config(config, 'sync', config.pretrain_data)
  data_method = runs.run_config(config, 'sync', config.data)  # Its test split is scored.
  os.makedirs(workdir, exist_ok=True)
  sync_dir = os.path.join(workdir, 'pretrain', 'sync')
  task, params = runs.train_run(sync_method, sync_dir)
  sync_export = os.path.join(workdir, 'encoders', 'sync')
  export.export_encoders(sync_dir, sync_export)
  left_out = {}
  rows, left_out['pretext'] = pretext_rows(config, data_method, task, params)
  reference = dict(snr_db=None, label_fraction=1.0)
  write = lambda: results.write(workdir, results.with_seed(rows, config.seed), reference,
                                title='Sync suite', notes=_notes(config, sync_method, left_out),
                                by_task=True, comparisons=COMPARISONS)
  write()
  if 'localisation' in config.methods:
    rows += localisation_rows(config, data_method, task, params['sync_net'], workdir)
    write()
  if 'action' in config.methods:
    test, left_out['action'] = action_test(config)
    rows += action_rows(config, workdir, sync_export, test)
    write()
  if 'separation' in config.methods:
    separation, left_out['separation'] = separation_rows(config, workdir, sync_export)
    rows += separation
    write()
  return results.with_seed(rows, config.seed)
