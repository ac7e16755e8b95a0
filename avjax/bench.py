r"""Benchmarks a config's train step: compile time, step time, FLOPs, MFU, input pipeline.

  python -m avjax.bench --config=configs/aot.py
  python -m avjax.bench --config=configs/recon.py:tiny --steps=20 --warmup=5 \
      --json=/tmp/bench/recon.json --profile_dir=/tmp/bench/trace
  python -m avjax.bench --markdown /tmp/bench/*.json   # README table rows
  python -m avjax.bench --config=configs/recon.py:accel \
      --assume_device='NVIDIA H100 80GB HBM3'           # host cores to feed one H100

The step is `train.build(config)`'s, run on one fixed device-resident batch (the
input pipeline is left out) and timed with `block_until_ready`; the pipeline
(`config.data.num_workers`, `prefetch_buffer`) is timed on its own, with no model,
after a warm-up that drains the batches its workers made while starting.
FLOPs are XLA's count for the compiled step, per device: for an SPMD program
`cost_analysis()` describes the program one device runs, so MFU is that count
over the step time and one chip's bf16 peak. XLA counts the body of a while loop
(`lax.scan`, the GRUs of `models/recurrent.py`) once, whatever its trip count, so with loops in the step
(`while_loops` > 0) FLOPs and MFU are lower bounds.

`--assume_device=KIND` sizes the host of a device this machine does not have: the
step's FLOPs per example come from its trace (as with --trace_only), the input
pipeline is run here, and the report gives the examples/s one device consumes at
40% MFU of KIND's bf16 peak, the pipeline's examples per CPU-second (the CPU time
of the main process and its Grain workers, so a loaded machine does not skew it),
and their ratio, `cores_needed_per_device`; with the bytes per example that cross
to the device and the pipeline's resident memory. The pipeline is the training one,
`data.crops_per_clip` (reported) examples made from each record it reads.
"""

import contextlib
import datetime
import functools
import json
import pathlib
import re
import statistics
import time

import jax
import psutil
from absl import app
from jax._src import ad_checkpoint
from absl import flags

from avjax import main as main_lib
from avjax import train
from avjax.data import pipeline

_STEPS = flags.DEFINE_integer('steps', 5, 'Timed steps.')
_WARMUP = flags.DEFINE_integer('warmup', 1, 'Steps run before timing, after the first.')
_JSON = flags.DEFINE_string('json', '', 'Also write the report to this JSON file.')
_PROFILE_DIR = flags.DEFINE_string('profile_dir', '', 'Write a jax.profiler trace of the '
                                   'timed steps here.')
_TRACE_ONLY = flags.DEFINE_bool(
    'trace_only', False, 'Size the step from traces, compiling and running nothing (an '
    'accel preset on a CPU): parameters, FLOPs and kept activations per example.')
_ASSUME_DEVICE = flags.DEFINE_string(
    'assume_device', '', 'Size the host for one device of this kind (one of PEAK_BF16\'s, '
    'e.g. "NVIDIA H100 80GB HBM3"): FLOPs from traces, the input pipeline run here; '
    'reports cores_needed_per_device, pipeline_bytes_per_example, pipeline_rss_bytes.')
_MARKDOWN = flags.DEFINE_bool('markdown', False, 'Print the README table of the JSON reports '
                              'named as arguments, and exit.')

# Dense (no sparsity) bf16 peak FLOP/s of one chip, by `jax.devices()[0].device_kind`
# (matched whole, first match wins).
PEAK_BF16 = (
    ('TPU v4', 275e12),  # Cloud TPU docs, "TPU v4": 275 TFLOPs bf16 per chip.
    ('TPU v5 lite|TPU v5e', 197e12),  # Cloud TPU docs, "TPU v5e": 197 TFLOPs bf16 per chip.
    ('TPU v5|TPU v5p', 459e12),  # Cloud TPU docs, "TPU v5p": 459 TFLOPs bf16 per chip.
    ('NVIDIA A100.*', 312e12),  # NVIDIA A100 datasheet: BF16 Tensor Core 312 TFLOPS (624 sparse).
    # NVIDIA H100 and H200 datasheets give bf16 with sparsity; dense is half.
    ('NVIDIA H100 PCIe', 1513e12 / 2),  # H100 PCIe: 1,513 TFLOPS sparse.
    ('NVIDIA H100 NVL', 1671e12 / 2),  # H100 NVL: 1,671 TFLOPS sparse.
    ('NVIDIA H100.*', 1979e12 / 2),  # H100 SXM ("NVIDIA H100 80GB HBM3"): 1,979 TFLOPS sparse.
    ('NVIDIA H200 NVL', 1671e12 / 2),  # H200 NVL: 1,671 TFLOPS sparse.
    ('NVIDIA H200.*', 1979e12 / 2),  # H200 SXM: 1,979 TFLOPS sparse.
)


# The MFU at which `--assume_device` sizes the host: a well-fed step reaches about this.
TARGET_MFU = 0.4
# The least CPU time the pipeline's timed batches spend: 10 clock ticks, a 10% reading.
MIN_CPU_SECONDS = 0.1


def peak_flops(device_kind):
  """One chip's dense bf16 peak FLOP/s, or None for a device not in PEAK_BF16 (a CPU)."""
  return next((peak for pattern, peak in PEAK_BF16 if re.fullmatch(pattern, device_kind)),
              None)


def step_flops(compiled):
  """XLA's FLOP count of a compiled function, per device; None if XLA gives none."""
  flops = (compiled.cost_analysis() or {}).get('flops')
  return float(flops) if flops and flops > 0 else None


def while_loops(compiled):
  """The number of while loops in a compiled function, whose bodies XLA counts once."""
  return len(re.findall(r'\bwhile\(', compiled.as_text()))


def mfu(flops, step_s, peak):
  """Model FLOPs utilisation: achieved FLOP/s over the peak; None if either is unknown."""
  if flops is None or peak is None:
    return None
  return flops / step_s / peak


def input_ratio(pipeline_examples_per_s, step_examples_per_s):
  """The pipeline's rate over the step's consumption; below 1 the step is input-bound."""
  return pipeline_examples_per_s / step_examples_per_s


def device_examples_per_s(peak, flops_per_example, target_mfu=TARGET_MFU):
  """Examples/s one device consumes at `target_mfu` of its `peak` FLOP/s."""
  return target_mfu * peak / flops_per_example


def cores_needed(device_examples_per_s, examples_per_core_s):
  """Host CPU cores that feed one device: its consumption over one core's pipeline rate."""
  return device_examples_per_s / examples_per_core_s


def _time_steps(compiled, state, count, *, batch, rng):
  """Runs `count` steps; returns the last state and each step's seconds."""
  times = []
  for _ in range(count):
    start = time.perf_counter()
    state, metrics = compiled(state, batch, rng)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  return state, times


def cpu_seconds(processes):
  """User and system CPU seconds that `processes` have used, all threads."""
  total = 0.0
  for p in processes:
    with contextlib.suppress(psutil.NoSuchProcess):
      times = p.cpu_times()
      total += times.user + times.system
  return total


def shared_memory_files():
  """{path: bytes} of the POSIX shared memory files (/dev/shm), through which Grain's
  workers hand batches to the main process."""
  files = {}
  for path in pathlib.Path('/dev/shm').glob('*'):
    with contextlib.suppress(OSError):  # Unlinked meanwhile.
      files[str(path)] = path.stat().st_size
  return files


def resident_bytes(processes, shm_before=None):
  """Resident memory of `processes`: their proportional set sizes (a page shared by n
  processes counts 1/n in each) but for shared memory, plus the shared memory files
  made since `shm_before` (batches on their way between processes, mapped or not),
  each once; None: no shared memory counted."""
  total = sum(_unshared_pss(p) for p in processes)
  if shm_before is not None:
    total += sum(size for path, size in shared_memory_files().items()
                 if path not in shm_before)
  return total


def _unshared_pss(process):
  """`process`'s proportional set size less its shared memory pages (Linux's
  smaps_rollup), or its resident set size where there is no smaps_rollup."""
  try:
    rollup = pathlib.Path(f'/proc/{process.pid}/smaps_rollup').read_text()
  except FileNotFoundError:
    with contextlib.suppress(psutil.NoSuchProcess):
      return process.memory_info().rss
    return 0
  kib = {k: int(v.split()[0]) for k, _, v in
         (line.partition(':') for line in rollup.splitlines()[1:])}
  return (kib['Pss'] - kib.get('Pss_Shmem', 0)) * 1024


def _spawned(process):
  """Whether `process` is a worker that multiprocessing spawned (a Grain worker)."""
  try:
    return any('spawn_main' in arg for arg in process.cmdline())
  except psutil.NoSuchProcess:
    return False


def measure_pipeline(iterator, batch_size, prefetch_buffer, batches, warmup,
                     shm_before=None):
  """The input pipeline of `iterator` (`batch_size` examples a batch) on its own.

  Examples per second and per CPU-second (of this process and of the workers that
  its first batch starts) over rounds of at least `batches` batches and twice what
  the pipeline holds, until they have spent `MIN_CPU_SECONDS` (CPU time comes in
  clock ticks of 10 ms), after `warmup` batches and what it holds; bytes per
  example; and the most resident memory seen over `warmup` more batches
  (`resident_bytes`).
  """
  me = psutil.Process()
  others = {p.pid for p in me.children(recursive=True)}
  next(iterator)  # Starts the workers.
  processes = [me, *(p for p in me.children(recursive=True) if p.pid not in others)]
  workers = sum(map(_spawned, processes[1:]))
  held = pipeline.held_batches(workers, prefetch_buffer)
  for _ in range(warmup + held):
    next(iterator)
  round_size, batches = max(batches, 2 * held), 0
  cpu_before, start = cpu_seconds(processes), time.perf_counter()
  while not batches or cpu_seconds(processes) - cpu_before < MIN_CPU_SECONDS:
    for _ in range(round_size):
      batch = next(iterator)
    batches += round_size
  seconds, cpu = time.perf_counter() - start, cpu_seconds(processes) - cpu_before
  rss = resident_bytes(processes, shm_before)
  for _ in range(warmup):
    next(iterator)
    rss = max(rss, resident_bytes(processes, shm_before))
  return {
      'pipeline_workers': workers,
      'pipeline_batches': batches,
      'pipeline_examples_per_s': batches * batch_size / seconds,
      'pipeline_examples_per_core_s': batches * batch_size / cpu,
      'pipeline_bytes_per_example': pipeline.batch_bytes(batch) / batch_size,
      'pipeline_rss_bytes': rss,
  }


def kept_bytes(task, params, batch, rng):
  """Bytes of the activations the loss's forward pass keeps for its backward pass
  (the parameters left out): JAX's `saved_residuals`, a private function that
  `jax.ad_checkpoint.print_saved_residuals` prints."""
  residuals = ad_checkpoint.saved_residuals(lambda p: task.loss(p, batch, rng)[0], params)
  return sum(aval.size * aval.dtype.itemsize for aval, source in residuals
             if 'argument' not in source)


def trace_sizes(config, setup=None):
  """Per-example sizes of `config`'s train step, from traces alone: XLA's FLOPs of the
  lowered step and the activations kept for the backward pass, with remat as set.
  `setup`: `train.build(config)`, if already made."""
  setup = setup or train.build(config)
  lowered = setup.step_fn.lower(setup.abstract_state, setup.first_batch, setup.train_rng)
  params = setup.abstract_state.params
  kept = kept_bytes(setup.task, params, setup.first_batch, setup.train_rng)
  return {
      'global_batch_size': setup.batch_size,
      'parameters': sum(x.size for x in jax.tree.leaves(params)),
      'dtype': config.dtype,
      'remat': config.remat,
      'gflop_per_example': lowered.cost_analysis()['flops'] / setup.batch_size / 1e9,
      'kept_mib_per_example': kept / setup.batch_size / 2**20,
      'kept_gib_per_step': kept / 2**30,
  }


def size_host(config, device_kind, batches, warmup=1):
  """The report of `--assume_device`: `trace_sizes`, `measure_pipeline` and the host
  cores that feed one `device_kind` device at TARGET_MFU."""
  peak = peak_flops(device_kind)
  if peak is None:
    raise ValueError(f'--assume_device={device_kind!r} is not a kind of bench.PEAK_BF16: '
                     f'{[pattern for pattern, _ in PEAK_BF16]}')
  shm_before = shared_memory_files()
  setup = train.build(config)
  sizes = trace_sizes(config, setup)
  measured = measure_pipeline(setup.train_iter, setup.local_batch,
                              config.data.prefetch_buffer, batches, warmup, shm_before)
  consumed = device_examples_per_s(peak, sizes['gflop_per_example'] * 1e9)
  return {
      **sizes, 'assumed_device': device_kind, 'peak_bf16_flop_per_s_per_device': peak,
      'target_mfu': TARGET_MFU, 'device_examples_per_s': consumed,
      'crops_per_clip': config.data.crops_per_clip, **measured,
      'cores_needed_per_device': cores_needed(consumed,
                                              measured['pipeline_examples_per_core_s']),
  }


def measure(config, steps, warmup, profile_dir=''):
  """The benchmark report (a dict) of `config`'s train step and input pipeline."""
  shm_before = shared_memory_files()
  setup = train.build(config)
  start = time.perf_counter()
  compiled = setup.step_fn.lower(setup.abstract_state, setup.first_batch,
                                 setup.train_rng).compile()
  compile_s = time.perf_counter() - start
  run = functools.partial(_time_steps, compiled, batch=setup.first_batch, rng=setup.train_rng)
  state, (first_step_s,) = run(jax.block_until_ready(setup.init()), 1)
  state, _ = run(state, warmup)
  with jax.profiler.trace(profile_dir) if profile_dir else contextlib.nullcontext():
    _, times = run(state, steps)
  step_s = statistics.median(times)
  flops = step_flops(compiled)
  device_kind = jax.devices()[0].device_kind
  peak = peak_flops(device_kind)
  # The pipeline holds batches made while the first one was awaited: those are
  # drained in the warm-up and outnumbered in the timing.
  measured = measure_pipeline(setup.train_iter, setup.local_batch,
                              config.data.prefetch_buffer, steps, warmup, shm_before)
  ratio = input_ratio(measured['pipeline_examples_per_s'], setup.local_batch / step_s)
  return {
      'date': datetime.date.today().isoformat(),
      'jax_version': jax.__version__,
      'device_kind': device_kind,
      'device_count': jax.device_count(),
      'process_count': jax.process_count(),
      'dtype': config.dtype,
      'global_batch_size': setup.batch_size,
      'parameters': sum(x.size for x in jax.tree.leaves(setup.abstract_state.params)),
      'steps': steps,
      'warmup': warmup,
      'compile_s': compile_s,
      'compilation_cache': bool(jax.config.jax_compilation_cache_dir),  # compile_s may be a read.
      'first_step_s': first_step_s,
      'step_s': step_s,
      'examples_per_s': setup.batch_size / step_s,
      'flops_per_device': flops,
      'while_loops': while_loops(compiled),
      'flop_per_s_per_device': None if flops is None else flops / step_s,
      'peak_bf16_flop_per_s_per_device': peak,
      'mfu': mfu(flops, step_s, peak),
      **measured,  # This host's pipeline.
      'input_ratio': ratio,
      'input_bound': ratio < 1,
  }


def _number(value, spec):
  return 'n/a' if value is None else format(value, spec)


def format_report(report):
  """The report as a readable table."""
  peak = report['peak_bf16_flop_per_s_per_device']
  rows = [
      ('global batch', f'{report["global_batch_size"]} ({report["dtype"]} compute)'),
      ('parameters', f'{report["parameters"]:,}'),
      ('compile', f'{report["compile_s"]:.2f} s (lower + compile'
                  f'{", persistent cache on" if report["compilation_cache"] else ""})'),
      ('first step', f'{report["first_step_s"]:.3f} s'),
      ('step', f'{report["step_s"]:.4f} s (median of {report["steps"]}, after '
               f'{report["warmup"]} warm-up)'),
      ('examples/s', f'{report["examples_per_s"]:.1f}'),
      ('FLOPs/step', f'{_number(report["flops_per_device"], ".3e")} per device '
                     f'({report["while_loops"]} while loops counted once)'),
      ('achieved', f'{_number(report["flop_per_s_per_device"], ".3e")} FLOP/s per device'),
      ('MFU', f'{_number(report["mfu"], ".1%")} ' + (
          f'of a {peak:.3e} FLOP/s bf16 peak' if peak else
          f'(no bf16 peak known for {report["device_kind"]})')),
      ('input pipeline', f'{report["pipeline_examples_per_s"]:.1f} examples/s (this host, '
                         f'{report["pipeline_batches"]} batches)'),
      ('pipeline host', f'{report["pipeline_examples_per_core_s"]:.0f} examples per CPU-second, '
                        f'{report["pipeline_workers"]} workers, '
                        f'{report["pipeline_rss_bytes"] / 2**20:.0f} MiB resident, '
                        f'{report["pipeline_bytes_per_example"]:,.0f} B/example'),
      ('input-bound', f'{"yes" if report["input_bound"] else "no"} (pipeline / step '
                      f'consumption = {report["input_ratio"]:.2f})'),
  ]
  title = (f'{report["config"]} ({report["preset"]}): {report["device_count"]} x '
           f'{report["device_kind"]}, {report["process_count"]} process(es), '
           f'jax {report["jax_version"]}, {report["date"]}')
  return '\n'.join([title] + [f'  {label:<16}{value}' for label, value in rows])


MARKDOWN_HEADER = (
    '| config | devices | batch | dtype | compile s | step s | examples/s | GFLOP/step/device '
    '| while loops | MFU | pipeline examples/s | input ratio |\n'
    '| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')


def markdown_row(report):
  """One row of the README's Performance table."""
  flops = report['flops_per_device']
  cells = [
      report['config'] if report['preset'] == 'default'
      else f'{report["config"]}:{report["preset"]}',
      f'{report["device_count"]} x {report["device_kind"]}', str(report['global_batch_size']),
      report['dtype'], f'{report["compile_s"]:.1f}', f'{report["step_s"]:.3f}',
      f'{report["examples_per_s"]:.1f}', _number(None if flops is None else flops / 1e9, '.3g'),
      str(report['while_loops']), _number(report['mfu'], '.1%'),
      f'{report["pipeline_examples_per_s"]:.1f}', f'{report["input_ratio"]:.2f}']
  return '| ' + ' | '.join(cells) + ' |'


def _config_name_and_preset():
  path, _, preset = flags.FLAGS['config'].config_filename.partition(':')
  return pathlib.Path(path).stem, preset or 'default'


def main(argv):
  if _MARKDOWN.value:
    reports = [json.loads(pathlib.Path(p).read_text()) for p in argv[1:]]
    print('\n'.join([MARKDOWN_HEADER] + [markdown_row(r) for r in reports]))
    return
  if main_lib.CONFIG.value is None:
    raise app.UsageError('--config is required')
  main_lib.start(argv)
  name, preset = _config_name_and_preset()
  if _TRACE_ONLY.value or _ASSUME_DEVICE.value:
    sizer = (functools.partial(size_host, device_kind=_ASSUME_DEVICE.value,
                               batches=_STEPS.value, warmup=_WARMUP.value)
             if _ASSUME_DEVICE.value else trace_sizes)
    sizes = main_lib.exit_on_error(sizer, main_lib.CONFIG.value)
    print(json.dumps({'config': name, 'preset': preset, **sizes}))
    return
  report = main_lib.exit_on_error(measure, main_lib.CONFIG.value, _STEPS.value,
                                  _WARMUP.value, _PROFILE_DIR.value)
  report = {'config': name, 'preset': preset, **report}
  if jax.process_index() != 0:
    return
  if _JSON.value:
    pathlib.Path(_JSON.value).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(_JSON.value).write_text(json.dumps(report, indent=1) + '\n')
  print(format_report(report))
  print(json.dumps(report))


if __name__ == '__main__':
  app.run(main, flags_parser=main_lib.parse_flags)
