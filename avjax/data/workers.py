"""Worker processes for data preparation that any caller can start.

multiprocessing's `spawn` children re-import the caller's `__main__`, so a script
or notebook that prepares a dataset without an `if __name__ == '__main__':` guard
re-runs itself in each child and the pool breaks; `fork` after JAX has started
its threads can deadlock. A `Pool` worker is a fresh interpreter running
`python -m avjax.data.workers`: it imports only the module of the function it is
sent, reads pickled `(fn, item)` calls on stdin and answers each on a private
copy of stdout (a `print` in `fn` goes to stderr).

  with workers.Pool(8) as pool:
    for clip in pool.map(functools.partial(heads.render_clip, config, 'train'), range(n)):
      ...
"""

import collections
import itertools
import os
import pickle
import queue
import subprocess
import sys
import threading
import traceback

_AHEAD = 2  # Calls sent to a worker and not yet answered: it never waits for the next.


class RemoteTraceback(Exception):
  """The traceback of a call that failed in a worker (the `__cause__` of `WorkerError`)."""


class WorkerError(RuntimeError):
  """A call failed in a worker process; `item` is the argument it was called with."""

  def __init__(self, item, cause):
    super().__init__(cause)
    self.item = item


def _environment():
  """The caller's environment, with its `sys.path`: workers import what it imports."""
  path = [p for p in sys.path if p] + os.environ.get('PYTHONPATH', '').split(os.pathsep)
  return {**os.environ, 'PYTHONPATH': os.pathsep.join(dict.fromkeys(p for p in path if p))}


class Pool:
  """`num_workers` worker processes, one `map` at a time; a context manager that
  ends them on exit."""

  def __init__(self, num_workers):
    env = _environment()
    self._processes = [
        subprocess.Popen([sys.executable, '-m', __name__], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=env)
        for _ in range(num_workers)]
    self._due = collections.deque()  # (item, process) of each call not yet answered, in order.

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def map(self, fn, items):
    """fn(item) for each item, in order, computed in the workers (item i by worker i mod
    n); a failed call raises `WorkerError` naming its item, the worker's traceback as
    its cause."""
    items = iter(items)
    processes = itertools.cycle(self._processes)

    def send():
      for item in itertools.islice(items, 1):
        process = next(processes)
        _send(process, fn, item)
        self._due.append((item, process))

    try:
      for _ in range(_AHEAD * len(self._processes)):
        send()
      while self._due:
        value = _receive(*self._due.popleft())
        send()
        yield value
    finally:  # Stopped early: drain the answers still due, so the next map reads its own.
      while self._due:
        try:
          _receive(*self._due.popleft())
        except WorkerError:
          pass

  def close(self):
    """Ends the workers: at once if they owe answers (a map stopped and left undrained),
    else once they have read all calls (killing any that hangs)."""
    if self._due:
      self._due.clear()
      for process in self._processes:
        process.kill()
    for process in self._processes:
      try:
        process.stdin.close()
      except OSError:  # It has died: nothing to flush.
        pass
    for process in self._processes:
      try:
        process.wait(timeout=10)
      except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
      process.stdout.close()


def _send(process, fn, item):
  try:
    request = pickle.dumps((fn, item), pickle.HIGHEST_PROTOCOL)
  except Exception as e:  # pylint: disable=broad-except  (pickling raises several kinds)
    raise WorkerError(item, f'cannot send the call to a worker: {type(e).__name__}: {e}') from e
  try:
    process.stdin.write(request)
    process.stdin.flush()
  except OSError:
    pass  # It has stopped: `_receive` says so.


def _receive(item, process):
  """The answer of `process` to the call on `item`."""
  try:
    ok, value = pickle.load(process.stdout)
  except (OSError, EOFError, pickle.UnpicklingError) as e:
    process.kill()
    raise WorkerError(item, f'worker process {process.pid} stopped (exit code {process.wait()}, '
                            f'{type(e).__name__}: {e}); its stderr may say why') from e
  if not ok:
    cause, remote = value
    raise WorkerError(item, cause) from RemoteTraceback(remote)
  return value


def _read_requests(stream, requests):
  """Puts each `(fn, item)` read from `stream` in `requests`, or the exception that stops
  reading (EOFError at its end)."""
  while True:
    try:
      requests.put(pickle.load(stream))
    except Exception as e:  # pylint: disable=broad-except  (answered by `_serve`)
      requests.put(e)
      return


def _serve(requests, answers):
  """Answers each request with `(True, fn(item))` or `(False, (cause, traceback))`."""
  while True:
    request = requests.get()
    if isinstance(request, EOFError):
      return
    try:
      if isinstance(request, Exception):  # A request it cannot read; the rest neither.
        raise request
      fn, item = request
      answer = pickle.dumps((True, fn(item)), pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # pylint: disable=broad-except  (sent back, raised by the caller)
      answer = pickle.dumps((False, (f'{type(e).__name__}: {e}', traceback.format_exc())))
    answers.write(answer)
    answers.flush()
    if isinstance(request, Exception):
      return


def main():
  answers = os.fdopen(os.dup(sys.stdout.fileno()), 'wb')
  os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # A print() cannot corrupt the answers.
  requests = queue.SimpleQueue()  # Read as they come: the caller's writes never block.
  threading.Thread(target=_read_requests, args=(sys.stdin.buffer, requests),
                   daemon=True).start()
  _serve(requests, answers)


if __name__ == '__main__':
  main()
