"""The suites check their datasets before any training: tiny CREMA-D copies (audio only)
with and without a validation split, and avsynth runs whose splits or labels are off."""

import os
import subprocess
import sys
import time

import pytest

import media_fixtures
from avjax import config_lib
from avjax.data.builders import crema_d_av
from avjax.evaluate import checks
from avjax.evaluate import runs
from avjax.evaluate import speaker as speaker_suite
from avjax.evaluate import speech
from avjax.evaluate import sync as sync_suite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Actors 1001-1008 train, 1009 validation, 1010 test (crema_d_av's split rule).
ACTORS = (*range(1001, 1009), 1009, 1010)
SECONDS = 5.0  # Each check must stop a suite within this (training takes minutes).


def _write_crema_d(root, actors):
  for k, actor in enumerate(actors):
    emotion = crema_d_av.EMOTIONS[k % 2]
    media_fixtures.write_audio(
        os.path.join(root, 'AudioWAV', f'{actor}_{crema_d_av.SENTENCES[k % 12]}_{emotion}_XX.wav'),
        seconds=0.4)


@pytest.fixture(scope='module')
def copies(tmp_path_factory, data_dir):
  """{name: (data dir, manual dir)} of two CREMA-D copies, prepared where a test first
  reads them: `whole` (every split) and `no_validation` (without actor 1009). Each data
  dir also holds the session's avsynth tiny presets, what the suites pretrain on."""
  dirs = {}
  for name, actors in (('whole', ACTORS), ('no_validation', [a for a in ACTORS if a != 1009])):
    manual_dir = str(tmp_path_factory.mktemp(f'crema_d_{name}'))
    _write_crema_d(manual_dir, actors)
    tfds_dir = tmp_path_factory.mktemp(f'checks_tfds_{name}')
    os.symlink(os.path.join(data_dir, 'avsynth'), tfds_dir / 'avsynth')
    dirs[name] = str(tfds_dir), manual_dir
  return dirs


def _speech_config(copy, methods=('mfcc', 'recon')):
  """The tiny speech suite probing crema_d_av/audio (a `copies` entry), `recon`
  pretraining on avsynth."""
  data_dir, manual_dir = copy
  config = speech.get_config('tiny')
  config.data.update(runs.parse_data('crema_d_av/audio', manual_dir), data_dir=data_dir)
  config.update(methods=methods, finetune=())
  return config


def _stops_before_training(run, workdir, match):
  start = time.time()
  with pytest.raises(ValueError, match=match) as error:
    run()
  assert time.time() - start < SECONDS
  assert '\n' not in str(error.value)
  assert not os.path.exists(workdir)  # Nothing written: no run, no checkpoint.


def test_speech_suite_stops_on_a_missing_validation_split(copies, tmp_path):
  workdir = str(tmp_path / 'work')
  config = _speech_config(copies['no_validation'])
  _stops_before_training(
      lambda: speech.run(config, workdir), workdir,
      r"^dataset crema_d_av/audio/1.0.0 has no split 'validation', needed by the speech "
      r"probes; its splits are \['test', 'train'\]$")


def test_the_cli_says_so_in_one_line(copies, tmp_path):
  checks.check_splits(  # Prepared here: the subprocess only checks.
      _speech_config(copies['no_validation']).data, ('train',), 'this test')
  data_dir, manual_dir = copies['no_validation']
  workdir = tmp_path / 'work'
  proc = subprocess.run(
      [sys.executable, '-m', 'avjax.evaluate', '--suite=speech', '--preset=tiny',
       f'--workdir={workdir}', f'--data_dir={data_dir}', '--data=crema_d_av/audio',
       f'--manual_dir={manual_dir}', '--methods=mfcc,recon'],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines()[-1] == (
      "avjax.evaluate: error: dataset crema_d_av/audio/1.0.0 has no split 'validation', needed "
      "by the speech probes; its splits are ['test', 'train']")
  assert 'Traceback' not in proc.stderr and not workdir.exists()


def test_speech_suite_stops_on_pretraining_data_without_a_feature(copies, tmp_path):
  workdir = str(tmp_path / 'work')
  config = _speech_config(copies['whole'])
  config.pretrain_data = runs.parse_data('crema_d_av/audio', copies['whole'][1])
  _stops_before_training(
      lambda: speech.run(config, workdir), workdir,
      r"^dataset crema_d_av/audio/1.0.0 lacks the feature 'video', needed by pretraining recon "
      r"\(task recon\); its features are \['audio', 'emotion', ")
  config.methods = ('mfcc', 'aot')  # Audio alone: fine.
  speech.check_data(speech.with_tasks(config))


def test_sync_suite_stops_on_separation_data_without_video(copies, tmp_path):
  workdir = str(tmp_path / 'work')
  config = sync_suite.get_config('tiny')
  config.data.data_dir, manual_dir = copies['whole']
  config.separation_data = runs.parse_data('crema_d_av/audio', manual_dir)
  _stops_before_training(
      lambda: sync_suite.run(config, workdir), workdir,
      r"^dataset crema_d_av/audio/1.0.0 lacks the feature 'video', needed by separation pit ")


def test_speaker_suite_stops_on_a_pretraining_run_s_missing_split(data_dir, tmp_path):
  configs_dir = tmp_path / 'configs'  # configs/*.py, disentangle's eval split renamed.
  configs_dir.mkdir()
  for name in ('disentangle', 'speaker'):
    (configs_dir / f'{name}.py').write_text(
        'from avjax import config_lib\n\n\ndef get_config(arg=None):\n'
        f'  config = config_lib.load({name!r}, arg)\n'
        f"  config.data.eval_split = {'valid' if name == 'disentangle' else 'validation'!r}\n"
        '  return config\n')
  config = speaker_suite.get_config('tiny')
  config.update(configs_dir=str(configs_dir))
  config.data.data_dir = data_dir
  workdir = str(tmp_path / 'work')
  supervised_only = config.copy_and_resolve_references()
  supervised_only.methods = ()
  speaker_suite.check_data(supervised_only, workdir)  # Its runs read the real split names.
  _stops_before_training(
      lambda: speaker_suite.run(config, workdir), workdir,
      r"^dataset avsynth/heads_tiny/[0-9.]+ has no split 'valid', needed by pretraining "
      r"disentangle variant=disentangle; its splits are \['test', 'train', 'validation'\]$")


def _tiny(name, data_dir, **data):
  method = config_lib.load(name, 'tiny')
  method.data.update(data_dir=data_dir, **data)
  return method


@pytest.mark.parametrize('data, match', [
    (dict(eval_split='valid'), r"has no split 'valid', needed by the run; its splits are "
                               r"\['test', 'train', 'validation'\]$"),
    (dict(train_split='train[:50%]', label_fraction=0.5, label_key='action'),
     r"lacks the features \['action'\], needed by the run \(a class-stratified label_fraction "
     r"0.5\); its features are"),
])
def test_a_run_s_splits_and_label_key(data_dir, data, match):
  checks.check_run(_tiny('recon', data_dir), 'the run')
  with pytest.raises(ValueError, match=r'^dataset avsynth/heads_tiny/[0-9.]+ ' + match):
    checks.check_run(_tiny('recon', data_dir, **data), 'the run')

