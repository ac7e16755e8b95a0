"""LRW (Lip Reading in the Wild), read from its published layout.

  lipread_mp4/WORD/{train,val,test}/WORD_00001.mp4   1.16 s, 29 frames, face-centred
  lipread_mp4/WORD/{train,val,test}/WORD_00001.txt   line 'Duration: 0.40 seconds'

Each clip is one word, centred in it: `words`, `word_start` and `word_end`
give that word and its frames (from the .txt duration), as avsynth's fields
do, and `word` is its class (`metadata['class_names']['word']`, the sorted
folder names). Splits: train, validation (`val`), test.
"""

import os
import re

import numpy as np
import tensorflow_datasets as tfds

from avjax.data import ops
from avjax.data.builders import manual

SPLITS = {'train': 'train', 'validation': 'val', 'test': 'test'}
_DURATION = re.compile(r'Duration:\s*([0-9.]+)')


def word_frames(txt_path, num_frames):
  """[start, end) frames of the word centred in a clip of `num_frames`, from its .txt."""
  with open(txt_path, errors='replace') as f:
    match = _DURATION.search(f.read())
  if not match:
    raise ValueError(f'{txt_path}: no "Duration: N seconds" line')
  length = float(match.group(1)) * ops.FPS
  start = int(np.clip(round((num_frames - length) / 2), 0, num_frames - 1))
  return start, int(np.clip(round((num_frames + length) / 2), start + 1, num_frames))


class Lrw(manual.ManualBuilder):
  """LRW: 500 words spoken in BBC broadcasts, one face-centred 1.16 s clip each."""

  VERSION = tfds.core.Version('1.0.0')
  BUILDER_CONFIGS = manual.frame_size_configs()
  HOMEPAGE = 'https://www.robots.ox.ac.uk/~vgg/data/lip_reading/lrw1.html'
  LAYOUT = """
  lipread_mp4/ABOUT/train/ABOUT_00001.mp4   (and .txt, with its 'Duration: 0.40 seconds' line)
  lipread_mp4/ABOUT/val/ABOUT_00001.mp4
  lipread_mp4/ABOUT/test/ABOUT_00001.mp4
  ... one folder per word (500)"""
  REQUIRED = ('lipread_mp4',)
  NUM_FRAMES = 29

  def _label_features(self):
    return {'word': tfds.features.Scalar(dtype=np.int32),
            'words': manual.sequence(), 'word_start': manual.sequence(),
            'word_end': manual.sequence()}

  def _items(self, root):
    base = os.path.join(root, 'lipread_mp4')
    vocabulary = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
    self.info.metadata['class_names'] = {'word': vocabulary}
    splits = {split: [] for split in SPLITS}
    for word_id, word in enumerate(vocabulary):
      for split, folder in SPLITS.items():
        directory = os.path.join(base, word, folder)
        names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
        for name in names:
          if not name.endswith('.mp4'):
            continue
          path = os.path.join('lipread_mp4', word, folder, name)
          splits[split].append(self._item(root, path, word_id))
    return splits

  def _item(self, root, path, word_id):
    txt = os.path.join(root, path[:-4] + '.txt')
    repairs = ()
    try:
      start, end = word_frames(txt, self.NUM_FRAMES)
    except (OSError, ValueError) as e:
      start, end = 0, self.NUM_FRAMES
      repairs = (f'no word duration: the word spans the whole clip ({e})',)
    return manual.Item(path, dict(word=word_id, words=np.array([word_id], np.int32),
                                  word_start=np.array([start], np.int32),
                                  word_end=np.array([end], np.int32)), repairs=repairs)
