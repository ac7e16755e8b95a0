r"""Benchmarks a config's train step: compile time, step time, FLOPs, MFU, input pipeline.

  python -m avjax.bench --config=configs/aot.py
  python -m avjax.bench --config=configs/recon.py:tiny --steps=20 --warmup=5 \
      --json=/tmp/bench/recon.json --profile_dir=/tmp/bench/trace
  python -m avjax.bench --markdown /tmp/bench/*.json   # README table rows

The step is `train.build(config)`'s, run on one fixed device-resident batch (the
input pipeline is left out) and timed with `block_until_ready`; the pipeline
(`config.data.num_workers`, `prefetch_buffer`) is timed on its own, with no model,
after a warm-up that drains the batches its workers made while starting.
FLOPs are XLA's count for the compiled step, per device: for an SPMD program
`cost_analysis()` describes the program one device runs, so MFU is that count
over the step time and one chip's bf16 peak. XLA counts the body of a while loop
(`lax.scan`, `nn.RNN`) once, whatever its trip count, so with loops in the step
(`while_loops` > 0) FLOPs and MFU are lower bounds.
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
from absl import app
from jax._src import ad_checkpoint
from absl import flags

from avjax import main as main_lib
from avjax import train

_STEPS = flags.DEFINE_integer('steps', 5, 'Timed steps.')
_WARMUP = flags.DEFINE_integer('warmup', 1, 'Steps run before timing, after the first.')
_JSON = flags.DEFINE_string('json', '', 'Also write the report to this JSON file.')
_PROFILE_DIR = flags.DEFINE_string('profile_dir', '', 'Write a jax.profiler trace of the '
                                   'timed steps here.')
_TRACE_ONLY = flags.DEFINE_bool(
    'trace_only', False, 'Size the step from traces, compiling and running nothing (an '
    'accel preset on a CPU): parameters, FLOPs and kept activations per example.')
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


def _time_steps(compiled, state, count, *, batch, rng):
  """Runs `count` steps; returns the last state and each step's seconds."""
  times = []
  for _ in range(count):
    start = time.perf_counter()
    state, metrics = compiled(state, batch, rng)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  return state, times


def pipeline_examples_per_s(iterator, batch_size, batches, warmup):
  """Examples/s that `iterator` yields over `batches` batches after `warmup`."""
  for _ in range(warmup):
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * batch_size / (time.perf_counter() - start)


def kept_bytes(task, params, batch, rng):
  """Bytes of the activations the loss's forward pass keeps for its backward pass
  (the parameters left out): JAX's `saved_residuals`, a private function that
  `jax.ad_checkpoint.print_saved_residuals` prints."""
  residuals = ad_checkpoint.saved_residuals(lambda p: task.loss(p, batch, rng)[0], params)
  return sum(aval.size * aval.dtype.itemsize for aval, source in residuals
             if 'argument' not in source)


def trace_sizes(config):
  """Per-example sizes of `config`'s train step, from traces alone: XLA's FLOPs of the
  lowered step and the activations kept for the backward pass, with remat as set."""
  setup = train.build(config)
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


def measure(config, steps, warmup, profile_dir=''):
  """The benchmark report (a dict) of `config`'s train step and input pipeline."""
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
  # The pipeline holds up to `ready` batches made while the first one was awaited:
  # those are drained in the warm-up and outnumbered in the timing.
  ready = max(config.data.num_workers, 1) * config.data.prefetch_buffer
  pipeline_batches = max(steps, 2 * ready)
  pipeline_rate = pipeline_examples_per_s(setup.train_iter, setup.local_batch,
                                          pipeline_batches, warmup + ready)
  ratio = input_ratio(pipeline_rate, setup.local_batch / step_s)
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
      'pipeline_batches': pipeline_batches,
      'pipeline_examples_per_s': pipeline_rate,  # This host's pipeline.
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
  if _TRACE_ONLY.value:
    sizes = main_lib.exit_on_error(trace_sizes, main_lib.CONFIG.value)
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
