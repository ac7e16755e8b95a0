"""avjax's modules import each other without a cycle, and checkpoint knows no task."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def module_name(path):
  """avjax/tasks/sync.py -> 'avjax.tasks.sync'; avjax/tasks/__init__.py -> 'avjax.tasks'."""
  parts = path.relative_to(ROOT).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported(source, modules):
  """The `modules` that `source` imports, at module level or inside a function:
  `from avjax.tasks import sync` is avjax.tasks.sync, `from avjax import tasks` the
  package avjax.tasks (its __init__), `from avjax.tasks import TASKS` that too."""
  found = set()
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      assert node.level == 0, 'avjax imports absolutely'
      found.update(f'{node.module}.{alias.name}' if f'{node.module}.{alias.name}' in modules
                   else node.module for alias in node.names)
  return found & modules


def import_graph():
  paths = sorted((ROOT / 'avjax').rglob('*.py'))
  modules = {module_name(path) for path in paths}
  return {module_name(path): imported(path.read_text(), modules) for path in paths}


def find_cycle(graph):
  """A list of modules [a, b, ..., a] that import each other in a ring, or None."""
  done, path = set(), []

  def visit(node):
    if node in path:
      return path[path.index(node):] + [node]
    if node in done:
      return None
    path.append(node)
    for child in sorted(graph.get(node, ())):
      cycle = visit(child)
      if cycle:
        return cycle
    path.pop()
    done.add(node)
    return None

  for node in sorted(graph):
    cycle = visit(node)
    if cycle:
      return cycle
  return None


def reachable(graph, start):
  seen, todo = set(), [start]
  while todo:
    for child in graph[todo.pop()] - seen:
      seen.add(child)
      todo.append(child)
  return seen


def test_the_import_graph_reads_function_level_and_package_imports():
  modules = {'avjax', 'avjax.tasks', 'avjax.tasks.sync', 'avjax.checkpoint'}
  source = ('import avjax\nfrom avjax.tasks import sync\n'
            'def f():\n  from avjax import tasks, checkpoint\n  import numpy\n')
  assert imported(source, modules) == modules
  assert imported('from avjax.tasks import TASKS\n', modules) == {'avjax.tasks'}
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == ['a', 'b', 'c', 'a']
  assert find_cycle({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}) is None


def test_avjax_has_no_import_cycle():
  graph = import_graph()
  assert {'avjax.checkpoint', 'avjax.export', 'avjax.tasks.sync'} <= set(graph)
  cycle = find_cycle(graph)
  assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_checkpoint_imports_no_task_and_tasks_no_exporter():
  graph = import_graph()
  assert not {m for m in reachable(graph, 'avjax.checkpoint') if m.startswith('avjax.tasks')}
  assert 'avjax.export' in reachable(graph, 'avjax.evaluate.speech')
  for task in (m for m in graph if m.startswith('avjax.tasks')):
    assert 'avjax.export' not in reachable(graph, task), task


def test_importing_the_exporter_defines_no_flags():
  """avjax.main's --workdir and avjax.export's stay apart: a library import of
  avjax.export (the suites) next to avjax.main is no DuplicateFlagError."""
  code = ('from absl import flags\nimport avjax.main\nimport avjax.export\n'
          "assert 'out' not in flags.FLAGS, 'avjax.export defined --out on import'\n")
  proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
