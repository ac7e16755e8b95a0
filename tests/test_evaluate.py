"""The probing harness: metrics, features, noise, label subsets, probes; the speech and sync suites."""

import json
import math
import os
import pathlib
import subprocess
import sys
import warnings

import jax
import mir_eval
import ml_collections
import numpy as np
import pytest
import soundfile as sf
from sklearn.metrics import recall_score

from avjax import config_lib
from avjax import tasks
from avjax.data import ops
from avjax.data import pipeline
from avjax.data.synth import scenes
from avjax.evaluate import features
from avjax.evaluate import linear_probe
from avjax.evaluate import metrics
from avjax.evaluate import probe
from avjax.evaluate import results
from avjax.evaluate import runs
from avjax.evaluate import speaker as speaker_suite
from avjax.evaluate import speech
from avjax.evaluate import sync as sync_suite

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---- metrics ----

@pytest.mark.parametrize('seed', range(5))
def test_uar_matches_sklearn_macro_recall(seed):
  rng = np.random.default_rng(seed)
  labels = rng.choice(6, size=200, p=[0.4, 0.3, 0.1, 0.1, 0.05, 0.05])
  predictions = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 7, 200))  # 6: never true.
  expected = recall_score(labels, predictions, average='macro', labels=np.unique(labels))
  assert metrics.uar(labels, predictions) == pytest.approx(expected)
  assert metrics.accuracy(labels, predictions) == pytest.approx(np.mean(labels == predictions))


def test_uar_weighs_classes_equally():
  labels = np.array([0] * 8 + [1] * 2)
  always_zero = np.zeros(10, int)
  assert metrics.accuracy(labels, always_zero) == pytest.approx(0.8)
  assert metrics.uar(labels, always_zero) == pytest.approx(0.5)


def test_ccc_on_hand_made_cases():
  x = np.sin(np.linspace(0, 4 * np.pi, 200, endpoint=False))  # Zero mean.
  assert metrics.ccc(x, x) == pytest.approx(1.0)
  assert metrics.ccc(x, -x) == pytest.approx(-1.0)
  offset = metrics.ccc(x, x + 0.5)
  assert offset < 1.0
  assert offset == pytest.approx(2 * x.var() / (2 * x.var() + 0.25))
  y = 0.5 * x + 0.1 * np.cos(3 * np.linspace(0, 4 * np.pi, 200)) + 0.2
  r = np.corrcoef(x, y)[0, 1]
  expected = 2 * r * x.std() * y.std() / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)
  assert metrics.ccc(x, y) == pytest.approx(expected)
  assert metrics.ccc(np.ones(5), np.ones(5)) == 1.0


def test_masked_ccc_matches_numpy_ccc_on_the_valid_entries():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(4, 10)), rng.normal(size=(4, 10))
  mask = (np.arange(10) < np.array([[3], [10], [7], [1]])).astype(np.float32)
  got = probe.masked_ccc(x, y, mask)
  assert float(got) == pytest.approx(metrics.ccc(x[mask > 0], y[mask > 0]), rel=1e-4)


# ---- features and conditions ----

def test_handcrafted_features_have_one_row_per_video_frame():
  n = 50 * ops.SAMPLES_PER_FRAME
  t = np.arange(n) / ops.SAMPLE_RATE
  waveform = np.where((t >= 0.4) & (t < 0.8), 0.5 * np.sin(2 * np.pi * 440 * t), 1e-4)
  for kind, width in (('logmel', 4 * 40), ('mfcc', 4 * 13)):
    x = features.handcrafted(waveform.astype(np.float32), kind)
    assert x.shape == (50, width) and x.dtype == np.float32
  energy = features.handcrafted(waveform, 'logmel').max(1)  # The tone: frames 10..19.
  assert energy[11:19].min() > energy[:9].max() + 5
  assert energy[11:19].min() > energy[21:].max() + 5
  with pytest.raises(ValueError, match='unknown hand-crafted'):
    features.handcrafted(waveform, 'plp')


def test_encoder_windows_and_features_follow_the_frames():
  encoder = tasks.TASKS['recon'](speech.method_config(speech.get_config('tiny'), 'recon'))
  module = encoder.encoders()['audio_encoder'][0]
  waveforms = np.random.default_rng(0).normal(size=(3, 25 * 640)).astype(np.float32) * 0.1
  windows = features.windows(module, waveforms)
  assert windows.shape == (3, 25, 640 + 2 * module.context)
  params = jax.jit(module.init)(jax.random.key(0), windows[:1])['params']
  fn = jax.jit(lambda p, x: module.apply({'params': p}, x)[0])
  x = features.encode(fn, params, windows, batch_size=2)  # The last batch padded.
  assert x.shape == (3, 25, 2 * module.gru_features)
  np.testing.assert_allclose(x[1:], np.asarray(fn(params, windows[1:])), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('snr', [20.0, 5.0, 0.0])
def test_white_noise_condition_has_the_asked_snr(snr):
  clean = np.random.default_rng(1).normal(size=(3, 16000)).astype(np.float32) * 0.1
  clean[1] *= 5.0
  noisy = features.with_white_noise(clean, snr, seed=0)
  for c, n in zip(clean, noisy):
    assert ops.snr_db(c, n - c) == pytest.approx(snr, abs=1e-3)
  np.testing.assert_array_equal(noisy, features.with_white_noise(clean, snr, seed=0))
  assert features.with_white_noise(clean, None, seed=0) is clean


def test_label_subset_size_stratification_determinism_and_nesting():
  classes = np.repeat(np.arange(6), [300, 200, 200, 150, 100, 58])  # 1008 examples.
  small = pipeline.label_subset(classes, 0.01, seed=0, min_examples=8)
  assert len(small) == 11  # ceil(10.08)
  assert len(pipeline.label_subset(classes, 0.001, seed=0, min_examples=8)) == 8
  tenth = pipeline.label_subset(classes, 0.1, seed=0)
  assert len(tenth) == 101
  counts = np.bincount(classes[tenth], minlength=6)
  np.testing.assert_allclose(counts, 101 * np.bincount(classes) / 1008, atol=1.0)
  np.testing.assert_array_equal(tenth, pipeline.label_subset(classes, 0.1, seed=0))
  assert set(small) <= set(tenth)
  assert not np.array_equal(tenth, pipeline.label_subset(classes, 0.1, seed=1))
  assert len(pipeline.label_subset(classes, 1.0, seed=0)) == 1008


# ---- probes ----

def _probe_config(**overrides):
  return ml_collections.ConfigDict(dict(
      hidden=16, steps=100, batch_size=32, eval_batch_size=64, eval_every=25, patience=3,
      learning_rate=1e-2, **overrides))


def test_probe_learns_word_spans_above_chance():
  """The class shows only inside each example's span; elsewhere the frames are noise."""
  rng = np.random.default_rng(0)
  num_clips, num_frames, width, num_classes = 160, 20, 8, 4
  inputs = rng.normal(size=(num_clips, num_frames, width)).astype(np.float32)
  start = rng.integers(0, 14, num_clips)
  length = rng.integers(2, 6, num_clips)
  target = rng.integers(0, num_classes, num_clips)
  for i in range(num_clips):
    inputs[i, start[i]:start[i] + length[i], target[i]] += 2.0
  index = np.minimum(start[:, None] + np.arange(6), num_frames - 1)
  examples = probe.Examples(np.arange(num_clips), index, length, target)
  train, val, test = examples.take(slice(0, 100)), examples.take(slice(100, 130)), \
      examples.take(slice(130, 160))
  trainer = probe.Probe('classify', num_classes, _probe_config())
  params, val_score = trainer.fit(trainer.init(0, inputs), inputs, train, inputs, val, seed=0)
  accuracy = metrics.accuracy(test.target, trainer.predict(params, inputs, test))
  assert val_score > 0.7 and accuracy > 0.7  # Chance: 0.25.


def test_ridge_probe_separates_separable_classes():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 3, 60)
  x = rng.normal(size=(60, 5)) + 4.0 * np.eye(5)[y]
  assert linear_probe.ridge_accuracy(x[:30], y[:30], x[30:], y[30:]) == 1.0


def _tiny_config(data_dir, data='heads_tiny', **probe):
  config = speech.method_config(speech.get_config('tiny'), 'recon')
  config.data.update(data_dir=data_dir, config=data)
  config.probe.update(probe)
  return config


def test_linear_probe_hook_gives_finite_accuracies(data_dir):
  config = _tiny_config(data_dir, labels=('emotion', 'speaker'))
  task = tasks.TASKS['recon'](config)
  lp = linear_probe.from_config(config, task)
  module = task.encoders()['audio_encoder'][0]
  params = {'audio_encoder': module.init(jax.random.key(0), np.zeros((1, 25, 960), np.float32))
            ['params']}
  out = lp(params)
  assert set(out) == {'probe_emotion_acc', 'probe_speaker_acc'}
  assert all(0.0 <= v <= 1.0 for v in out.values())


def test_linear_probe_is_skipped_when_off_or_without_labels(data_dir):
  config = _tiny_config(data_dir, labels=())
  assert linear_probe.from_config(config, tasks.TASKS['recon'](config)) is None
  config = _tiny_config(data_dir, data='scenes_tiny')  # No emotion labels.
  assert linear_probe.from_config(config, tasks.TASKS['recon'](config)) is None


# ---- results and the suite ----

def test_results_markdown_tables_vary_one_condition_at_a_time(tmp_path):
  rows = [dict(method=m, mode='frozen', task='emotion', metric='uar', value=v + d,
               snr_db=snr, label_fraction=f, seed=0)
          for m, v in (('mfcc', 0.3), ('recon', 0.5))
          for snr, f, d in ((None, 1.0, 0.0), (0.0, 1.0, -0.2), (None, 0.1, -0.1))]
  results.write(str(tmp_path), rows, reference=dict(snr_db=None, label_fraction=1.0))
  text = (tmp_path / 'results.md').read_text()
  assert '| method | mode | clean | 0 dB | 10% | 100% |' in text
  assert '| recon | frozen | 0.500 | 0.300 | 0.400 | 0.500 |' in text
  assert json.loads((tmp_path / 'results.json').read_text()) == dict(
      rows=rows, reference=dict(snr_db=None, label_fraction=1.0), by_task=False, notes='',
      title='Results', images=[], comparisons=[])
  assert (tmp_path / 'score_vs_snr_db.png').stat().st_size > 1000
  with pytest.raises(ValueError, match='non-finite'):
    results.check_rows([dict(rows[0], value=float('nan'))])


def _write_results(workdir):
  rows = [dict(method=m, mode='frozen', task=t, metric='accuracy', value=v + e + d,
               snr_db=None, label_fraction=f, seed=0)
          for m, v in (('mfcc', 0.3), ('recon', 0.5)) for t, e in (('word', 0.0), ('emotion', 0.05))
          for f, d in ((0.1, -0.1), (1.0, 0.0))]
  results.write(str(workdir), rows, reference=dict(snr_db=None, label_fraction=1.0),
                notes='Probed on avsynth/heads.', by_task=True)


PAGE = """# Speech suite

Text above.

<!-- avjax:results speech -->
| method | mode | word accuracy |
|---|---|---|
| recon | frozen | 0.123 |
<!-- /avjax:results -->

Text below.
<!-- avjax:results sync -->
| sync | frozen | 0.479 |
<!-- /avjax:results -->
"""


def test_docs_block_is_written_from_results_json_between_the_markers(tmp_path):
  _write_results(tmp_path)
  page = tmp_path / 'speech.md'
  page.write_text(PAGE)
  results.write_docs(str(tmp_path), str(page), 'speech')
  text = page.read_text()
  before, after = PAGE.split('<!-- avjax:results speech -->')[0], PAGE.split(
      '<!-- /avjax:results -->', 1)[1]
  assert text.startswith(before + '<!-- avjax:results speech -->\n\nProbed on avsynth/heads.')
  assert text.endswith('<!-- /avjax:results -->' + after)
  block = text[len(before):len(text) - len(after)]
  assert '0.123' not in block
  assert '### word\n\n| method | mode | accuracy |' in block
  assert '### emotion accuracy\n\n| method | mode | 10% | 100% |' in block
  assert '### emotion accuracy\n\n| method | mode | 10% | 100% |\n|---|---|---|---|\n' \
      '| mfcc | frozen | 0.250 | 0.350 |\n| recon | frozen | 0.450 | 0.550 |' in block
  results.write_docs(str(tmp_path), str(page), 'speech')  # Rewriting changes nothing.
  assert page.read_text() == text


def test_docs_block_errors_name_the_page_and_the_marker(tmp_path):
  page = tmp_path / 'speech.md'
  page.write_text(PAGE)
  with pytest.raises(ValueError, match='results.json: not found'):
    results.write_docs(str(tmp_path), str(page), 'speech')
  _write_results(tmp_path)
  with pytest.raises(ValueError, match=f'{page}: no <!-- avjax:results speaker --> marker'):
    results.write_docs(str(tmp_path), str(page), 'speaker')
  page.write_text(PAGE.split('<!-- /avjax:results -->')[0])
  with pytest.raises(ValueError, match='no <!-- /avjax:results --> after'):
    results.write_docs(str(tmp_path), str(page), 'speech')
  page.write_text(PAGE + PAGE)
  with pytest.raises(ValueError, match='appears more than once'):
    results.write_docs(str(tmp_path), str(page), 'speech')
  assert page.read_text() == PAGE + PAGE
  (tmp_path / 'results.json').write_text(json.dumps({'rows': []}))
  with pytest.raises(ValueError, match="lacks \\['reference', 'by_task', 'notes', 'title', "
                     "'images', 'comparisons'\\] \\(an older format\\)"):
    results.read(str(tmp_path))


def test_cli_docs_flag_writes_the_page_without_running_the_suite(tmp_path):
  _write_results(tmp_path)
  page = tmp_path / 'speech.md'
  page.write_text(PAGE)
  proc = subprocess.run([sys.executable, '-m', 'avjax.evaluate', '--suite=speech',
                         f'--workdir={tmp_path}', f'--docs={page}'],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert '| recon | frozen | 0.450 | 0.550 |' in page.read_text()
  assert 'Text below.' in page.read_text()
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      'results.json', 'results.md', 'score_vs_label_fraction.png', 'speech.md']


def run_suite(workdir, data_dir, *flags, suite='speech'):
  cmd = [sys.executable, '-m', 'avjax.evaluate', f'--suite={suite}', '--preset=tiny',
         f'--workdir={workdir}', f'--data_dir={data_dir}', *flags]
  # The tiny suite's time goes to compiling; unoptimised code compiles in half of it.
  xla_flags = (os.environ.get('XLA_FLAGS', '') + ' --xla_backend_optimization_level=0'
               ' --xla_llvm_disable_expensive_passes=true')
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                        env={**os.environ, 'XLA_FLAGS': xla_flags})
  return proc.returncode, proc.stdout + proc.stderr


def test_tiny_speech_suite_writes_well_formed_results(data_dir, tmp_path):
  code, log = run_suite(tmp_path, data_dir)
  assert code == 0, log[-3000:]
  assert 'val_probe_emotion_acc' in log  # The pretraining's linear probe ran.
  rows = json.loads((tmp_path / 'results.json').read_text())['rows']
  for row in rows:
    assert set(results.REQUIRED) <= set(row)
    assert math.isfinite(row['value'])
  config = speech.get_config('tiny')
  loudness = {'energy', 'mfcc-c0', 'recon+energy'}  # mfcc without c0; energy alone, appended.
  assert {r['method'] for r in rows} == set(config.methods) | loudness
  assert {r['seed'] for r in rows} == {0}
  assert {(r['method'], r['mode']) for r in rows if r['mode'] == 'finetune'} == {
      (m, 'finetune') for m in config.finetune}
  assert {(r['mode'], r['task'], r['label_fraction'], r['snr_db'], r['metric'])
          for r in rows if r['method'] in loudness} == {
              ('frozen', 'emotion', 1.0, snr, metric) for snr in (None, *config.snrs_db)
              for metric in ('accuracy', 'uar')}
  assert len([r for r in rows if r['method'] in loudness]) == 3 * 2 * 2
  assert {(r['task'], r['metric']) for r in rows} == {
      ('word', 'accuracy'), ('emotion', 'accuracy'), ('emotion', 'uar'),
      ('arousal', 'ccc'), ('valence', 'ccc')}
  assert {r['snr_db'] for r in rows} == {None, *config.snrs_db}
  assert {r['label_fraction'] for r in rows} == set(config.label_fractions)
  # One row per method, mode, task, metric and condition.
  keys = [(r['method'], r['mode'], r['task'], r['metric'], r['snr_db'], r['label_fraction'],
           r['seed']) for r in rows]
  assert len(keys) == len(set(keys))
  text = (tmp_path / 'results.md').read_text()
  assert '| recon | frozen |' in text and '## emotion uar' in text
  assert '| recon+energy | frozen |' in text and 'Loudness rows (emotion, frozen, 100%' in text
  assert (tmp_path / 'score_vs_snr_db.png').exists()
  assert (tmp_path / 'seed_0' / 'encoders' / 'recon' / 'audio_encoder').is_dir()
  assert json.loads((tmp_path / 'seed_0' / 'finished.json').read_text())['rows'] == rows


def test_cli_errors_are_one_line(data_dir, tmp_path):
  code, log = run_suite(tmp_path, data_dir, '--methods=mfcc,nosuch')
  assert code != 0
  assert "avjax.evaluate: error: method 'nosuch' has no usable pretraining config" in log
  assert 'Traceback' not in log


# ---- the sync suite ----

def test_train_source_takes_a_class_stratified_fraction(data_dir):
  data = config_lib.load('action', 'tiny').data
  data.data_dir = data_dir
  full = pipeline.train_source(data)
  data.label_fraction = 0.5
  half = pipeline.train_source(data)
  labels = lambda source: [int(source[i]['action']) for i in range(len(source))]
  assert len(full) == 24 and len(half) == 12
  counts = np.bincount(labels(half), minlength=8)
  assert counts.min() >= 1 and counts.max() <= 2  # 3 clips a class, half of each.
  assert set(labels(half)) <= set(labels(full))
  np.testing.assert_array_equal(labels(half), labels(pipeline.train_source(data)))
  data.label_key = ''
  with pytest.raises(ValueError, match='needs data.label_key'):
    pipeline.train_source(data)


def test_batches_keep_every_example_in_near_equal_batches():
  examples = [{'x': np.full(3, i)} for i in range(10)]
  out = runs.batches(examples, 4)
  assert [len(b['x']) for b in out] == [4, 3, 3]
  np.testing.assert_array_equal(np.concatenate([b['x'][:, 0] for b in out]), np.arange(10))


def test_bss_rows_score_the_on_screen_voice_against_both():
  rng = np.random.default_rng(0)
  references = rng.normal(size=(3, 2, 4000)) * np.array([1.0, 0.5])[:, None]
  mixture = references.sum(1)
  rows = {r['metric']: r['value'] for r in sync_suite.bss_rows(
      'mixture', np.stack([mixture, mixture], 1), references, mixture)}
  on = references[:, 0]
  scale = (mixture * on).sum(-1) / (on * on).sum(-1)
  expected = 10 * np.log10((scale**2 * (on * on).sum(-1)) /
                           ((mixture - scale[:, None] * on) ** 2).sum(-1))
  np.testing.assert_allclose(rows['si_sdr'], expected.mean(), rtol=1e-4)
  with warnings.catch_warnings():  # Deprecated in mir_eval 0.8, the test-only reference.
    warnings.simplefilter('ignore', FutureWarning)
    reference = [mir_eval.separation.bss_eval_sources(r, np.stack([m, m]), False)
                 for r, m in zip(references, mixture)]  # (sdr, sir, sar, perm) per example.
  for k, metric in enumerate(('sdr', 'sir')):
    np.testing.assert_allclose(rows[metric], np.mean([r[k][0] for r in reference]), rtol=1e-6)
  assert rows['sar'] > 100  # The mixture has no artefacts: SAR is rounding error.
  near = references + 1e-3 * rng.normal(size=references.shape)
  assert rows['si_sdr_improvement'] == 0.0  # The mixture against itself.
  perfect = {r['metric']: r['value'] for r in sync_suite.bss_rows('x', near, references, mixture)}
  assert perfect['sdr'] > 40 and perfect['si_sdr'] > 40
  np.testing.assert_allclose(perfect['si_sdr_improvement'], perfect['si_sdr'] - expected.mean(),
                             rtol=1e-6)


def test_middle_windows_align_frames_masks_and_audio(data_dir):
  config = sync_suite.get_config('tiny')
  config.data.data_dir = data_dir
  method = runs.run_config(config, 'sync', config.data)
  inputs, seen, full, masks = sync_suite.middle_windows(method)
  clip = pipeline.load_source(method.data, 'test')[1]
  window, stride = method.sync.window_frames, method.sync.frame_stride
  start = (len(clip['video']) - window) // 2
  np.testing.assert_array_equal(full[1], clip['video'][start:start + window])
  np.testing.assert_array_equal(seen[1], clip['video'][start:start + window:stride])
  np.testing.assert_array_equal(masks[1], clip['source_mask'][start:start + window:stride])
  spf = ops.SAMPLES_PER_FRAME
  np.testing.assert_array_equal(inputs[1]['audio'],
                                ops.to_float(clip['audio'][start * spf:(start + window) * spf]))
  assert inputs[1]['video'].shape == (len(seen[1]), 16, 16, 3)  # 32x32 frames averaged down.
  shift = round(sync_suite.CONTRAST_SHIFT * window)
  later = clip['audio'][(start + shift) * spf:(start + shift + window) * spf]
  np.testing.assert_array_equal(inputs[1]['shifted_audio'], ops.to_float(later))


def test_shifted_start_goes_later_then_earlier_and_names_a_clip_too_short():
  shift = round(sync_suite.CONTRAST_SHIFT * 40)
  assert sync_suite.shifted_start(30, 40, 100, 'c') == 30 + shift  # Room after: later.
  assert sync_suite.shifted_start(40, 40, 100, 'c') == 40 - shift  # Not after: earlier.
  with pytest.raises(ValueError, match='test clip 7: a clip of 60 frames'):
    sync_suite.shifted_start(10, 40, 60, 'test clip 7')


def test_sync_suite_rejects_unknown_applications(tmp_path):
  config = sync_suite.get_config('tiny')
  config.methods = ('localisation', 'nosuch')
  with pytest.raises(ValueError, match="unknown sync applications \\['nosuch'\\]"):
    sync_suite.run(config, str(tmp_path))
  assert not list(tmp_path.iterdir())  # Before any work.


def test_tiny_sync_suite_writes_results_overlays_and_wavs(data_dir, tmp_path):
  code, log = run_suite(tmp_path, data_dir, suite='sync')
  assert code == 0, log[-3000:]
  rows = json.loads((tmp_path / 'results.json').read_text())['rows']
  results.check_rows(rows)
  found = {(r['task'], r['method'], r['metric'], r['label_fraction']) for r in rows}
  config = sync_suite.get_config('tiny')
  expected = {('pretext', 'sync', m, 1.0) for m in ('accuracy', 'pair_accuracy')}
  detectors = ('detector_seen', 'detector_full_rate')  # Hand-crafted (sync_detector).
  expected |= {('pretext', method, 'pair_accuracy', 1.0)
               for method in detectors + ('sync_fusion_logit',)}  # The model's fusion_logit.
  expected |= {('pretext by action', method, action, 1.0) for method in ('sync',) + detectors
               for action in scenes.ACTIONS}  # A test clip of each class.
  cams = [f'{net}{head}{contrast}' for net in ('sync', 'random')
          for head in ('', '_fusion_logit') for contrast in ('', '_contrast')]
  expected |= {('localisation', method, m, 1.0)
               for method in cams + [f'{name}_clip' for name in cams + ['motion_energy']] + [
                   'motion_energy', 'centre_prior', 'grid_oracle', 'grid_oracle_fusion_logit']
               for m in ('pointing_accuracy', 'pixel_auc', 'frame_auc')}
  expected |= {('action', method, 'accuracy', f) for method in ('sync', 'scratch')
               for f in config.label_fractions}
  expected |= {('separation', method, m, 1.0)
               for method in ('mixture', 'pit', 'onoff', 'onoff_sync')
               for m in ('sdr', 'sir', 'sar', 'si_sdr', 'si_sdr_improvement')}
  assert found == expected and len(rows) == len(expected)
  for r in rows:
    if r['metric'] in ('accuracy', 'pair_accuracy', 'pointing_accuracy', 'pixel_auc'):
      assert 0 <= r['value'] <= 1
  text = (tmp_path / 'results.md').read_text()
  assert '## localisation' in text and '| motion_energy | baseline |' in text
  assert '## pretext by action' in text and '| detector_full_rate | baseline |' in text
  run = tmp_path / 'seed_0'  # The runs and examples of seed 0.
  gif = run / 'localisation' / 'clip0.gif'
  assert gif.stat().st_size > 1000 and (run / 'localisation' / 'localisation.png').exists()
  audio, rate = sf.read(run / 'separation' / '0_onoff_sync_on_screen.wav')
  assert rate == ops.SAMPLE_RATE and audio.ndim == 1 and np.abs(audio).max() > 0
  assert (run / 'encoders' / 'sync' / 'sync_net').is_dir()


def test_tiny_speaker_suite_scores_every_method_and_draws_its_plots(data_dir, tmp_path):
  code, log = run_suite(tmp_path, data_dir, suite='speaker')
  assert code == 0, log[-3000:]
  rows = json.loads((tmp_path / 'results.json').read_text())['rows']
  results.check_rows(rows)
  config = speaker_suite.get_config('tiny')
  fraction = config.label_fractions[0]
  scores = ('eer', 'min_dcf_0.01', 'min_dcf_0.05', 'identification')
  found = {(r['task'], r['method'], r['metric'], r['label_fraction']) for r in rows}
  expected = {('verification', m, s, 1.0) for m in ('mfcc', 'random', 'disentangle')
              for s in scores}
  expected |= {('verification_content', m, s, 1.0) for m in ('random', 'disentangle')
               for s in scores}
  expected |= {('verification', m, s, fraction) for m in ('supervised', 'disentangle+finetune')
               for s in scores}
  expected |= {('probe', m, f'{target}_from_{head}', 1.0)
               for m in ('chance', 'random', 'disentangle')
               for target in ('viseme', 'word', 'speaker') for head in ('identity', 'content')}
  expected |= {('probe', 'mfcc', f'speaker_from_{head}', 1.0) for head in ('identity', 'content')}
  assert found == expected and len(rows) == len(expected)
  for r in rows:
    assert 0 <= r['value'] <= 1
  run = tmp_path / 'seed_0'
  assert (run / 'det.png').stat().st_size > 1000
  assert (run / 'projection.png').stat().st_size > 1000
  text = (tmp_path / 'results.md').read_text()
  assert '## verification' in text and '![seed_0/det.png](seed_0/det.png)' in text
  assert (run / 'encoders' / 'disentangle' / 'speaker_encoder').is_dir()
