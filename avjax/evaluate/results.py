"""A suite's results: rows in results.json, tables in results.md, PNG plots, and
the tables written into a docs page between marker comments.

A row is one measured number, a dict with at least `method`, `mode`
('frozen' / 'finetune'), `task`, `metric`, `value`, the condition keys
`snr_db` (None: clean audio) and `label_fraction` (of the train split's
labels), and the `seed` of the suite run that measured it. The rows of one
cell (method, mode, task, metric and conditions) over seeds are summarised by
their mean, the standard error of that mean (sample standard deviation over
sqrt(n)) and their number n. Tables and plots vary one condition at a time,
the others staying at their `reference` value (e.g. clean audio, all labels).

`compare` tells a gap between two cells from noise: the difference of their
values is taken seed by seed over the seeds both have (paired: within a seed
both cells share the label subsets, test noise and probe initialisation, so
the pairing removes what they share), and a gap is called only when the mean
difference exceeds twice its standard error (with 2 or more seeds; with 3
seeds a t statistic of 2 on 2 degrees of freedom, about 82% two-sided
confidence: a loose bar, and none at all with one seed).
"""

import json
import math
import os
from typing import NamedTuple

import numpy as np

REQUIRED = ('method', 'mode', 'task', 'metric', 'value', 'snr_db', 'label_fraction', 'seed')
CONDITIONS = ('snr_db', 'label_fraction')
CELL = ('method', 'mode', 'task', 'metric') + CONDITIONS  # What a row's seeds share.
_AXIS_TITLES = {'snr_db': 'test SNR', 'label_fraction': 'training labels'}
_KEYS = ('rows', 'reference', 'by_task', 'notes', 'title', 'images', 'comparisons')


class Stats(NamedTuple):
  """A cell's values over seeds: mean, standard error of the mean (nan for one), n."""
  mean: float
  se: float
  n: int


class Comparison(NamedTuple):
  """Cell a minus cell b, paired over the seeds both have (`compare`)."""
  difference: float
  se: float
  n: int
  gap: bool


def with_seed(rows, seed):
  """The rows, each marked with the `seed` of the suite run that measured it."""
  return [dict(row, seed=seed) for row in rows]


def cell(row):
  """The key of a row's cell: its CELL values."""
  return tuple(row[k] for k in CELL)


def check_rows(rows):
  """Raises ValueError on a row missing a required key, with a non-finite value, or
  repeating another's cell and seed."""
  seen = set()
  for row in rows:
    missing = [k for k in REQUIRED if k not in row]
    if missing:
      raise ValueError(f'result row {row} lacks {missing}')
    if not math.isfinite(row['value']):
      raise ValueError(f'result row {row} has a non-finite value')
    if (cell(row), row['seed']) in seen:
      raise ValueError(f'result row {row} repeats the cell of another row of seed {row["seed"]}')
    seen.add((cell(row), row['seed']))


def seeds(rows):
  """The seeds the rows were measured with, sorted."""
  return sorted({row['seed'] for row in rows})


def by_cell(rows):
  """{cell key: {seed: value}}."""
  cells = {}
  for row in rows:
    cells.setdefault(cell(row), {})[row['seed']] = row['value']
  return cells


def stats(values):
  """`Stats` of a cell's values over seeds."""
  values = np.asarray(values, np.float64)
  se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.nan
  return Stats(float(values.mean()), float(se), len(values))


def compare(rows, a, b):
  """`Comparison` of cell `a` minus cell `b` ({CELL key: value} each), paired over the
  seeds both have; `gap` when n >= 2 and |difference| > 2 SE (module docstring)."""
  cells = by_cell(rows)
  first, second = cells.get(cell(a), {}), cells.get(cell(b), {})
  shared = sorted(set(first) & set(second))
  if not shared:
    raise ValueError(f'no seed has both cells {dict(zip(CELL, cell(a)))} and '
                     f'{dict(zip(CELL, cell(b)))}')
  difference = stats([first[s] - second[s] for s in shared])
  gap = difference.n > 1 and abs(difference.mean) > 2 * difference.se
  return Comparison(difference.mean, difference.se, difference.n, gap)


def condition_label(key, value):
  """'clean' / '10 dB' for SNRs, '1%' for label fractions."""
  if key == 'snr_db':
    return 'clean' if value is None else f'{value:g} dB'
  if key == 'label_fraction':
    return f'{100 * value:g}%'
  return str(value)


def _unique(values):
  return list(dict.fromkeys(values))


def _values(rows, key):
  """The values of condition `key` in `rows`: clean then falling SNR; rising fractions."""
  if key == 'snr_db':
    return sorted(_unique(r[key] for r in rows), key=lambda v: -math.inf if v is None else -v)
  return sorted(_unique(r[key] for r in rows))


def _index(rows):
  """{cell key: `Stats`}."""
  return {key: stats(list(values.values())) for key, values in by_cell(rows).items()}


def _get(index, method_mode, task_metric, conditions):
  return index.get((*method_mode, *task_metric, *(conditions[k] for k in CONDITIONS)))


def _table(header, body):
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  return lines + ['| ' + ' | '.join(row) + ' |' for row in body]


def _format(cell_stats, num_seeds=1):
  """'0.500' (one seed), '0.500 ± 0.012' (mean ± SE), with ' (n=2)' where fewer than
  `num_seeds` seeds have the cell; '-' for none."""
  if cell_stats is None:
    return '-'
  text = f'{cell_stats.mean:.3f}'
  if cell_stats.n > 1:
    text += f' ± {cell_stats.se:.3f}'
  return text + (f' (n={cell_stats.n})' if cell_stats.n < num_seeds else '')


def _format_difference(comparison):
  """'+0.012 ± 0.010', in bold where it is a gap."""
  if comparison.n < 2:
    return f'{comparison.difference:+.3f} (n=1)'
  text = f'{comparison.difference:+.3f} ± {comparison.se:.3f}'
  return f'**{text}**' if comparison.gap else text


def _seed_text(seed_list):
  return ', '.join(map(str, seed_list))


def _pair_label(a, b):
  """'recon (frozen) - random (frozen)'."""
  return f'{a[0]} ({a[1]}) - {b[0]} ({b[1]})'


def _difference_text(rows, index, a, b, task_metric, conditions):
  """`_format_difference` of cell a minus cell b ((method, mode) pairs) on `task_metric` at
  `conditions`; '-' where either cell has no row (`index`: `by_cell(rows)`)."""
  key = lambda mm: dict(zip(CELL, (*mm, *task_metric, *(conditions[k] for k in CONDITIONS))))
  if cell(key(a)) not in index or cell(key(b)) not in index:
    return '-'
  return _format_difference(compare(rows, key(a), key(b)))


def comparison_lines(rows, reference, comparisons, by_task=False, level=2):
  """Markdown lines: a table of the `comparisons` ((method, mode) pairs, first minus
  second) on each task and metric both have at the reference conditions (a table per
  task with `by_task`); none with fewer than two seeds."""
  if len(seeds(rows)) < 2 or not comparisons:
    return []
  index = by_cell(rows)
  task_metrics = _unique((r['task'], r['metric']) for r in rows)
  difference = lambda a, b, tm: _difference_text(rows, index, a, b, tm, reference)
  lines = ['', f'{"#" * level} Comparisons', '',
           'Differences at the reference conditions, first minus second, paired over the '
           'seeds both have: mean ± standard error; **bold**: a gap, |difference| > 2 SE.']
  for task in (_unique(r['task'] for r in rows) if by_task else [None]):
    metrics = [tm for tm in task_metrics if task in (None, tm[0])]
    body = [[_pair_label(a, b)] + [difference(a, b, tm) for tm in metrics]
            for a, b in comparisons]
    body = [row for row in body if any(text != '-' for text in row[1:])]
    if not body:
      continue
    lines += [''] + ([f'{"#" * (level + 1)} {task}', ''] if task else [])
    lines += _table(['comparison'] + [f'{t} {m}' if task is None else m for t, m in metrics],
                    body)
  return lines


def tables(rows, reference, by_task=False, level=2, comparisons=()):
  """Markdown lines: the scores at the reference conditions (one table, or with
  `by_task` one per task of the methods it has), the `comparisons`
  (`comparison_lines`), then a table per task and metric with each condition that
  varies varied in turn; headings at `level`. With several seeds a cell is its
  mean ± standard error over them."""
  index = _index(rows)
  seed_list = seeds(rows)
  num_seeds = len(seed_list)
  cell_text = lambda mm, tm, conditions: _format(_get(index, mm, tm, conditions), num_seeds)
  heading = '#' * level
  task_metrics = _unique((r['task'], r['metric']) for r in rows)
  ref_text = ', '.join(f'{_AXIS_TITLES.get(k, k)} {condition_label(k, v)}'
                       for k, v in reference.items())
  lines = [f'Test scores at {ref_text} unless a column says otherwise.']
  if num_seeds > 1:
    lines[0] += (f' Each cell: mean ± standard error over {num_seeds} seeds '
                 f'({_seed_text(seed_list)}), (n=K) where only K of them have it.')
  groups = _unique(r['task'] for r in rows) if by_task else [None]
  for task in groups:
    selected = [r for r in rows if task in (None, r['task'])]
    metrics = [tm for tm in task_metrics if task in (None, tm[0])]
    header = [f'{t} {m}' if task is None else m for t, m in metrics]
    lines += [''] + ([f'{heading} {task}', ''] if task else [])
    lines += _table(['method', 'mode'] + header,
                    [[*mm] + [cell_text(mm, tm, reference) for tm in metrics]
                     for mm in _unique((r['method'], r['mode']) for r in selected)])
  lines += comparison_lines(rows, reference, comparisons, by_task, level)
  for tm in task_metrics:
    selected = [r for r in rows if (r['task'], r['metric']) == tm]
    columns = [(k, v) for k in CONDITIONS if len(_values(selected, k)) > 1
               for v in _values(selected, k)]
    if not columns:
      continue
    body = [[*mm] + [cell_text(mm, tm, {**reference, k: v}) for k, v in columns]
            for mm in _unique((r['method'], r['mode']) for r in selected)]
    labels = [condition_label(k, v) for k, v in columns]
    lines += ['', f'{heading} {tm[0]} {tm[1]}', '']
    lines += _table(['method', 'mode'] + labels, body)
    lines += condition_comparison_lines(rows, reference, comparisons, tm, columns, labels)
  return lines


def condition_comparison_lines(rows, reference, comparisons, task_metric, columns, labels):
  """Markdown lines: the `comparisons` on `task_metric` at each of `columns`
  ((condition, value) pairs, the others at `reference`); none with fewer than two
  seeds or where no pair has the metric."""
  if len(seeds(rows)) < 2:
    return []
  index = by_cell(rows)
  cells = [{**reference, k: v} for k, v in columns]
  body = [[_pair_label(a, b)] + [_difference_text(rows, index, a, b, task_metric, c)
                                 for c in cells] for a, b in comparisons]
  body = [row for row in body if any(text != '-' for text in row[1:])]
  if not body:
    return []
  return ['', f'Differences ({task_metric[0]} {task_metric[1]}), first minus second, '
          'paired over seeds; **bold**: |difference| > 2 SE.', ''] + _table(
              ['comparison'] + labels, body)


def markdown(rows, reference, title='Results', notes='', images=(), by_task=False,
             comparisons=()):
  """results.md: the title, `notes`, the `tables` and the `images`."""
  lines = [f'# {title}', ''] + ([notes, ''] if notes else [])
  lines += tables(rows, reference, by_task, comparisons=comparisons)
  lines += [''] + [f'![{name}]({name})' for name in images]
  return '\n'.join(lines) + '\n'


def plot(rows, reference, key, path):
  """Score against condition `key`, a panel per task and metric, a line per method (the
  mean over seeds, with standard-error bars where there are several); a PNG."""
  import matplotlib  # Imported here: only plotting needs it.
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt
  index = _index(rows)
  task_metrics = _unique((r['task'], r['metric']) for r in rows)
  cols = min(len(task_metrics), 3)
  nrows = -(-len(task_metrics) // cols)
  fig, axes = plt.subplots(nrows, cols, squeeze=False, figsize=(4.5 * cols, 3.4 * nrows))
  values = _values(rows, key)
  methods = _unique(r['method'] for r in rows)
  legend = {}
  for ax, tm in zip(axes.flat, task_metrics):
    for mm in _unique((r['method'], r['mode']) for r in rows):
      points = [(i, _get(index, mm, tm, {**reference, key: v})) for i, v in enumerate(values)]
      points = [(i, s) for i, s in points if s is not None]
      if points:
        x, y = [i for i, _ in points], [s.mean for _, s in points]
        errors = [0.0 if s.n < 2 else s.se for _, s in points]
        drawn = ax.errorbar(x, y, yerr=errors if any(errors) else None, marker='o', capsize=3,
                            color=f'C{methods.index(mm[0]) % 10}',
                            linestyle='-' if mm[1] == 'frozen' else '--')
        legend.setdefault(f'{mm[0]} ({mm[1]})', drawn.lines[0])
    ax.set_xticks(range(len(values)), [condition_label(key, v) for v in values])
    ax.set(title=f'{tm[0]} {tm[1]}', xlabel=_AXIS_TITLES.get(key, key))
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(task_metrics):]:
    ax.axis('off')
  fig.legend(list(legend.values()), list(legend), loc='center left',
             bbox_to_anchor=(1.0, 0.5), fontsize='small')
  fig.tight_layout()
  fig.savefig(path, dpi=100, bbox_inches='tight')
  plt.close(fig)


def comparison_pairs(comparisons):
  """Comparisons as results.json holds them (lists) -> ((method, mode), (method, mode))."""
  return [(tuple(a), tuple(b)) for a, b in comparisons]


def write(workdir, rows, reference, title='Results', notes='', by_task=False, images=(),
          comparisons=()):
  """Writes WORKDIR/results.json (the rows and how to tabulate them), results.md
  and a PNG per condition that varies; `images` (paths under WORKDIR) are shown in
  results.md too; `comparisons` ((method, mode) pairs) are tabulated with 2+ seeds."""
  check_rows(rows)
  comparisons = [[list(a), list(b)] for a, b in comparisons]
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(dict(rows=rows, reference=reference, by_task=by_task, notes=notes, title=title,
                   images=list(images), comparisons=comparisons), f, indent=1)
  images = list(images)
  for key in CONDITIONS:
    if len(_values(rows, key)) > 1:
      images.append(f'score_vs_{key}.png')
      plot(rows, reference, key, os.path.join(workdir, images[-1]))
  with open(os.path.join(workdir, 'results.md'), 'w') as f:
    f.write(markdown(rows, reference, title, notes, images, by_task,
                     comparison_pairs(comparisons)))


def read(workdir):
  """WORKDIR/results.json as `write` wrote it; ValueError if absent or incomplete."""
  path = os.path.join(workdir, 'results.json')
  if not os.path.exists(path):
    raise ValueError(f'{path}: not found; run the suite with this --workdir first')
  with open(path) as f:
    results = json.load(f)
  missing = [k for k in _KEYS if k not in results]
  if missing:
    raise ValueError(f'{path} lacks {missing} (an older format); rerun the suite to rewrite it')
  try:
    check_rows(results['rows'])
  except ValueError as e:
    raise ValueError(f'{path}: {e}; rerun the suite to rewrite it') from e
  return results


# ---- a docs page's block of results ----

MARKER_END = '<!-- /avjax:results -->'


def marker(name):
  """The comment that opens the block of `name`'s results in a markdown page."""
  return f'<!-- avjax:results {name} -->'


def docs_block(results, name):
  """`name`'s block for a docs page: its markers around the notes and `tables` of
  `results` (as `read` returns them), headings under the page's sections."""
  notes = [results['notes'], ''] if results['notes'] else []
  lines = tables(results['rows'], results['reference'], results['by_task'], level=3,
                 comparisons=comparison_pairs(results['comparisons']))
  return '\n'.join([marker(name), ''] + notes + lines + ['', MARKER_END])


def replace_block(text, name, block, source='the page'):
  """`text` with its one block of `name` (markers included) replaced by `block`;
  ValueError naming `source` where the markers are missing or repeated."""
  start = text.find(marker(name))
  if start < 0:
    raise ValueError(f'{source}: no {marker(name)} marker to write the results after')
  if text.count(marker(name)) > 1:
    raise ValueError(f'{source}: {marker(name)} appears more than once')
  end = text.find(MARKER_END, start)
  if end < 0:
    raise ValueError(f'{source}: no {MARKER_END} after {marker(name)}')
  return text[:start] + block + text[end + len(MARKER_END):]


def write_docs(workdir, page, name):
  """Writes WORKDIR/results.json's tables into the markdown file `page`, between
  `name`'s markers; the rest of the page is left as it is."""
  block = docs_block(read(workdir), name)
  with open(page) as f:
    text = f.read()
  text = replace_block(text, name, block, page)
  with open(page, 'w') as f:
    f.write(text)
