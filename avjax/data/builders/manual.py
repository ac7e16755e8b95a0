"""The shared base of the builders that read a user's copy of a real dataset.

A subclass names its published layout and lists its files with their labels;
this base decodes them in parallel (`media.read_clip`, one ffmpeg process per
thread, all local cores, a progress bar), writes array_record without
TensorFlow, and never stops on a broken file: each one is skipped (or, where
`media` can, repaired), counted, and listed with its reason in `report.json`
beside the prepared dataset. The build's summary line gives the counts.

Examples carry avsynth's field names wherever the information exists:
`index` (position in the split's sorted file list), `path` (relative to the
manual dir), `audio` (int16, 16 kHz mono), `video` (uint8 [T, S, S, 3] at 25 fps,
640 audio samples a frame), and the dataset's labels (`speaker`, `track`,
`emotion`, `words`, `action`, ...).

A dataset of millions of clips can be prepared on a Beam runner instead
(`python -m avjax.data.prepare ... --beam_pipeline_options=...`, README): the
same decoding runs in Beam workers and the report is written by the pipeline.
"""

import collections
import concurrent.futures
import dataclasses
import functools
import json
import os
import pickle
import textwrap

import numpy as np
import tensorflow_datasets as tfds
import tqdm
from absl import logging

from avjax.data import media
from avjax.data import ops
from avjax.data.builders import base

REPORT = 'report.json'


@dataclasses.dataclass(frozen=True)
class Item:
  """One file of a split and the labels its example gets."""
  path: str                     # Relative to the manual dir.
  labels: dict                  # Feature values besides media, `index` and `path`.
  start: float | None = None    # Seconds to read (AudioSet segments); None: all.
  duration: float | None = None
  repairs: tuple = ()           # What listing it already had to assume.
  audio_path: str | None = None  # Audio from this file instead (relative to the manual dir).


@dataclasses.dataclass(frozen=True)
class Broken:
  """A file that was not written, and why (`_items` may list these too)."""
  path: str
  kind: str
  detail: str = ''


class MediaConfig(tfds.core.BuilderConfig):
  """Frames scaled to `frame_size` (None: audio only)."""

  def __init__(self, *, frame_size=64, **kwargs):
    super().__init__(**kwargs)
    self.frame_size = frame_size


def frame_size_configs(sizes=(64, 96, 128, 224), **kwargs):
  """One config per frame size, named `s64`, `s96`, ... (the first is the default)."""
  return [MediaConfig(name=f's{s}', frame_size=s, description=f'{s}x{s} frames at 25 fps.',
                      **kwargs) for s in sizes]


def speaker_split(place):
  """The split of the speaker at `place` (0-based) in a dataset's published numbering:
  validation when place % 10 == 8, test when 9, else train (CREMA-D, RAVDESS)."""
  return {8: 'validation', 9: 'test'}.get(place % 10, 'train')


def video_feature(frame_size):
  return tfds.features.Tensor(shape=(None, frame_size, frame_size, 3), dtype=np.uint8,
                              encoding='zlib')


def sequence(dtype=np.int32):
  return tfds.features.Tensor(shape=(None,), dtype=dtype)


class ManualDownloadError(FileNotFoundError):
  """The manual download is missing or incomplete: says what to put where."""


class ManualBuilder(base.Builder, skip_registration=True):
  """A dataset read from `manual_dir` in its published layout.

  Subclasses set `LAYOUT` (what the manual dir must hold, one line per path,
  shown when anything is missing), `REQUIRED` (paths that must exist),
  `HOMEPAGE`, `AUDIO` (the published audio format), and implement
  `_label_features()` and `_items(root) -> {split: [Item or Broken]}`, sorted;
  an example's `index` is its position there. `_after_split(split, written)`
  sees the indices written (trial lists drop the rest). With `SILENT_OK`,
  examples get `has_audio`.
  """

  LAYOUT = ''
  REQUIRED = ()
  HOMEPAGE = ''
  AUDIO = media.AudioFormat()
  MIN_FRAMES = 1     # Shorter files are skipped as too short.
  SILENT_OK = False  # A video without an audio track is kept with silent audio.

  @classmethod
  def manual_instructions(cls):
    layout = textwrap.dedent(cls.LAYOUT).strip()
    return (f'put a copy of {cls.name} under the manual dir (--config.data.manual_dir, or '
            f'--manual_dir of avjax.data.prepare) in its published layout:\n{layout}\n'
            f'Get it from {cls.HOMEPAGE}')

  @property
  def MANUAL_DOWNLOAD_INSTRUCTIONS(self):  # pylint: disable=invalid-name  (TFDS's name)
    return self.manual_instructions()

  def _label_features(self):
    raise NotImplementedError

  def _items(self, root):
    raise NotImplementedError

  def _after_split(self, split, written):
    """Called with the sorted `index`es of a split's examples once it is written."""

  def _info(self):
    features = {'index': tfds.features.Scalar(dtype=np.int32),
                'path': tfds.features.Text(),
                'audio': tfds.features.Tensor(shape=(None,), dtype=np.int16, encoding='zlib'),
                **self._label_features()}
    frame_size = self.builder_config.frame_size
    if frame_size:
      features['video'] = video_feature(frame_size)
    if self.SILENT_OK:
      features['has_audio'] = tfds.features.Scalar(dtype=np.bool_)
    return tfds.core.DatasetInfo(
        builder=self, description=self.__doc__, homepage=self.HOMEPAGE,
        features=tfds.features.FeaturesDict(features),
        metadata=tfds.core.MetadataDict(sample_rate=ops.SAMPLE_RATE, fps=ops.FPS,
                                        frame_size=frame_size))

  def _download_and_prepare(self, dl_manager, download_config):
    # Only here does TFDS say whether Beam was asked for (`tfds build --beam_pipeline_options`).
    self._beam = bool(download_config.beam_options or download_config.beam_runner)
    super()._download_and_prepare(dl_manager, download_config)

  def _split_generators(self, dl_manager):
    root = os.fspath(dl_manager.manual_dir)  # TFDS says what to put there if it is empty.
    missing = [p for p in self.REQUIRED if not os.path.exists(os.path.join(root, p))]
    if missing:
      raise ManualDownloadError(f'{self.name}: the manual dir {root} has no '
                                f'{", ".join(missing)}; {self.manual_instructions()}')
    splits = self._items(root)
    self._report, self._beam_files = {}, {}
    return {split: self._generate_examples(split, items, root)
            for split, items in splits.items()}

  def _generate_examples(self, split, items, root):
    decode = functools.partial(_decode, root, frame_size=self.builder_config.frame_size,
                               expected=self.AUDIO, min_frames=self.MIN_FRAMES,
                               silent_ok=self.SILENT_OK)
    if not getattr(self, '_beam', False):
      return self._local_examples(split, items, decode)
    self._beam_files[split] = len(items)
    work = self.data_path / BEAM_WORK
    work.mkdir(exist_ok=True)
    return _beam_examples(_write_chunks(items, work, split), decode, self.SILENT_OK,
                          f'{self.name} {split}', os.fspath(work / f'{split}-notes.json'))

  def _local_examples(self, split, items, decode):
    """The split's examples, decoded on local threads."""
    notes = []
    with tqdm.tqdm(total=len(items), desc=f'{self.name} {split}', unit=' files') as bar:
      for index, (item, clip) in enumerate(zip(items, _bounded_map(decode, items))):
        bar.update()
        note = _note(index, item, clip)
        if note:
          notes.append(note)
        if not isinstance(clip, Broken):
          yield index, _example(index, item, clip, self.SILENT_OK)
    self._finish_split(split, *notes_report(len(items), notes))

  def _process_pipeline_result(self, pipeline_result):
    """After the Beam pipeline: each split's report and `_after_split`, from its notes."""
    del pipeline_result
    work = self.data_path / BEAM_WORK
    for split, num_files in self._beam_files.items():
      notes = json.loads((work / f'{split}-notes.json').read_text())
      self._finish_split(split, *notes_report(num_files, notes))
    work.rmtree()

  def _finish_split(self, split, report, written):
    if not written:  # TFDS would stop with a bare 'No examples were yielded'.
      raise ValueError(f'{self.name}: none of the {report["files"]} files of split {split} '
                       f'could be read: {summary(self.name, {split: report})}; e.g. '
                       f'{report["skipped_files"][:3]}')
    self._after_split(split, written)
    self._report[split] = report
    logging.info('%s', summary(self.name, {split: report}))
    (self.data_path / REPORT).write_text(json.dumps(self._report, indent=1))


def _decode(root, item, frame_size, expected, min_frames, silent_ok):
  """media.Clip of an item, or Broken naming why it cannot be used."""
  if isinstance(item, Broken):
    return item
  try:
    audio_path = item.audio_path and os.path.join(root, item.audio_path)
    return media.read_clip(os.path.join(root, item.path), frame_size, expected, item.start,
                           item.duration, min_frames, silent_ok, audio_path)
  except media.MediaError as e:
    return Broken(item.path, e.kind, e.detail)


def _example(index, item, clip, silent_ok):
  example = {'index': index, 'path': item.path, 'audio': clip.audio, **item.labels}
  if clip.video is not None:
    example['video'] = clip.video
  if silent_ok:
    example['has_audio'] = not clip.silent
  return example


def _note(index, item, clip):
  """What the report says of an item: why it was skipped, its repairs, or None."""
  if isinstance(clip, Broken):
    return dict(index=index, **dataclasses.asdict(clip))
  repairs = item.repairs + clip.repairs
  return dict(index=index, path=item.path, repairs=list(repairs)) if repairs else None


def notes_report(num_files, notes):
  """(report.json entry, sorted indices written) of a split, from its items' notes in any
  order (as `_note` makes them; JSON-able, so a Beam pipeline can collect them)."""
  notes = sorted(notes, key=lambda n: n['index'])
  skipped = [n for n in notes if 'kind' in n]
  broken = [Broken(n['path'], n['kind'], n['detail']) for n in skipped]
  repaired = [(n['path'], tuple(n['repairs'])) for n in notes if 'repairs' in n]
  skipped_indices = {n['index'] for n in skipped}
  return (split_report(num_files, broken, repaired),
          [i for i in range(num_files) if i not in skipped_indices])


BEAM_WORK = 'beam-work'  # In the dataset dir while Beam prepares it: items and notes.
_NOTES = 'notes'  # The Beam output of the notes.


def _write_chunks(items, directory, split, size=10_000):
  """Pickles a split's (index, item)s into files of `size` in `directory`; their paths.

  Beam workers read the items from these: a pipeline graph that held millions of
  items (beam.Create) would be too big for some runners.
  """
  paths = []
  for start in range(0, len(items), size):
    path = directory / f'{split}-items-{start // size:05d}.pickle'
    path.write_bytes(pickle.dumps(list(enumerate(items[start:start + size], start))))
    paths.append(os.fspath(path))
  return paths


def _read_chunk(path):
  return pickle.loads(tfds.core.Path(path).read_bytes())


def _beam_examples(chunks, decode, silent_ok, counters, notes_path):
  """A split as a Beam PTransform: the items in `chunks` decoded in workers (counted in the
  Beam metrics namespace `counters`), their notes combined into one list at `notes_path`."""
  beam = tfds.core.lazy_imports.apache_beam

  @beam.ptransform_fn
  def examples(pipeline):
    decoded = (pipeline | 'Chunks' >> beam.Create(chunks) | 'Items' >> beam.FlatMap(_read_chunk)
               | 'Spread' >> beam.Reshuffle()
               | 'Decode' >> beam.FlatMap(_beam_decode, decode, silent_ok, counters)
               .with_outputs(_NOTES, main='examples'))
    _ = (decoded[_NOTES] | 'Collect' >> beam.combiners.ToList()
         | 'Write' >> beam.Map(_write_json, notes_path))
    return decoded.examples

  return examples()  # pylint: disable=no-value-for-parameter  (applied to the pipeline by TFDS)


def _beam_decode(indexed, decode, silent_ok, counters):
  """In a Beam worker: an item's (index, example), and its note as the `_NOTES` output."""
  beam = tfds.core.lazy_imports.apache_beam
  index, item = indexed
  clip = decode(item)
  note = _note(index, item, clip)
  if note:
    yield beam.pvalue.TaggedOutput(_NOTES, note)
  count = lambda name: beam.metrics.Metrics.counter(counters, name).inc()
  if isinstance(clip, Broken):
    count(f'skipped {clip.kind}')
    return
  count('examples')
  if note:
    count('repaired')
  yield index, _example(index, item, clip, silent_ok)


def _write_json(value, path):
  tfds.core.Path(path).write_text(json.dumps(value))


def _bounded_map(fn, items, workers=None):
  """fn over items in order, on `workers` threads (all cores), a bounded window ahead.

  Threads suffice: each decode waits on an ffmpeg process (or libsndfile, which
  releases the GIL).
  """
  workers = workers or os.cpu_count() or 1
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    window = collections.deque()
    for item in items:
      window.append(pool.submit(fn, item))
      if len(window) >= 4 * workers:
        yield window.popleft().result()
    while window:
      yield window.popleft().result()


def split_report(num_files, broken, repaired):
  """One split's entry of report.json."""
  return dict(
      files=num_files, examples=num_files - len(broken),
      skipped=dict(collections.Counter(b.kind for b in broken)),
      repaired=dict(collections.Counter(r.split(' from')[0].split(':')[0]
                                        for _, rs in repaired for r in rs)),
      skipped_files=[dataclasses.asdict(b) for b in broken],
      repaired_files=[dict(path=p, repairs=list(rs)) for p, rs in repaired])


def summary(name, report):
  """The build's summary line, e.g. 'lrw: 998 examples from 1000 files (train 800, ...);
  skipped 2 (1 truncated, 1 empty); repaired 3 (3 resampled)'."""
  files = sum(r['files'] for r in report.values())
  examples = sum(r['examples'] for r in report.values())
  counts = lambda key: sum((collections.Counter(r[key]) for r in report.values()),
                           collections.Counter())
  skipped, repaired = counts('skipped'), counts('repaired')
  total = lambda c: sum(c.values())
  describe = lambda c: ', '.join(f'{v} {k}' for k, v in sorted(c.items()))
  splits = ', '.join(f'{s} {r["examples"]}' for s, r in report.items())
  line = f'{name}: {examples} examples from {files} files ({splits})'
  line += f'; skipped {total(skipped)}' + (f' ({describe(skipped)})' if skipped else '')
  line += f'; repaired {total(repaired)}' + (f' ({describe(repaired)})' if repaired else '')
  return line


def read_report(data_dir):
  """The report.json of a prepared dataset ({} if it has none)."""
  path = os.path.join(os.fspath(data_dir), REPORT)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)
