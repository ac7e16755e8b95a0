r"""Executes the notebooks headlessly, or strips their outputs.

  python colabs/execute.py                          # every colabs/*.ipynb
  AVJAX_WORKDIR=/tmp/avjax/recon AVJAX_FIGURES=/tmp/figures \
      python colabs/execute.py colabs/recon_demo.ipynb
  python colabs/execute.py --strip                  # before committing a notebook

Each notebook runs top to bottom in a fresh kernel of this interpreter, with
this process's environment (the notebooks read their parameters from AVJAX_*
variables) and the notebook's folder as working directory. A failing cell
stops its notebook with the cell's number, its source and the error; the
exit status is 1 if any notebook failed. Executed notebooks are written only
with --out. Needs the test extra (`pip install -e '.[test]'`: nbclient,
nbformat, ipykernel). Where avjax is not importable, each notebook's first cell
installs this checkout, or the source that AVJAX_SOURCE names.
"""

import argparse
import pathlib
import re
import sys
import time

import nbclient
import nbformat
from nbclient import exceptions

COLABS = pathlib.Path(__file__).resolve().parent
_ANSI = re.compile(r'\x1b\[[0-9;]*m')  # IPython colours its tracebacks.


class NotebookError(Exception):
  """A notebook that did not run to the end: which one, the cell and the error."""


def strip(nb):
  """Removes every cell's outputs, execution count and execution timings, in place."""
  for cell in nb.cells:
    cell.metadata.pop('execution', None)
    if cell.cell_type == 'code':
      cell.outputs = []
      cell.execution_count = None
  return nb


def execute(path, timeout=600):
  """Runs the notebook at `path` in a new kernel; returns it executed.

  Raises NotebookError naming the cell that failed (an error, a cell running
  past `timeout` seconds, or a kernel that died).
  """
  path = pathlib.Path(path)
  nb = nbformat.read(path, as_version=4)
  started = {}
  client = nbclient.NotebookClient(
      nb, timeout=timeout, kernel_name='python3',
      resources={'metadata': {'path': str(path.parent)}},
      on_cell_start=lambda cell, cell_index: started.update(index=cell_index))
  try:
    client.execute()
  except (exceptions.CellControlSignal, exceptions.DeadKernelError) as e:
    index = started.get('index', 0)
    raise NotebookError(f'{path}: cell {index + 1} of {len(nb.cells)} failed: '
                        f'{type(e).__name__}\n{_ANSI.sub("", str(e))}') from None
  return nb


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('notebooks', nargs='*', type=pathlib.Path,
                      help='notebooks (default: every colabs/*.ipynb)')
  parser.add_argument('--strip', action='store_true',
                      help='strip the outputs in place instead of executing')
  parser.add_argument('--timeout', type=int, default=600, help='seconds a cell may take')
  parser.add_argument('--out', type=pathlib.Path, help='folder to write executed notebooks to')
  args = parser.parse_args(argv)
  paths = args.notebooks or sorted(COLABS.glob('*.ipynb'))
  missing = [str(p) for p in paths if not p.is_file()]
  if missing:
    parser.error(f'no such notebook: {", ".join(missing)}')
  failed = 0
  for path in paths:
    if args.strip:
      nbformat.write(strip(nbformat.read(path, as_version=4)), path)
      continue
    start = time.perf_counter()
    try:
      nb = execute(path, args.timeout)
    except NotebookError as e:
      print(e, file=sys.stderr)
      failed += 1
      continue
    print(f'{path.name}: executed in {time.perf_counter() - start:.1f} s', flush=True)
    if args.out:
      args.out.mkdir(parents=True, exist_ok=True)
      nbformat.write(nb, args.out / path.name)
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
