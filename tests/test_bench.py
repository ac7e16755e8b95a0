"""avjax.bench: FLOPs from XLA against analytic counts, MFU, peaks, one tiny benchmark."""

import json
import math
import os
import subprocess
import sys
import time

from multiprocessing import shared_memory

import jax
import jax.numpy as jnp
import numpy as np
import psutil
import pytest

from avjax import bench
from avjax import config_lib
from avjax import tasks
from avjax.data import pipeline

M, K, N = 64, 32, 16


def _compiled_matmul():
  spec = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  return jax.jit(jnp.matmul).lower(spec(M, K), spec(K, N)).compile()


def test_flops_of_a_matmul_are_two_m_n_k():
  assert bench.step_flops(_compiled_matmul()) == 2 * M * N * K
  assert bench.while_loops(_compiled_matmul()) == 0


def test_a_scan_body_is_counted_once_and_its_loop_reported():
  body = lambda x, _: (x @ jnp.ones((K, K)), None)
  compiled = jax.jit(lambda x: jax.lax.scan(body, x, None, length=10)[0]).lower(
      jax.ShapeDtypeStruct((M, K), jnp.float32)).compile()
  assert bench.while_loops(compiled) == 1
  assert bench.step_flops(compiled) < 2 * (2 * M * K * K)  # Not 10 bodies' worth.


def test_xla_counts_the_flops_of_a_sharded_program_per_device():
  """The convention avjax.bench reports under (in a subprocess: 8 CPU devices)."""
  code = ('import jax, jax.numpy as jnp; mesh = jax.make_mesh((8,), ("d",)); '
          f'a = jax.ShapeDtypeStruct(({M}, {K}), jnp.float32, '
          'sharding=jax.NamedSharding(mesh, jax.P("d"))); '
          f'b = jax.ShapeDtypeStruct(({K}, {N}), jnp.float32); '
          'print(jax.jit(jnp.matmul).lower(a, b).compile().cost_analysis()["flops"])')
  out = subprocess.run(
      [sys.executable, '-c', code], capture_output=True, text=True, check=True,
      env={**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}).stdout
  assert float(out) == 2 * M * N * K / 8


@pytest.mark.parametrize('kind, peak', [
    ('TPU v4', 275e12), ('TPU v5 lite', 197e12), ('TPU v5', 459e12), ('TPU v5p', 459e12),
    ('NVIDIA A100-SXM4-80GB', 312e12), ('NVIDIA H100 80GB HBM3', 989.5e12),
    ('NVIDIA H100 PCIe', 756.5e12), ('NVIDIA H200', 989.5e12),
    ('TPU v4 lite', None), ('cpu', None)])
def test_peak_lookup(kind, peak):
  assert bench.peak_flops(kind) == peak


def test_mfu_and_input_ratio_arithmetic():
  assert bench.mfu(2e12, 0.5, 8e12) == pytest.approx(0.5)
  assert bench.mfu(2e12, 0.5, None) is None
  assert bench.mfu(None, 0.5, 8e12) is None
  assert bench.input_ratio(50.0, 100.0) == 0.5


@pytest.fixture(scope='module')
def report(data_dir):
  config = config_lib.load('aot', 'tiny')
  config.data.data_dir = data_dir
  config.data.prefetch_buffer = 1
  return {'config': 'aot', 'preset': 'tiny', **bench.measure(config, steps=2, warmup=1)}


def test_tiny_benchmark_report(report):
  for key in ('compile_s', 'first_step_s', 'step_s', 'examples_per_s', 'flops_per_device',
              'pipeline_examples_per_s', 'input_ratio'):
    assert math.isfinite(report[key]) and report[key] > 0, key
  assert report['examples_per_s'] == pytest.approx(8 / report['step_s'])
  assert report['flop_per_s_per_device'] == pytest.approx(
      report['flops_per_device'] / report['step_s'])
  assert report['input_bound'] == (report['input_ratio'] < 1)
  assert report['input_ratio'] == pytest.approx(
      report['pipeline_examples_per_s'] * report['step_s'] / 8)
  assert report['while_loops'] > 0  # The audio encoder's GRU.
  assert (report['device_kind'], report['mfu'], report['peak_bf16_flop_per_s_per_device']) == (
      'cpu', None, None)
  assert (report['global_batch_size'], report['dtype'], report['steps']) == (8, 'float32', 2)
  assert isinstance(report['parameters'], int) and report['parameters'] > 1000
  assert report['compilation_cache']  # conftest.py turns JAX's persistent cache on.
  # Rounds of max(steps, twice the one batch it holds ready).
  assert report['pipeline_batches'] >= 2 and report['pipeline_batches'] % 2 == 0
  json.dumps(report)  # A JSON report, as the CLI writes it.


def test_report_formats_as_a_table_and_a_markdown_row(report):
  lines = bench.format_report(report).splitlines()
  assert lines[0].startswith('aot (tiny): 1 x cpu')
  assert any(line.split()[:1] == ['MFU'] and 'n/a' in line for line in lines)
  row = bench.markdown_row(report)
  header = bench.MARKDOWN_HEADER.splitlines()[0]
  assert row.count('|') == header.count('|')
  assert row.startswith('| aot:tiny | 1 x cpu | 8 | float32 |')


def test_trace_sizes_count_parameters_and_shrink_with_remat(report, data_dir):
  config = config_lib.load('aot', 'tiny')
  config.data.data_dir = data_dir
  sizes = bench.trace_sizes(config)
  config.remat = True
  remat = bench.trace_sizes(config)
  assert sizes['parameters'] == remat['parameters'] == report['parameters']
  assert 0 < remat['kept_mib_per_example'] < sizes['kept_mib_per_example']
  assert remat['gflop_per_example'] > sizes['gflop_per_example'] > 0  # The recomputation.
  assert sizes['kept_gib_per_step'] * 2**10 == pytest.approx(
      sizes['kept_mib_per_example'] * sizes['global_batch_size'])


def test_host_sizing_arithmetic():
  assert bench.device_examples_per_s(1000e12, 10e9) == pytest.approx(40_000)  # 40% MFU.
  assert bench.device_examples_per_s(1000e12, 10e9, target_mfu=0.5) == pytest.approx(50_000)
  assert bench.cores_needed(40_000, 2_000) == pytest.approx(20)


_CHILD = """
import time
held = bytearray(64 << 20)
start = time.process_time()
while time.process_time() - start < 0.5:
  pass
print(flush=True)
time.sleep(60)
"""


def test_cpu_and_memory_of_a_pipeline_count_its_processes_and_queued_shared_memory():
  child = subprocess.Popen([sys.executable, '-c', _CHILD], stdout=subprocess.PIPE)
  try:
    child.stdout.readline()  # It has spent its CPU, and holds its memory.
    me, worker = psutil.Process(), psutil.Process(child.pid)
    assert bench.cpu_seconds([worker]) >= 0.45
    assert bench.cpu_seconds([me, worker]) > bench.cpu_seconds([worker])
    assert bench.resident_bytes([me, worker]) - bench.resident_bytes([me]) > 60 << 20
  finally:
    child.kill()
    child.wait()
  before = bench.shared_memory_files()
  queued = shared_memory.SharedMemory(create=True, size=32 << 20)
  try:
    queued.buf[:] = bytes(32 << 20)
    queued.close()  # In /dev/shm, mapped by no process: a batch waiting in a queue.
    # Counted without a process mapping it (no PSS here: it moves as other processes
    # come and go, and would make the difference flaky).
    assert bench.resident_bytes([], before) >= 32 << 20
    assert bench.resident_bytes([]) == 0
  finally:
    queued.unlink()


def _batches_costing(cpu_seconds, batch_size):
  """An endless in-process pipeline whose every batch costs `cpu_seconds` of CPU."""
  while True:
    start = time.process_time()
    while time.process_time() - start < cpu_seconds:
      pass
    yield {'x': np.zeros((batch_size, 3), np.float32)}


def test_a_cheap_pipeline_is_timed_until_its_cpu_time_is_measurable():
  # Two batches of 1 ms are under one clock tick: a reading of zero CPU seconds.
  measured = bench.measure_pipeline(_batches_costing(1e-3, 4), batch_size=4,
                                    prefetch_buffer=1, batches=2, warmup=1)
  assert measured['pipeline_workers'] == 0
  assert measured['pipeline_batches'] % 2 == 0  # Rounds of max(2, twice the 1 held).
  rate = measured['pipeline_examples_per_core_s']
  cpu = measured['pipeline_batches'] * 4 / rate
  assert cpu >= bench.MIN_CPU_SECONDS * (1 - 1e-9)  # Timed until its CPU time is measurable.
  # At most 4 examples a millisecond of CPU (this process's other threads only add
  # CPU time), up to one 10 ms clock tick of the 0.1 s read.
  assert 400 < rate <= 4000 * 1.15
  assert measured['pipeline_bytes_per_example'] == 12


def test_assume_device_sizes_the_host_from_the_pipeline_and_the_flops(data_dir):
  config = config_lib.load('aot', 'tiny')
  config.data.update(data_dir=data_dir, num_workers=1, prefetch_buffer=1, crops_per_clip=2)
  sizing = bench.size_host(config, 'NVIDIA H100 80GB HBM3', batches=2)
  assert sizing['pipeline_workers'] == 1
  assert sizing['pipeline_batches'] >= 8 and sizing['pipeline_batches'] % 8 == 0  # Twice 4 held.
  assert sizing['crops_per_clip'] == 2
  assert sizing['device_examples_per_s'] == pytest.approx(
      0.4 * 989.5e12 / (sizing['gflop_per_example'] * 1e9))
  assert sizing['cores_needed_per_device'] == pytest.approx(
      sizing['device_examples_per_s'] / sizing['pipeline_examples_per_core_s'])
  task = tasks.TASKS[config.task](config)
  source = pipeline.train_source(config.data, config.seed, getattr(task, 'features', None))
  ds = pipeline.train_dataset(source, task.preprocess, 8, config.seed)
  assert sizing['pipeline_bytes_per_example'] == pipeline.batch_bytes(ds[0]) / 8
  alone = bench.resident_bytes([psutil.Process()])
  assert sizing['pipeline_rss_bytes'] > alone + (50 << 20)  # And its worker's.
  with pytest.raises(ValueError, match='not a kind of bench.PEAK_BF16'):
    bench.size_host(config, 'cpu', batches=2)
