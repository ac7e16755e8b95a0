r"""Tabulates seeds of one suite that ran with different --methods as one results.json.

  python docs/experiments/merge_seeds.py WORKDIR SEED_DIR[:APPS] [SEED_DIR[:APPS] ...]

An experiment helper of docs/sync.md, not part of the package. `--seeds=N`
reruns a seed that finished with other settings, so seeds that ran only some
of a suite's applications (`--methods=localisation`: the pretext and
localisation) cannot join a full seed's table through the suite itself. This
writes WORKDIR/results.{json,md} from the rows of each SEED_DIR's
results.json (a suite's WORKDIR/seed_K), with the first one's title,
reference, notes, images (its paths must lie under WORKDIR) and order of
tables, and the comparisons of them all;
each cell is the mean +- standard error over the seeds that have it, and
results.md says n where fewer seeds have a cell than the others. Then
`python -m avjax.evaluate --suite=sync --workdir=WORKDIR --docs=PAGE` writes
the tables into a page.

A row that several SEED_DIRs hold (the pretext, which every run scores, or an
application run again) is kept once; they must agree, as the suite's
evaluation is deterministic. `SEED_DIR:APPS` (comma-separated applications,
e.g. `:separation`) takes only those applications' rows from it, and the
pretext's: where an application was run again with other settings, the older
run's rows are left out this way.
"""

import os
import sys

from avjax.evaluate import results


def unique_rows(rows_by_dir):
  """The rows of {seed_dir: rows}, each kept once; raises where two directories hold
  one row (the same fields but its value) with different values."""
  kept = {}
  for seed_dir, rows in rows_by_dir.items():
    for row in rows:
      key = tuple(sorted((k, v) for k, v in row.items() if k != 'value'))
      if key in kept and abs(kept[key][1]['value'] - row['value']) > 1e-6:
        raise ValueError(f'{seed_dir} and {kept[key][0]} disagree on {dict(key)}: '
                         f'{row["value"]} and {kept[key][1]["value"]}')
      kept.setdefault(key, (seed_dir, row))
  return [row for _, row in kept.values()]


def selected(rows, apps):
  """The rows of the applications `apps` (a comma-separated string; '': all) and of the
  pretext."""
  keep = apps.split(',') if apps else None
  return [r for r in rows if keep is None or r['task'].startswith('pretext')
          or r['task'] in keep]


def main(workdir, specs):
  seed_dirs, _, apps = zip(*[spec.partition(':') for spec in specs])
  read = [results.read(d) for d in seed_dirs]
  first = read[0]
  rows = unique_rows({spec: selected(r['rows'], a)
                      for spec, r, a in zip(specs, read, apps)})
  tasks = list(dict.fromkeys(r['task'] for r in first['rows'] + rows))  # First's order.
  rows.sort(key=lambda r: tasks.index(r['task']))
  seeds = sorted({row['seed'] for row in rows})
  notes = ' '.join(filter(None, (first['notes'], f'Seeds {", ".join(map(str, seeds))}; a cell '
                                 'with fewer seeds says n.')))
  images = [os.path.relpath(os.path.join(seed_dirs[0], name), workdir)
            for name in first['images']]
  comparisons = {tuple(map(tuple, c)): None for r in read for c in r['comparisons']}
  os.makedirs(workdir, exist_ok=True)
  results.write(workdir, rows, first['reference'], first['title'], notes, first['by_task'],
                images, list(comparisons))
  print(f'wrote {len(rows)} rows of seeds {seeds} to {workdir}/results.json and results.md')


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2:])
