"""RAVDESS (Ryerson Audio-Visual Database of Emotional Speech and Song), read from its
published layout.

  Actor_01/01-01-03-02-01-01-01.mp4   audio-visual: 1280x720, 29.97 fps, AAC 48 kHz
  Actor_01/03-01-03-02-01-01-01.wav   audio only: 48 kHz, 16 bit

A name is MM-VV-EE-II-SS-RR-AA: modality (01 audio-visual, 02 video only, 03
audio only), vocal channel (01 speech, 02 song), emotion (01-08: neutral,
calm, happy, sad, angry, fearful, disgust, surprised), intensity (01 normal,
02 strong), statement (01 "Kids are talking by the door", 02 "Dogs are sitting
by the door"), repetition (01, 02) and actor (01-24, odd male, even female;
the same as its Actor_AA folder). Examples get `speaker` (names in
`metadata['class_names']`), `emotion`, `intensity`, `statement`,
`vocal_channel`, `sex` and `repetition` (1 or 2, as published).

Configs `s64`, `s96`, ... read the modality-01 MP4s (video and their audio
track), `audio` the modality-03 WAVs; files of the other modalities are left
out. Audio is taken to be 48 kHz mono in both (one microphone): a stereo file
is down-mixed and listed as repaired. Frames are media's centred 720x720
square of the 1280x720 picture (the actor faces the camera in its middle),
scaled.

Splits are speaker-disjoint, by the actor's place k = number - 1 (its position
among the sorted actors of a full copy): validation when k % 10 == 8 (actors 09
and 19, both male), test when k % 10 == 9 (10 and 20, both female), else train
(20 actors). A file whose name does not parse, or names another actor than its
folder, is skipped as 'unexpected name' (in its folder's split).
"""

import os
import re

import numpy as np
import tensorflow_datasets as tfds

from avjax.data import media
from avjax.data.builders import manual

EMOTIONS = ('neutral', 'calm', 'happy', 'sad', 'angry', 'fearful', 'disgust', 'surprised')
INTENSITIES = ('normal', 'strong')
STATEMENTS = ('Kids are talking by the door', 'Dogs are sitting by the door')
VOCAL_CHANNELS = ('speech', 'song')
SEXES = ('female', 'male')
AUDIO_VISUAL, AUDIO_ONLY = 1, 3
# The seven fields of a name, in order, and how many codes (01, 02, ...) each has.
FIELDS = dict(modality=3, vocal_channel=2, emotion=8, intensity=2, statement=2, repetition=2,
              actor=24)
SPLITS = ('train', 'validation', 'test')
UNEXPECTED_NAME = 'unexpected name'
_NAME = re.compile(r'-'.join([r'(\d\d)'] * len(FIELDS)))
_ACTOR_FOLDER = re.compile(r'Actor_(\d\d)')


def parse_name(stem, folder_actor):
  """The codes (1-based ints) of a name such as '01-01-03-02-01-01-01' in folder Actor_AA;
  ValueError if it does not parse or names another actor."""
  match = _NAME.fullmatch(stem)
  if not match:
    raise ValueError('expected MM-VV-EE-II-SS-RR-AA, such as 01-01-03-02-01-01-01')
  codes = dict(zip(FIELDS, map(int, match.groups())))
  unknown = [f'{field} {code:02d}' for field, code in codes.items()
             if not 1 <= code <= FIELDS[field]]
  if unknown:
    raise ValueError(f'unknown {", ".join(unknown)}')
  if codes['actor'] != folder_actor:
    raise ValueError(f'actor {codes["actor"]:02d} in folder Actor_{folder_actor:02d}')
  return codes


def labels_of(codes):
  """An example's labels (all but `speaker`) from the codes of its name."""
  return dict(emotion=codes['emotion'] - 1, intensity=codes['intensity'] - 1,
              statement=codes['statement'] - 1, vocal_channel=codes['vocal_channel'] - 1,
              repetition=codes['repetition'], sex=codes['actor'] % 2)


class Ravdess(manual.ManualBuilder):
  """RAVDESS: 24 actors speaking and singing two statements with 8 emotions."""

  VERSION = tfds.core.Version('1.0.0')
  BUILDER_CONFIGS = [*manual.frame_size_configs(), manual.MediaConfig(
      name='audio', frame_size=None, description='Audio only, from the modality-03 WAVs.')]
  HOMEPAGE = 'https://zenodo.org/record/1188976'
  LAYOUT = """
  Actor_01/01-01-03-02-01-01-01.mp4   (audio-visual: Video_Speech_Actor_01.zip, Video_Song_...)
  Actor_01/03-01-03-02-01-01-01.wav   (audio only: Audio_Speech_Actors_01-24.zip, Audio_Song_...)
  ... Actor_01 to Actor_24, every zip unpacked into the same folder (config 'audio' needs only
  the WAVs, the others only the MP4s)"""
  AUDIO = media.AudioFormat(48000, 1)

  def _label_features(self):
    return {'speaker': tfds.features.Scalar(dtype=np.int32),
            'emotion': tfds.features.ClassLabel(names=EMOTIONS),
            'intensity': tfds.features.ClassLabel(names=INTENSITIES),
            'statement': tfds.features.ClassLabel(names=STATEMENTS),
            'vocal_channel': tfds.features.ClassLabel(names=VOCAL_CHANNELS),
            'repetition': tfds.features.Scalar(dtype=np.int32),
            'sex': tfds.features.ClassLabel(names=SEXES)}

  def _items(self, root):
    audio_only = self.builder_config.frame_size is None
    extension, modality = ('.wav', AUDIO_ONLY) if audio_only else ('.mp4', AUDIO_VISUAL)
    listed = list(_listing(root, extension, modality))
    if not listed:
      raise manual.ManualDownloadError(
          f'{self.name}: the manual dir {root} has no modality-{modality:02d} {extension} '
          f'files in Actor_AA folders; {self.manual_instructions()}')
    actors = sorted({actor for actor, _, codes in listed if isinstance(codes, dict)})
    self.info.metadata['class_names'] = dict(
        speaker=[f'Actor_{a:02d}' for a in actors], emotion=list(EMOTIONS),
        intensity=list(INTENSITIES), statement=list(STATEMENTS),
        vocal_channel=list(VOCAL_CHANNELS), sex=list(SEXES))
    splits = {split: [] for split in SPLITS}
    for actor, path, codes in listed:
      splits[manual.speaker_split(actor - 1)].append(
          manual.Item(path, dict(labels_of(codes), speaker=actors.index(actor)))
          if isinstance(codes, dict) else manual.Broken(path, UNEXPECTED_NAME, str(codes)))
    return {split: sorted(items, key=lambda item: item.path)
            for split, items in splits.items() if items}


def _listing(root, extension, modality):
  """(folder's actor, path, codes or the ValueError of its name) of the files a config reads:
  those of `modality` and those whose name does not parse."""
  for folder, actor in _actor_folders(root):
    for name in sorted(os.listdir(os.path.join(root, folder))):
      if not name.endswith(extension):
        continue
      try:
        codes = parse_name(name[:-len(extension)], actor)
      except ValueError as e:
        codes = e
      if isinstance(codes, ValueError) or codes['modality'] == modality:
        yield actor, os.path.join(folder, name), codes


def _actor_folders(root):
  """(folder, actor number) of the Actor_AA folders of the manual dir."""
  return [(name, int(match.group(1))) for name in sorted(os.listdir(root))
          if (match := _ACTOR_FOLDER.fullmatch(name)) and os.path.isdir(os.path.join(root, name))]
