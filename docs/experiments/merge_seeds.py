r"""Tabulates seeds of one suite that ran with different --methods as one results.json.

  python docs/experiments/merge_seeds.py WORKDIR SEED_DIR [SEED_DIR ...]

An experiment helper of docs/sync.md, not part of the package. `--seeds=N`
reruns a seed that finished with other settings, so seeds that ran only some
of a suite's applications (`--methods=localisation`: the pretext and
localisation) cannot join a full seed's table through the suite itself. This
writes WORKDIR/results.{json,md} from the rows of each SEED_DIR's
results.json (a suite's WORKDIR/seed_K), with the first one's title,
reference, notes, images (its paths must lie under WORKDIR) and comparisons;
each cell is the mean +- standard error over the seeds that have it, and
results.md says n where fewer seeds have a cell than the others. Then
`python -m avjax.evaluate --suite=sync --workdir=WORKDIR --docs=PAGE` writes
the tables into a page.
"""

import os
import sys

from avjax.evaluate import results


def main(workdir, seed_dirs):
  read = [results.read(d) for d in seed_dirs]
  first, rows = read[0], [row for r in read for row in r['rows']]
  seeds = sorted({row['seed'] for row in rows})
  notes = ' '.join(filter(None, (first['notes'], f'Seeds {", ".join(map(str, seeds))}; a cell '
                                 'with fewer seeds says n.')))
  images = [os.path.relpath(os.path.join(seed_dirs[0], name), workdir)
            for name in first['images']]
  results.write(workdir, rows, first['reference'], first['title'], notes, first['by_task'],
                images, results.comparison_pairs(first['comparisons']))
  print(f'wrote {len(rows)} rows of seeds {seeds} to {workdir}/results.json and results.md')


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2:])
