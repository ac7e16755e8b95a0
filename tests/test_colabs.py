"""The colabs/ notebooks: committed stripped, each starting with the same install cell (which
installs only a source the user names, or the checkout the notebook sits in), and each running
top to bottom on the tiny datasets through colabs/execute.py.

Only quickstart trains (the tiny recon preset); recon_demo and load_exported read its run and
export, and the other notebooks, given no run, use an untrained tiny model."""

import copy
import importlib.util
import os
import pathlib
import subprocess
import sys

import nbformat
import numpy as np
import pytest

from avjax import checkpoint
from avjax.data.synth import heads

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / 'colabs').glob('*.ipynb'))
PARAMETERS = ('AVJAX_WORKDIR', 'AVJAX_EXPORT', 'AVJAX_WAV', 'AVJAX_PRESET')  # Left at defaults.
FAST_COMPILE = ('--xla_backend_optimization_level=0', '--xla_llvm_disable_expensive_passes=true')


def load_execute():
  spec = importlib.util.spec_from_file_location('colabs_execute', ROOT / 'colabs' / 'execute.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


execute = load_execute()


def code_cells(nb):
  return [cell for cell in nb.cells if cell.cell_type == 'code']


def test_notebooks_are_committed_stripped_and_start_by_installing_avjax():
  assert {p.stem for p in NOTEBOOKS} == {'quickstart', 'recon_demo', 'localization', 'separation',
                                         'speaker_embeddings', 'load_exported'}
  first_cells = set()
  for path in NOTEBOOKS:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in code_cells(nb):
      assert not cell.outputs and cell.execution_count is None, f'{path.name}: not stripped'
    assert execute.strip(copy.deepcopy(nb)) == nb
    first_cells.add(code_cells(nb)[0].source)
  (install,) = first_cells
  assert "SOURCE = ''  # @param" in install
  assert not any('github.com' in path.read_text() for path in NOTEBOOKS)


def run_install_cell(cwd, source_env='', source_param=''):
  """The notebooks' install cell in a Python that cannot import avjax (-S: no site-packages),
  with pip stubbed to print what it would install; returns (status, stdout, stderr)."""
  nb = nbformat.read(NOTEBOOKS[0], as_version=4)
  cell = code_cells(nb)[0].source.replace("SOURCE = ''", f'SOURCE = {source_param!r}', 1)
  stub = "import subprocess\nsubprocess.run = lambda cmd, check: print('pip ran:', cmd[-1])\n"
  env = {k: v for k, v in os.environ.items() if k not in ('AVJAX_SOURCE', 'PYTHONPATH')}
  if source_env:
    env['AVJAX_SOURCE'] = source_env
  proc = subprocess.run([sys.executable, '-I', '-S', '-c', stub + cell], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=60)
  return proc.returncode, proc.stdout, proc.stderr


def test_the_install_cell_installs_only_a_source_the_user_names(tmp_path):
  elsewhere = tmp_path / 'content'  # Colab's folder: no checkout around it.
  elsewhere.mkdir()
  code, out, err = run_install_cell(elsewhere)
  assert code != 0 and 'pip ran' not in out
  assert 'no source is named: set SOURCE in this cell (or AVJAX_SOURCE)' in err
  url = 'git+https://example.org/me/avjax'
  assert run_install_cell(elsewhere, source_env=url)[1].endswith(f'pip ran: {url}\n')
  checkout = tmp_path / 'checkout'  # The notebook opened from a checkout's colabs/.
  (checkout / 'avjax').mkdir(parents=True)
  (checkout / 'avjax' / '__init__.py').touch()
  (checkout / 'colabs').mkdir()
  assert run_install_cell(checkout / 'colabs')[1].endswith(f'pip ran: {checkout}\n')
  (checkout / 'colabs' / 'avjax.whl').touch()  # A named source wins; a file here, made absolute.
  out = run_install_cell(checkout / 'colabs', source_env='avjax.whl')[1]
  assert out.endswith(f"pip ran: {checkout / 'colabs' / 'avjax.whl'}\n")
  out = run_install_cell(checkout / 'colabs', source_env='avjax.whl', source_param=url)[1]
  assert out.endswith(f'pip ran: {url}\n')  # The cell's SOURCE before AVJAX_SOURCE.


@pytest.fixture
def run_notebook(data_dir, tmp_path, monkeypatch):
  """`run_notebook(name, **AVJAX_parameters)` executes colabs/NAME.ipynb on the tiny datasets,
  saving its pictures to tmp_path, and checks that it ran as committed."""
  for name in PARAMETERS:
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setenv('AVJAX_DATA_DIR', data_dir)
  monkeypatch.setenv('AVJAX_FIGURES', str(tmp_path))
  # For speed only (the notebooks compute the same): rbg keys compile far faster than threefry
  # on a CPU, and XLA's cheapest compile halves the tiny training.
  monkeypatch.setenv('JAX_DEFAULT_PRNG_IMPL', 'rbg')
  monkeypatch.setenv('XLA_FLAGS', ' '.join(filter(None, [
      os.environ.get('XLA_FLAGS'), *FAST_COMPILE])))

  def run(name, **parameters):
    for key, value in parameters.items():
      monkeypatch.setenv(f'AVJAX_{key.upper()}', str(value))
    path = ROOT / 'colabs' / f'{name}.ipynb'
    executed = execute.execute(path, timeout=300)
    assert execute.strip(executed).cells == nbformat.read(path, as_version=4).cells
    return executed

  return run


def test_quickstart_run_feeds_recon_demo_and_load_exported(run_notebook, tmp_path):
  """One tiny training for the three recon notebooks, as a user's run would feed them."""
  workdir = tmp_path / 'recon'
  run_notebook('quickstart', workdir=workdir)
  assert (tmp_path / 'quickstart.png').exists()
  run_notebook('recon_demo', workdir=workdir)
  assert {'recon.png', 'recon.gif'} <= {p.name for p in tmp_path.iterdir()}
  export = tmp_path / 'recon_export'
  run_notebook('load_exported', export=export)
  config = checkpoint.load_config(export / 'audio_encoder')
  frames = heads.PRESETS['heads'].num_frames  # Its made-up WAV: one avsynth heads clip.
  width = config.model.audio.gru_features * (2 if config.model.audio.bidirectional else 1)
  assert np.load(tmp_path / 'features.npy').shape == (frames, width)


@pytest.mark.parametrize('name, pictures', [
    ('localization', ('localisation.png', 'clip0.gif')),
    ('separation', ('separation.png',)),
    ('speaker_embeddings', ('speaker_projection.png', 'speaker_det.png'))])
def test_notebook_runs_an_untrained_tiny_model(run_notebook, tmp_path, name, pictures):
  run_notebook(name)
  assert set(pictures) <= {p.name for p in tmp_path.iterdir()}


def test_a_failing_cell_is_named_with_its_error(tmp_path):
  nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('x = 1'),
                                       nbformat.v4.new_code_cell('1 / 0')])
  path = tmp_path / 'broken.ipynb'
  nbformat.write(nb, path)
  with pytest.raises(execute.NotebookError, match=r'(?s)cell 2 of 2 failed.*1 / 0.*ZeroDivision'):
    execute.execute(path, timeout=60)
