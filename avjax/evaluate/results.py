"""A suite's results: rows in results.json, tables in results.md, PNG plots, and
the tables written into a docs page between marker comments.

A row is one measured number, a dict with at least `method`, `mode`
('frozen' / 'finetune'), `task`, `metric`, `value` and the condition keys
`snr_db` (None: clean audio) and `label_fraction` (of the train split's
labels). Tables and plots vary one condition at a time, the others staying at
their `reference` value (e.g. clean audio, all labels).
"""

import json
import math
import os

REQUIRED = ('method', 'mode', 'task', 'metric', 'value', 'snr_db', 'label_fraction')
CONDITIONS = ('snr_db', 'label_fraction')
_AXIS_TITLES = {'snr_db': 'test SNR', 'label_fraction': 'training labels'}


def check_rows(rows):
  """Raises ValueError on a row missing a required key or with a non-finite value."""
  for row in rows:
    missing = [k for k in REQUIRED if k not in row]
    if missing:
      raise ValueError(f'result row {row} lacks {missing}')
    if not math.isfinite(row['value']):
      raise ValueError(f'result row {row} has a non-finite value')


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
  return {(r['method'], r['mode'], r['task'], r['metric'], *(r[k] for k in CONDITIONS)):
          r['value'] for r in rows}


def _get(index, method_mode, task_metric, conditions):
  return index.get((*method_mode, *task_metric, *(conditions[k] for k in CONDITIONS)))


def _table(header, body):
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  return lines + ['| ' + ' | '.join(row) + ' |' for row in body]


def _format(value):
  return '-' if value is None else f'{value:.3f}'


def tables(rows, reference, by_task=False, level=2):
  """Markdown lines: the scores at the reference conditions (one table, or with
  `by_task` one per task of the methods it has), then a table per task and
  metric with each condition that varies varied in turn; headings at `level`."""
  index = _index(rows)
  heading = '#' * level
  task_metrics = _unique((r['task'], r['metric']) for r in rows)
  ref_text = ', '.join(f'{_AXIS_TITLES.get(k, k)} {condition_label(k, v)}'
                       for k, v in reference.items())
  lines = [f'Test scores at {ref_text} unless a column says otherwise.']
  groups = _unique(r['task'] for r in rows) if by_task else [None]
  for task in groups:
    selected = [r for r in rows if task in (None, r['task'])]
    metrics = [tm for tm in task_metrics if task in (None, tm[0])]
    header = [f'{t} {m}' if task is None else m for t, m in metrics]
    lines += [''] + ([f'{heading} {task}', ''] if task else [])
    lines += _table(['method', 'mode'] + header,
                    [[*mm] + [_format(_get(index, mm, tm, reference)) for tm in metrics]
                     for mm in _unique((r['method'], r['mode']) for r in selected)])
  for tm in task_metrics:
    selected = [r for r in rows if (r['task'], r['metric']) == tm]
    columns = [(k, v) for k in CONDITIONS if len(_values(selected, k)) > 1
               for v in _values(selected, k)]
    if not columns:
      continue
    body = [[*mm] + [_format(_get(index, mm, tm, {**reference, k: v})) for k, v in columns]
            for mm in _unique((r['method'], r['mode']) for r in selected)]
    lines += ['', f'{heading} {tm[0]} {tm[1]}', '']
    lines += _table(['method', 'mode'] + [condition_label(k, v) for k, v in columns], body)
  return lines


def markdown(rows, reference, title='Results', notes='', images=(), by_task=False):
  """results.md: the title, `notes`, the `tables` and the `images`."""
  lines = [f'# {title}', ''] + ([notes, ''] if notes else [])
  lines += tables(rows, reference, by_task)
  lines += [''] + [f'![{name}]({name})' for name in images]
  return '\n'.join(lines) + '\n'


def plot(rows, reference, key, path):
  """Score against condition `key`, a panel per task and metric, a line per method; a PNG."""
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
      points = [(i, y) for i, y in points if y is not None]
      if points:
        line, = ax.plot(*zip(*points), marker='o', color=f'C{methods.index(mm[0]) % 10}',
                        linestyle='-' if mm[1] == 'frozen' else '--')
        legend.setdefault(f'{mm[0]} ({mm[1]})', line)
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


def write(workdir, rows, reference, title='Results', notes='', by_task=False, images=()):
  """Writes WORKDIR/results.json (the rows and how to tabulate them), results.md
  and a PNG per condition that varies; `images` (names under WORKDIR) are shown
  in results.md too."""
  check_rows(rows)
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(dict(rows=rows, reference=reference, by_task=by_task, notes=notes), f, indent=1)
  images = list(images)
  for key in CONDITIONS:
    if len(_values(rows, key)) > 1:
      images.append(f'score_vs_{key}.png')
      plot(rows, reference, key, os.path.join(workdir, images[-1]))
  with open(os.path.join(workdir, 'results.md'), 'w') as f:
    f.write(markdown(rows, reference, title, notes, images, by_task))


def read(workdir):
  """WORKDIR/results.json as `write` wrote it; ValueError if absent or incomplete."""
  path = os.path.join(workdir, 'results.json')
  if not os.path.exists(path):
    raise ValueError(f'{path}: not found; run the suite with this --workdir first')
  with open(path) as f:
    results = json.load(f)
  missing = [k for k in ('rows', 'reference', 'by_task', 'notes') if k not in results]
  if missing:
    raise ValueError(f'{path} lacks {missing} (an older format); rerun the suite to rewrite it')
  check_rows(results['rows'])
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
  lines = tables(results['rows'], results['reference'], results['by_task'], level=3)
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
