"""UCF-101 with its audio, read from its published layout.

  UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi   320x240, 25 fps
  ucfTrainTestlist/classInd.txt      '1 ApplyEyeMakeup'
  ucfTrainTestlist/trainlist01.txt   'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1'
  ucfTrainTestlist/testlist01.txt    'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi'

Only about half the classes have an audio track; a clip without one is kept
with silent audio and `has_audio=False`. `action` is the 0-based classInd
index of the clip's class folder (`metadata['class_names']['action']`) and
`group` the number XX of its `gXX` (clips of a group come from one long video).

Splits of fold N (configs `s64`, `s128`: fold 1; `fold2_s64`, `fold3_s64`):
test = testlist0N; validation = the trainlist0N clips of its highest-numbered
group (g25 in every fold); train = the rest of trainlist0N. UCF's folds are
group-disjoint, so all three splits are: no group is in two of them.

A list entry without its file is skipped as 'missing'; an entry or a file
under UCF-101/ whose class folder is not in classInd, whose name does not
parse, or (a file) that no list of the fold names is skipped as
'unexpected name' (files no list names are reported with train).
"""

import os
import re

import numpy as np
import tensorflow_datasets as tfds

from avjax.data import media
from avjax.data.builders import manual

VIDEOS, LISTS = 'UCF-101', 'ucfTrainTestlist'
# 'HandstandPushups/v_HandStandPushups_g01_c01.avi': the name's class differs in case.
_NAME = re.compile(r'v_([A-Za-z0-9]+)_g(\d+)_c(\d+)\.avi')


class FoldConfig(manual.MediaConfig):
  """Frames scaled to `frame_size`, splits of train/test fold `fold` (1, 2 or 3)."""

  def __init__(self, *, fold=1, **kwargs):
    super().__init__(**kwargs)
    self.fold = fold


def read_class_index(path):
  """Class names in classInd.txt's order ('1 ApplyEyeMakeup' is the first)."""
  with open(path) as f:
    rows = [line.split() for line in f if line.strip()]
  return [name for _, name in sorted((int(i), name) for i, name in rows)]


def read_list(path):
  """The clip paths (relative to UCF-101/) of a train or test list, in its order."""
  with open(path) as f:
    return [line.split()[0] for line in f if line.strip()]


def parse_clip(path, class_ids):
  """(action, group) of a clip path 'Class/v_Class_gXX_cYY.avi'; ValueError says why not."""
  folder, _, name = path.rpartition('/')
  match = _NAME.fullmatch(name)
  if folder not in class_ids:
    raise ValueError(f'class folder {folder!r} is not in classInd.txt')
  if not match or match.group(1).lower() != folder.lower():
    raise ValueError(f'not named v_{folder}_gXX_cYY.avi')
  return class_ids[folder], int(match.group(2))


def fold_splits(train, test):
  """{split: clip paths}: validation is the train list's highest-numbered group."""
  group = lambda path: int(m.group(1)) if (m := re.search(r'_g(\d+)_', path)) else 0
  last = max(map(group, train), default=0)
  return {'train': [p for p in train if group(p) != last],
          'validation': [p for p in train if group(p) == last], 'test': test}


def video_files(root):
  """Relative paths ('Class/name.avi') of the .avi files under UCF-101/."""
  base = os.path.join(root, VIDEOS)
  return [os.path.relpath(os.path.join(d, name), base).replace(os.sep, '/')
          for d, _, names in os.walk(base) for name in names if name.lower().endswith('.avi')]


class Ucf101Av(manual.ManualBuilder):
  """UCF-101: 13,320 clips of 101 human actions from YouTube, with their audio."""

  VERSION = tfds.core.Version('1.0.0')
  BUILDER_CONFIGS = [
      *(FoldConfig(name=f's{s}', frame_size=s, description=f'Fold 1, {s}x{s} frames.')
        for s in (64, 128)),
      *(FoldConfig(name=f'fold{k}_s64', frame_size=64, fold=k,
                   description=f'Fold {k}, 64x64 frames.') for k in (2, 3))]
  HOMEPAGE = 'https://www.crcv.ucf.edu/data/UCF101.php'
  LAYOUT = """
  UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi   (UCF101.rar; one folder per class, 101)
  ucfTrainTestlist/classInd.txt                        (UCF101TrainTestSplits-RecognitionTask.zip)
  ucfTrainTestlist/trainlist01.txt, testlist01.txt     (and 02, 03 for the other folds)"""
  AUDIO = media.AudioFormat(44100, 2)
  SILENT_OK = True

  @property
  def REQUIRED(self):  # pylint: disable=invalid-name  (the base class's name)
    fold = self.builder_config.fold
    return (VIDEOS, f'{LISTS}/classInd.txt', f'{LISTS}/trainlist0{fold}.txt',
            f'{LISTS}/testlist0{fold}.txt')

  def _label_features(self):
    return {'action': tfds.features.Scalar(dtype=np.int32),
            'group': tfds.features.Scalar(dtype=np.int32)}

  def _items(self, root):
    lists = os.path.join(root, LISTS)
    classes = read_class_index(os.path.join(lists, 'classInd.txt'))
    self.info.metadata['class_names'] = {'action': classes}
    class_ids = {name: i for i, name in enumerate(classes)}
    fold = self.builder_config.fold
    train = read_list(os.path.join(lists, f'trainlist0{fold}.txt'))
    test = read_list(os.path.join(lists, f'testlist0{fold}.txt'))
    splits = {split: [_item(root, path, class_ids) for path in paths]
              for split, paths in fold_splits(train, test).items()}
    listed = set(train) | set(test)
    splits['train'] += [_unlisted(path, class_ids, fold)
                        for path in video_files(root) if path not in listed]
    return {split: sorted(items, key=lambda item: item.path) for split, items in splits.items()}


def _item(root, path, class_ids):
  """The Item of a list entry, or Broken if its name does not parse or its file is missing."""
  full = f'{VIDEOS}/{path}'
  try:
    action, group = parse_clip(path, class_ids)
  except ValueError as e:
    return manual.Broken(full, 'unexpected name', str(e))
  if not os.path.exists(os.path.join(root, full)):
    return manual.Broken(full, 'missing', 'named by the list, not under UCF-101/')
  return manual.Item(full, dict(action=action, group=group))


def _unlisted(path, class_ids, fold):
  """The Broken of a file under UCF-101/ that no list of the fold names."""
  reason = f'in no list of fold {fold}'
  try:
    parse_clip(path, class_ids)
  except ValueError as e:
    reason += f'; {e}'
  return manual.Broken(f'{VIDEOS}/{path}', 'unexpected name', reason)
