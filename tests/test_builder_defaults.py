"""avjax's builders with TFDS's default calls: from an unguarded script, without
TensorFlow, written as array_record; a clip that fails to render is named."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import media_fixtures
from avjax.data import workers
from avjax.data.builders import avsynth
from avjax.data.synth import heads

# Run first in each subprocess: TensorFlow is missing even where it is installed.
NO_TENSORFLOW = '''import sys
class HideTensorflow:
  def __init__(self, finder):
    self.finder = finder
  def find_spec(self, name, path=None, target=None):
    if name.partition('.')[0] != 'tensorflow':
      return self.finder.find_spec(name, path, target)
  def __getattr__(self, name):
    return getattr(self.finder, name)
sys.meta_path[:] = map(HideTensorflow, sys.meta_path)
'''


def _run(tmp_path, code):
  """Runs `code` as `python script.py`, TensorFlow blocked; its last stdout line as JSON."""
  script = tmp_path / 'script.py'
  script.write_text(NO_TENSORFLOW + code)
  done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


def _record_files(data_dir, name):
  return sorted(f for _, _, files in os.walk(os.path.join(data_dir, name)) for f in files
                if '-train.' in f)


def test_an_unguarded_script_prepares_avsynth(tmp_path):
  data_dir = str(tmp_path / 'tfds')
  code = ('import json\n'
          'import tensorflow_datasets as tfds\n'
          'import avjax.data.builders\n'
          f"source = tfds.data_source('avsynth/heads_tiny', split='train', data_dir={data_dir!r})\n"
          'print(json.dumps([int(source[i]["index"]) for i in range(len(source))]))\n')
  indices = _run(tmp_path, code)  # No `if __name__ == '__main__':` above.
  preset = heads.PRESETS['heads_tiny']
  assert sorted(indices) == list(range(heads.split_sizes(preset)['train']))
  assert _record_files(data_dir, 'avsynth') == ['avsynth-train.array_record-00000-of-00001']
  import tensorflow_datasets as tfds
  source = tfds.data_source('avsynth/heads_tiny', split='train', data_dir=data_dir)
  for index in (0, len(source) - 1):  # Records are shuffled: find each by its `index`.
    stored = source[indices.index(index)]
    rendered = heads.render_clip(preset, 'train', index, seed=0)
    for key in ('audio', 'video', 'mouth_box', 'words', 'speaker'):
      np.testing.assert_array_equal(stored[key], rendered[key], err_msg=f'{index} {key}')


def _write_lrw(root):
  """One word, one clip in each split: the smallest layout LRW prepares from."""
  for folder in ('train', 'val', 'test'):
    path = os.path.join(root, 'lipread_mp4', 'ABOUT', folder, 'ABOUT_00001.mp4')
    media_fixtures.write_video(path, seconds=0.4, size=(32, 32))
    with open(path[:-4] + '.txt', 'w') as f:
      f.write('Text: ABOUT\n\nDuration: 0.20 seconds\n')


def test_lrw_prepares_with_tfds_defaults_and_no_tensorflow(tmp_path):
  manual_dir, data_dir = str(tmp_path / 'lrw'), str(tmp_path / 'tfds')
  _write_lrw(manual_dir)
  code = ('import json\n'
          'import tensorflow_datasets as tfds\n'
          'import avjax.data.builders\n'
          f"tfds.builder('lrw', data_dir={data_dir!r}).download_and_prepare(\n"
          f'    download_config=tfds.download.DownloadConfig(manual_dir={manual_dir!r}))\n'
          f"source = tfds.data_source('lrw', split='test', data_dir={data_dir!r})\n"
          "print(json.dumps([len(source), source[0]['path'].decode()]))\n")
  assert _run(tmp_path, code) == [1, 'lipread_mp4/ABOUT/test/ABOUT_00001.mp4']
  assert _record_files(data_dir, 'lrw') == ['lrw-train.array_record-00000-of-00001']


def test_a_clip_that_fails_to_render_is_named():
  config = next(c for c in avsynth.Avsynth.BUILDER_CONFIGS if c.name == 'heads_tiny')
  size = heads.split_sizes(config.synth_config)['validation']
  rendered = []
  with workers.Pool(2) as pool:
    with pytest.raises(RuntimeError) as failure:
      for index, _ in avsynth._clips(pool, config, 'validation', size + 1):
        rendered.append(index)
  assert rendered == list(range(size))
  message = str(failure.value)
  assert message.startswith(f'avsynth/heads_tiny: rendering clip {size} of split validation '
                            '(world heads) failed: IndexError: index')
  assert 'out of range' in message
