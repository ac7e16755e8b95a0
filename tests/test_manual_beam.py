"""The pieces of ManualBuilder's Beam path that need no Beam (CI has none): the item chunks
the workers read, and the notes they send back, merged into report.json in any order."""

import json
import random

import numpy as np

from avjax.data import media
from avjax.data.builders import manual

RESAMPLED = 'resampled from 44100 Hz (expected 16000 Hz)'
ITEMS = [manual.Item(f'w/{i}.mp4', dict(word=i, words=np.array([i], np.int32)),
                     repairs=('no word duration: the word spans the whole clip',) * (i == 3))
         for i in range(7)] + [manual.Broken('w/bad name.mp4', 'unexpected name')]


def _clip(index, item):
  """What decoding gives: item 1 truncated, item 5 resampled, the Broken item itself."""
  if isinstance(item, manual.Broken):
    return item
  if index == 1:
    return manual.Broken(item.path, 'truncated', 'moov atom not found')
  return media.Clip(audio=np.zeros(640, np.int16), video=None,
                    repairs=(RESAMPLED,) * (index == 5))


def test_chunks_hold_every_item_with_its_index(tmp_path):
  paths = manual._write_chunks(ITEMS, tmp_path, 'train', size=3)
  assert [p.rsplit('/', 1)[1] for p in paths] == [
      f'train-items-0000{i}.pickle' for i in range(3)]
  read = [pair for path in paths for pair in manual._read_chunk(path)]
  assert [index for index, _ in read] == list(range(len(ITEMS)))
  assert [item.path for _, item in read] == [item.path for item in ITEMS]
  assert read[4][1].labels['word'] == 4 and list(read[4][1].labels['words']) == [4]
  assert isinstance(read[7][1], manual.Broken) and read[3][1].repairs == ITEMS[3].repairs


def test_notes_in_any_order_give_the_same_report_and_written_indices():
  notes = [n for i, item in enumerate(ITEMS) if (n := manual._note(i, item, _clip(i, item)))]
  report, written = manual.notes_report(len(ITEMS), notes)
  assert written == [0, 2, 3, 4, 5, 6]
  assert (report['files'], report['examples']) == (8, 6)
  assert report['skipped'] == {'truncated': 1, 'unexpected name': 1}
  assert [f['path'] for f in report['skipped_files']] == ['w/1.mp4', 'w/bad name.mp4']
  assert report['repaired'] == {'no word duration': 1, 'resampled': 1}
  assert [f['path'] for f in report['repaired_files']] == ['w/3.mp4', 'w/5.mp4']
  # As the Beam pipeline collects them: shuffled, through JSON.
  shuffled = json.loads(json.dumps(random.Random(0).sample(notes, len(notes))))
  assert shuffled != notes
  assert manual.notes_report(len(ITEMS), shuffled) == (report, written)
