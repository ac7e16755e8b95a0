"""Seeds: rows marked with their seed, mean ± standard error over seeds, paired
comparisons, the per-seed runs of `runs.run_seeds` (reuse, migration), and the seed
reaching every training run a suite makes."""

import json
import os

import ml_collections
import numpy as np
import pytest

from avjax.evaluate import results
from avjax.evaluate import runs
from avjax.evaluate import speaker as speaker_suite
from avjax.evaluate import speech
from avjax.evaluate import sync as sync_suite

REFERENCE = dict(snr_db=None, label_fraction=1.0)


def _row(method, value, seed, snr_db=None, label_fraction=1.0):
  return dict(method=method, mode='frozen', task='emotion', metric='uar', value=float(value),
              snr_db=snr_db, label_fraction=label_fraction, seed=seed)


def _cell(method):
  return dict(method=method, mode='frozen', task='emotion', metric='uar', **REFERENCE)


def test_tables_give_mean_and_standard_error_over_seeds(tmp_path):
  values = np.random.default_rng(0).uniform(0.2, 0.6, size=(2, 4))  # [method, seed]
  rows = [_row(m, values[i, s], s) for i, m in enumerate(('mfcc', 'recon')) for s in range(4)]
  rows += [_row('recon', 0.1 * s, s, snr_db=0.0) for s in (1, 3)]  # Two seeds only.
  results.write(str(tmp_path), rows, REFERENCE)
  text = (tmp_path / 'results.md').read_text()
  for i, method in enumerate(('mfcc', 'recon')):
    mean, se = values[i].mean(), values[i].std(ddof=1) / 2  # sqrt(4 seeds).
    assert f'| {method} | frozen | {mean:.3f} ± {se:.3f} |' in text
  assert '| 0.200 ± 0.100 (n=2) |' in text  # 0.1 and 0.3.
  assert 'mean ± standard error over 4 seeds (0, 1, 2, 3)' in text
  assert '## Comparisons' not in text  # None named.
  written = json.loads((tmp_path / 'results.json').read_text())
  assert written['rows'] == rows and {r['seed'] for r in written['rows']} == {0, 1, 2, 3}
  assert (tmp_path / 'score_vs_snr_db.png').stat().st_size > 1000
  one_seed = [r for r in rows if r['seed'] == 0]
  assert f'| mfcc | frozen | {values[0, 0]:.3f} |' in results.markdown(one_seed, REFERENCE)


def test_compare_takes_differences_seed_by_seed_and_calls_gaps_beyond_two_se():
  rng = np.random.default_rng(1)
  base = rng.uniform(0.2, 0.6, 5)  # Shared by both cells of a seed: the pairing removes it.
  rows = [_row('random', base[s], s) for s in range(5)]
  rows += [_row('recon', base[s] + 0.02 + 0.005 * rng.standard_normal(), s) for s in range(5)]
  rows += [_row('aot', base[s] + 0.05 * rng.standard_normal(), s) for s in range(5)]
  for method, gap in (('recon', True), ('aot', False)):
    out = results.compare(rows, _cell(method), _cell('random'))
    diffs = np.array([r['value'] for r in rows if r['method'] == method]) - base
    assert out.difference == pytest.approx(diffs.mean())
    assert out.se == pytest.approx(diffs.std(ddof=1) / np.sqrt(5))
    assert out.n == 5 and out.gap == gap == (abs(diffs.mean()) > 2 * out.se)
  unpaired = results.compare(rows + [_row('mfcc', 0.9, 4)], _cell('mfcc'), _cell('random'))
  assert (unpaired.n, unpaired.gap) == (1, False)  # One shared seed: no gap called.
  with pytest.raises(ValueError, match='no seed has both cells'):
    results.compare(rows, _cell('nosuch'), _cell('random'))


def test_comparisons_are_tabulated_with_two_seeds_or_more():
  rows = [_row('random', 0.3 + 0.01 * s, s) for s in range(3)]
  rows += [_row('recon', 0.5 + 0.01 * s + 0.001 * (s == 1), s) for s in range(3)]
  pairs = [(('recon', 'frozen'), ('random', 'frozen')), (('nosuch', 'frozen'), ('random', 'frozen'))]
  text = results.markdown(rows, REFERENCE, comparisons=pairs)
  assert '| comparison | emotion uar |\n|---|---|\n| recon (frozen) - random (frozen) | ' \
      '**+0.200 ± 0.000** |' in text
  assert 'nosuch' not in text
  assert 'Comparisons' not in results.markdown(rows[:1] + rows[3:4], REFERENCE,
                                               comparisons=pairs)


def test_comparisons_are_tabulated_at_each_condition_that_varies():
  rng = np.random.default_rng(2)
  rows = []
  for snr, deltas in ((None, (0.2, 0.21, 0.19)), (0.0, (0.02, -0.02, 0.001))):
    base = rng.uniform(0.2, 0.4, 3)  # A gap clean, none at 0 dB.
    rows += [_row('random', base[s], s, snr_db=snr) for s in range(3)]
    rows += [_row('recon', base[s] + deltas[s], s, snr_db=snr) for s in range(3)]
  pairs = [(('recon', 'frozen'), ('random', 'frozen'))]
  text = results.markdown(rows, REFERENCE, comparisons=pairs)
  cells = []
  for snr in (None, 0.0):
    out = results.compare(rows, dict(_cell('recon'), snr_db=snr), dict(_cell('random'), snr_db=snr))
    body = f'{out.difference:+.3f} ± {out.se:.3f}'
    cells.append(f'**{body}**' if out.gap else body)
  assert cells[0].startswith('**') and not cells[1].startswith('**')
  assert ('| comparison | clean | 0 dB |\n|---|---|---|\n'
          f'| recon (frozen) - random (frozen) | {cells[0]} | {cells[1]} |') in text
  assert 'Differences (emotion uar)' not in results.markdown(
      [r for r in rows if r['seed'] == 0], REFERENCE, comparisons=pairs)


def test_rows_need_a_seed_and_one_row_per_cell_and_seed():
  row = _row('recon', 0.5, 0)
  with pytest.raises(ValueError, match=r"lacks \['seed'\]"):
    results.check_rows([{k: v for k, v in row.items() if k != 'seed'}])
  with pytest.raises(ValueError, match='repeats the cell of another row of seed 0'):
    results.check_rows([row, dict(row, value=0.4)])
  results.check_rows([row, dict(row, seed=1)])
  assert results.with_seed([{'value': 1.0}], 3) == [{'value': 1.0, 'seed': 3}]


class _FakeSuite:
  """A suite's `run`: writes a seed's results like the suites, counts its runs."""

  def __init__(self):
    self.runs = []

  def __call__(self, config, workdir):
    self.runs.append((config.seed, workdir))
    os.makedirs(os.path.join(workdir, 'pretrain'), exist_ok=True)
    rows = [_row(m, config.scale * (0.1 * config.seed + v), config.seed)
            for m, v in (('random', 0.3), ('recon', 0.5))]
    results.write(workdir, rows, REFERENCE, title='Fake suite', notes='Fake notes.',
                  images=['det.png'], comparisons=[(('recon', 'frozen'), ('random', 'frozen'))])
    return rows


def test_run_seeds_reuses_finished_seeds_and_aggregates(tmp_path):
  config = ml_collections.ConfigDict(dict(seed=0, scale=1.0))
  suite = _FakeSuite()
  workdir = str(tmp_path)
  runs.run_seeds(suite, config, workdir, range(1))
  first = (tmp_path / 'seed_0' / runs.FINISHED).stat().st_mtime_ns
  rows = runs.run_seeds(suite, config, workdir, range(3))
  assert suite.runs == [(s, str(tmp_path / f'seed_{s}')) for s in range(3)]  # Seed 0 once.
  assert (tmp_path / 'seed_0' / runs.FINISHED).stat().st_mtime_ns == first
  assert sorted((r['method'], r['seed']) for r in rows) == sorted(
      (m, s) for m in ('random', 'recon') for s in range(3))
  written = results.read(workdir)
  assert written['rows'] == rows and written['title'] == 'Fake suite'
  assert written['notes'].startswith('Fake notes. Seeds 0, 1, 2: each trains every run anew')
  assert written['images'] == ['seed_0/det.png']
  text = (tmp_path / 'results.md').read_text()
  assert '| recon | frozen | 0.600 ± 0.058 |' in text  # 0.5, 0.6, 0.7.
  assert '| recon (frozen) - random (frozen) | **+0.200 ± 0.000** |' in text
  assert '![seed_0/det.png](seed_0/det.png)' in text
  config.scale = 2.0  # Another config: every seed runs again.
  runs.run_seeds(suite, config, workdir, [1, 2])
  assert [s for s, _ in suite.runs[3:]] == [1, 2]
  assert '| recon | frozen | 1.300 ± 0.100 |' in (tmp_path / 'results.md').read_text()


def test_a_workdir_from_before_seeds_becomes_seed_0(tmp_path):
  for name in ('pretrain/recon', 'encoders/recon'):
    (tmp_path / name).mkdir(parents=True)
  (tmp_path / 'pretrain' / 'recon' / 'checkpoint').write_text('step 3000')
  (tmp_path / 'notes.txt').write_text('not the suite\'s')
  runs.migrate(str(tmp_path), speech.RUN_DIRS)
  assert (tmp_path / 'seed_0' / 'pretrain' / 'recon' / 'checkpoint').read_text() == 'step 3000'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['notes.txt', 'seed_0']
  (tmp_path / 'pretrain').mkdir()  # With seed_0 there, nothing moves again.
  runs.migrate(str(tmp_path), speech.RUN_DIRS)
  assert (tmp_path / 'pretrain').is_dir() and not (tmp_path / 'seed_0' / 'seed_0').exists()


def test_the_seed_reaches_every_training_run():
  config = speech.get_config('tiny')
  config.seed = 3
  assert speech.method_config(config, 'recon').seed == 3
  config = sync_suite.get_config('tiny')
  config.seed = 4
  assert runs.run_config(config, 'sync', config.pretrain_data).seed == 4
  assert sync_suite.action_config(config, 0.5, '/export').seed == 4
  assert {m.seed for m in sync_suite.separation_configs(config).values()} == {4}
  config = speaker_suite.get_config('tiny')
  config.seed = 5
  assert speaker_suite.pretrain_config(config, 'both').seed == 5
  assert speaker_suite.finetune_config(config, 'both', 0.5, '/work').seed == 5
