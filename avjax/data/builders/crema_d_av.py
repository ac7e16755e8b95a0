"""CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset), read from its published layout.

  AudioWAV/1001_DFA_ANG_XX.wav     16 kHz mono, one sentence
  VideoFlash/1001_DFA_ANG_XX.flv   the same take: 480x360, ~30 fps, Sorenson

A name is ACTOR_SENTENCE_EMOTION_LEVEL: actor 1001-1091, one of 12 sentences,
one of 6 emotions and an intensity level (XX: unspecified), the labels
`speaker` (names in `metadata['class_names']`), `sentence`, `emotion` and
`intensity`. Configs `s64`, `s96`, ... read the video from the FLV and the
audio from the WAV of the same name (an FLV without one is skipped as
'missing audio'); `audio` reads AudioWAV alone. Frames are media's centred
360x360 square of the 480x360 picture, scaled: the actor's face sits roughly
in its middle.

Splits are speaker-disjoint, by the actor's place k = id - 1001 in the
published numbering (its position among the sorted actors of a full copy):
validation when k % 10 == 8, test when k % 10 == 9, else train (73, 9 and 9
of the 91 actors). A file whose name does not parse is skipped as
'unexpected name' and counted under train.
"""

import os
import re

import numpy as np
import tensorflow_datasets as tfds

from avjax.data import media
from avjax.data.builders import manual

SENTENCES = ('IEO', 'TIE', 'IOM', 'IWW', 'TAI', 'MTI', 'IWL', 'ITH', 'DFA', 'ITS', 'TSI', 'WSI')
EMOTIONS = ('ANG', 'DIS', 'FEA', 'HAP', 'NEU', 'SAD')
LEVELS = ('LO', 'MD', 'HI', 'XX')
ACTORS = range(1001, 1092)
SPLITS = ('train', 'validation', 'test')
UNEXPECTED_NAME, MISSING_AUDIO = 'unexpected name', 'missing audio'
_NAME = re.compile(rf'(\d{{4}})_({"|".join(SENTENCES)})_({"|".join(EMOTIONS)})_'
                   rf'({"|".join(LEVELS)})')


def parse_name(stem):
  """(actor id, labels) of a name such as '1001_DFA_ANG_XX'; ValueError if it does not parse."""
  match = _NAME.fullmatch(stem)
  if not match or int(match.group(1)) not in ACTORS:
    raise ValueError('expected ACTOR_SENTENCE_EMOTION_LEVEL, such as 1001_DFA_ANG_XX')
  actor, sentence, emotion, level = match.groups()
  return int(actor), dict(sentence=SENTENCES.index(sentence), emotion=EMOTIONS.index(emotion),
                          intensity=LEVELS.index(level))


class CremaDAv(manual.ManualBuilder):
  """CREMA-D: 7,442 takes of 91 actors saying 12 sentences with 6 emotions."""

  VERSION = tfds.core.Version('1.0.0')
  BUILDER_CONFIGS = [*manual.frame_size_configs(), manual.MediaConfig(
      name='audio', frame_size=None, description='Audio only, from AudioWAV alone.')]
  HOMEPAGE = 'https://github.com/CheyneyComputerScience/CREMA-D'
  LAYOUT = """
  AudioWAV/1001_DFA_ANG_XX.wav     (16 kHz mono)
  VideoFlash/1001_DFA_ANG_XX.flv   (the same take; config 'audio' does not need VideoFlash)
  ... ACTOR_SENTENCE_EMOTION_LEVEL, actors 1001-1091, 7,442 takes (Git LFS: `git lfs pull`)"""
  AUDIO = media.AudioFormat(16000, 1)

  @property
  def _audio_only(self):
    return self.builder_config.frame_size is None

  @property
  def REQUIRED(self):  # pylint: disable=invalid-name  (the base's name)
    return ('AudioWAV',) if self._audio_only else ('AudioWAV', 'VideoFlash')

  def _label_features(self):
    return {'speaker': tfds.features.Scalar(dtype=np.int32),
            'sentence': tfds.features.ClassLabel(names=SENTENCES),
            'emotion': tfds.features.ClassLabel(names=EMOTIONS),
            'intensity': tfds.features.ClassLabel(names=LEVELS)}

  def _items(self, root):
    folder, extension = ('AudioWAV', '.wav') if self._audio_only else ('VideoFlash', '.flv')
    names = sorted(n for n in os.listdir(os.path.join(root, folder)) if n.endswith(extension))
    if not names:
      raise manual.ManualDownloadError(f'{self.name}: {os.path.join(root, folder)} has no '
                                       f'{extension} files; {self.manual_instructions()}')
    parsed, broken = {}, []
    for name in names:
      path = os.path.join(folder, name)
      try:
        parsed[path] = parse_name(name[:-len(extension)])
      except ValueError as e:
        broken.append(manual.Broken(path, UNEXPECTED_NAME, str(e)))
    actors = sorted({actor for actor, _ in parsed.values()})
    self.info.metadata['class_names'] = dict(
        speaker=[str(a) for a in actors], sentence=list(SENTENCES), emotion=list(EMOTIONS),
        intensity=list(LEVELS))
    splits = {split: [] for split in SPLITS}
    splits['train'] += broken
    for path, (actor, labels) in parsed.items():
      labels = dict(labels, speaker=actors.index(actor))
      splits[manual.speaker_split(actor - ACTORS[0])].append(self._item(root, path, labels))
    return {split: sorted(items, key=lambda item: item.path)
            for split, items in splits.items() if items}

  def _item(self, root, path, labels):
    if self._audio_only:
      return manual.Item(path, labels)
    wav = os.path.join('AudioWAV', os.path.basename(path)[:-len('.flv')] + '.wav')
    if not os.path.exists(os.path.join(root, wav)):
      return manual.Broken(path, MISSING_AUDIO, f'no {wav}')
    return manual.Item(path, labels, audio_path=wav)
