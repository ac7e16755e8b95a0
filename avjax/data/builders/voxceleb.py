"""VoxCeleb1 and VoxCeleb2, read from their published layouts.

  wav/id10270/5r0dWxy17C8/00001.wav          VoxCeleb1: 16 kHz mono, speaker/video/utterance
  dev/mp4/id00012/21Uxsk56VDQ/00001.mp4      VoxCeleb2: 224x224 face-centred, 25 fps, AAC
  dev/aac/id00012/21Uxsk56VDQ/00001.m4a      VoxCeleb2: the same utterance's audio

Every example has `speaker` (its id's position in the sorted ids of the
dataset's files, `metadata['class_names']['speaker']`) and `track` (its
'idXXXXX/VIDEO' in the sorted videos, `metadata['class_names']['track']`).
A file whose path is not `idXXXXX/VIDEO/NNNNN.ext` is skipped as
'unexpected name'; files of other extensions are ignored.

Held-out videos (validation): the files of each speaker's last video (in
sorted order) when that speaker has at least two videos, so validation
utterances come from sessions that training never sees.

VoxCeleb1 configs (audio only):
- `verification` (default): test = every file in the folders of the
  speakers that the trial list names (`veri_test2.txt`, the cleaned list, if
  present, else `veri_test.txt`; `metadata['trial_list']` says which);
  validation = the held-out videos of the other speakers; train = the rest
  of their files (with any whose name does not parse). The trials ship as
  `metadata['trials']`, rows [label, index_a, index_b] (label 1: same
  speaker) naming test examples by `index`, as avsynth's heads do; a trial
  that names a file missing from wav/ or skipped as broken is dropped and
  counted in `metadata['trials_dropped']`.
- `identification`: `iden_split.txt` (1 train, 2 validation, 3 test); a
  listed file missing from wav/ is skipped as 'missing', files it does not
  list are not read. No trials.

VoxCeleb2 configs: `s64` (default), `s96`, `s128`, `s224` read frames and
audio from the mp4s; `audio` reads the m4a files. Splits: validation = the
held-out videos of dev/, train = the rest of dev/, test = test/ (when
present).
"""

import os
import re

import numpy as np
import tensorflow_datasets as tfds

from avjax.data import media
from avjax.data.builders import manual
from avjax.evaluate import verification

_NAME = re.compile(r'(id\d{5})/([^/]+)/\d{5}\.\w+')
TRIAL_LISTS = ('veri_test2.txt', 'veri_test.txt')  # Preferred first.
IDEN_SPLIT = 'iden_split.txt'
IDEN_SPLITS = {'1': 'train', '2': 'validation', '3': 'test'}


def track_of(path):
  """'idXXXXX/VIDEO' of a path 'idXXXXX/VIDEO/NNNNN.ext', or None if it does not parse."""
  match = _NAME.fullmatch(path)
  return match and f'{match.group(1)}/{match.group(2)}'


def list_files(root, folder, extension):
  """Sorted paths, relative to root/folder, of the files there ending in `extension`."""
  base = os.path.join(root, folder)
  found = []
  for directory, _, names in os.walk(base):
    found += [os.path.relpath(os.path.join(directory, n), base).replace(os.sep, '/')
              for n in names if n.lower().endswith(extension)]
  return sorted(found)


def class_names(paths):
  """{'speaker': sorted speaker ids, 'track': sorted 'idXXXXX/VIDEO'} of the parsable paths."""
  tracks = sorted({t for t in map(track_of, paths) if t})
  return {'speaker': sorted({t.split('/')[0] for t in tracks}), 'track': tracks}


def held_out_tracks(paths):
  """The last track (sorted) of each speaker with at least two tracks among `paths`."""
  by_speaker = {}
  for track in sorted({t for t in map(track_of, paths) if t}):
    by_speaker.setdefault(track.split('/')[0], []).append(track)
  return {tracks[-1] for tracks in by_speaker.values() if len(tracks) > 1}


def split_held_out(paths):
  """(train, validation) of `paths`: validation holds the held-out tracks' files."""
  held_out = held_out_tracks(paths)
  validation = [p for p in paths if track_of(p) in held_out]
  return [p for p in paths if track_of(p) not in held_out], validation


def read_iden_split(path):
  """{split: sorted paths} of an iden_split.txt (lines '1|2|3 idXXXXX/VIDEO/NNNNN.wav')."""
  splits = {split: [] for split in IDEN_SPLITS.values()}
  with open(path) as f:
    for number, line in enumerate(f, start=1):
      fields = line.split()
      if not fields:
        continue
      if len(fields) != 2 or fields[0] not in IDEN_SPLITS:
        raise ValueError(f'{path}:{number}: expected "1|2|3 path", got {line.strip()!r}')
      splits[IDEN_SPLITS[fields[0]]].append(fields[1])
  return {split: sorted(paths) for split, paths in splits.items()}


def trial_rows(labels, paths_a, paths_b, index):
  """([label, index_a, index_b] of the trials whose files are both in `index`
  {path: test index}, number dropped)."""
  rows = [[int(l), index[a], index[b]] for l, a, b in zip(labels, paths_a, paths_b)
          if a in index and b in index]
  return rows, len(labels) - len(rows)


def labeller(names):
  """path -> {'speaker', 'track'} positions in `names` (`class_names`)."""
  position = {key: {n: i for i, n in enumerate(values)} for key, values in names.items()}
  def labels(path):
    track = track_of(path)
    return dict(speaker=position['speaker'][track.split('/')[0]],
                track=position['track'][track])
  return labels


def entry(folder, path, labels):
  """The Item of a path relative to `folder`, or Broken if its name does not parse."""
  if not track_of(path):
    return manual.Broken(f'{folder}/{path}', 'unexpected name',
                         'expected idXXXXX/VIDEO/NNNNN' + os.path.splitext(path)[1])
  return manual.Item(f'{folder}/{path}', labels(path))


def entries(folder, paths, labels):
  return [entry(folder, p, labels) for p in paths]


def nonempty(splits):
  """The splits that list any file (TFDS cannot write an empty split)."""
  return {split: items for split, items in splits.items() if items}


class _Voxceleb(manual.ManualBuilder, skip_registration=True):
  """Labels: speaker and track."""

  def _label_features(self):
    return {'speaker': tfds.features.Scalar(dtype=np.int32),
            'track': tfds.features.Scalar(dtype=np.int32)}


class Voxceleb1(_Voxceleb):
  """VoxCeleb1: 153,516 utterances of 1,251 celebrities from YouTube interviews."""

  VERSION = tfds.core.Version('1.0.0')
  BUILDER_CONFIGS = [
      manual.MediaConfig(name='verification', frame_size=None, description=(
          "Audio; test = the trial list's speakers, trials in metadata.")),
      manual.MediaConfig(name='identification', frame_size=None, description=(
          'Audio; splits of iden_split.txt.')),
  ]
  HOMEPAGE = 'https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox1.html'
  LAYOUT = """
  wav/id10001/1zcIwhmdeo4/00001.wav   16 kHz mono (the dev and test archives, both in wav/)
  veri_test2.txt or veri_test.txt     (verification) lines 'label path path', label 1 for the
                                      same speaker: '1 id10270/x6uYqmx31kE/00001.wav id10270/...'
  iden_split.txt                      (identification) lines '1 id10001/1zcIwhmdeo4/00001.wav'
                                      (1 train, 2 validation, 3 test)"""
  AUDIO = media.AudioFormat(sample_rate=16000, channels=1)

  @property
  def REQUIRED(self):  # pylint: disable=invalid-name  (the base's name)
    return ('wav', IDEN_SPLIT) if self.builder_config.name == 'identification' else ('wav',)

  def _items(self, root):
    on_disk = list_files(root, 'wav', '.wav')
    names = class_names(on_disk)
    self.info.metadata['class_names'] = names
    if self.builder_config.name == 'identification':
      return nonempty(self._identification(root, set(on_disk), labeller(names)))
    return nonempty(self._verification(root, on_disk, labeller(names)))

  def _identification(self, root, on_disk, labels):
    listed = lambda p: entry('wav', p, labels) if p in on_disk else manual.Broken(
        f'wav/{p}', 'missing', f'listed in {IDEN_SPLIT}, not in wav/')
    splits = read_iden_split(os.path.join(root, IDEN_SPLIT))
    return {split: [listed(p) for p in paths] for split, paths in splits.items()}

  def _verification(self, root, on_disk, labels):
    trial_list = next((t for t in TRIAL_LISTS if os.path.exists(os.path.join(root, t))), None)
    if trial_list is None:
      raise manual.ManualDownloadError(
          f'{self.name}: the manual dir {root} has no {" or ".join(TRIAL_LISTS)}; '
          f'{self.manual_instructions()}')
    trial_labels, paths_a, paths_b = verification.read_trials(os.path.join(root, trial_list))
    test_speakers = {p.split('/')[0] for p in paths_a + paths_b}
    test = [p for p in on_disk if p.split('/')[0] in test_speakers]
    train, validation = split_held_out([p for p in on_disk if p.split('/')[0] not in test_speakers])
    rows, dropped = trial_rows(trial_labels, paths_a, paths_b, {p: i for i, p in enumerate(test)})
    self.info.metadata.update(trials=rows, trials_dropped=dropped, trial_list=trial_list)
    return {split: entries('wav', paths, labels)
            for split, paths in dict(train=train, validation=validation, test=test).items()}

  def _after_split(self, split, written):
    """Drops the trials that name a test file that was not written."""
    metadata = self.info.metadata
    if split != 'test' or 'trials' not in metadata:
      return
    written = set(written)
    kept = [t for t in metadata['trials'] if t[1] in written and t[2] in written]
    metadata['trials_dropped'] += len(metadata['trials']) - len(kept)
    metadata['trials'] = kept


class Voxceleb2(_Voxceleb):
  """VoxCeleb2: 1.1M face-centred utterances of 6,112 celebrities from YouTube."""

  VERSION = tfds.core.Version('1.0.0')
  BUILDER_CONFIGS = manual.frame_size_configs() + [
      manual.MediaConfig(name='audio', frame_size=None, description='Audio of the m4a files.')]
  HOMEPAGE = 'https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox2.html'
  LAYOUT = """
  dev/mp4/id00012/21Uxsk56VDQ/00001.mp4   224x224 face-centred, 25 fps, AAC audio at 16 kHz
  dev/aac/id00012/21Uxsk56VDQ/00001.m4a   (the `audio` config reads these)
  dev/txt/id00012/21Uxsk56VDQ/00001.txt   (not read)
  test/mp4/..., test/aac/...              (optional: the test split)"""
  AUDIO = media.AudioFormat(sample_rate=16000, channels=1)

  @property
  def _media(self):
    """(folder, extension) of the files this config reads."""
    return ('mp4', '.mp4') if self.builder_config.frame_size else ('aac', '.m4a')

  @property
  def REQUIRED(self):  # pylint: disable=invalid-name  (the base's name)
    return (f'dev/{self._media[0]}',)

  def _items(self, root):
    folder, extension = self._media
    dev, test = (list_files(root, f'{part}/{folder}', extension) for part in ('dev', 'test'))
    names = class_names(dev + test)
    self.info.metadata['class_names'] = names
    labels = labeller(names)
    train, validation = split_held_out(dev)
    return nonempty(dict(train=entries(f'dev/{folder}', train, labels),
                         validation=entries(f'dev/{folder}', validation, labels),
                         test=entries(f'test/{folder}', test, labels)))
