"""avjax installed as a wheel (what `pip install .` or `pip install git+URL` makes, not an
editable install) runs every configs/*.py from any folder: configs/ ships inside the package
as avjax.configs, and `--config=configs/NAME.py` finds it there (config_lib.resolve).

The install is pip's own, with build isolation (pip fetches setuptools from the package index
or its cache), into a venv that reads the dependencies from this Python's site-packages."""

import json
import os
import pathlib
import shutil
import site
import subprocess
import sys

import pytest

from avjax import config_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAMES = sorted(p.stem for p in (ROOT / 'configs').glob('[!_]*.py'))
FAST_COMPILE = ' --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true'


@pytest.fixture(scope='module')
def venv(tmp_path_factory):
  """A venv whose avjax is a wheel of the working tree, shadowing this Python's editable one."""
  tmp = tmp_path_factory.mktemp('install')
  source = tmp / 'source'  # A copy: pip builds in the source folder.
  ignore = shutil.ignore_patterns('__pycache__', '*.egg-info')
  for folder in ('avjax', 'configs'):
    shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
  shutil.copy(ROOT / 'setup.py', source)
  subprocess.run([sys.executable, '-m', 'venv', '--without-pip', tmp / 'venv'], check=True)
  python = tmp / 'venv' / 'bin' / 'python'
  # The dependencies: this Python's site-packages as plain path entries, after the venv's
  # own; their .pth files (the editable install's finder among them) are not run.
  venv_site = subprocess.run([python, '-c', 'import site; print(site.getsitepackages()[0])'],
                             capture_output=True, text=True, check=True).stdout.strip()
  pathlib.Path(venv_site, 'deps.pth').write_text('\n'.join(site.getsitepackages()) + '\n')
  pip = subprocess.run([python, '-m', 'pip', 'install', '-q', '--no-deps', source],
                       capture_output=True, text=True, timeout=300)
  assert pip.returncode == 0, pip.stderr[-3000:]
  return python


def run(python, *args, cwd):
  env = {**os.environ, 'XLA_FLAGS': os.environ.get('XLA_FLAGS', '') + FAST_COMPILE}
  env.pop('PYTHONPATH', None)
  return subprocess.run([python, *args], cwd=cwd, env=env, capture_output=True, text=True,
                        timeout=600)


def test_the_installed_package_holds_every_config_and_loads_it(venv, tmp_path):
  code = ('import sys, avjax\nfrom avjax import config_lib\n'
          'assert all(config_lib.load(name, "tiny").task for name in sys.argv[1:])\n'
          'print(avjax.__file__, config_lib.configs_dir(),\n'
          '      sys.modules["avjax.configs.sync"].__file__)  # Imported by action.py.')
  proc = run(venv, '-c', code, *NAMES, cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr
  package, configs, imported = proc.stdout.split()
  for path in (package, configs, imported):  # The wheel's, not the checkout's.
    assert pathlib.Path(path).is_relative_to(venv.parents[1]), path
  assert sorted(p.stem for p in pathlib.Path(configs).glob('[!_]*.py')) == NAMES


def test_the_installed_package_trains_from_another_folder(venv, data_dir, tmp_path):
  workdir = tmp_path / 'run'
  proc = run(venv, '-m', 'avjax.main', '--config=configs/recon.py:tiny', f'--workdir={workdir}',
             f'--config.data.data_dir={data_dir}', cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(workdir / 'metrics.jsonl') as f:
    steps = [row['step'] for row in map(json.loads, f) if 'loss' in row]
  assert steps[-1] == config_lib.load('recon', 'tiny').total_steps
  assert (workdir / 'checkpoints').is_dir() and any((workdir / 'checkpoints').iterdir())
  proc = run(venv, '-m', 'avjax.main', '--config=configs/nope.py', f'--workdir={workdir}',
             cwd=tmp_path)
  error = proc.stderr.strip().splitlines()[-1]
  prefix = f'avjax: error: --config: no config file configs/nope.py in {tmp_path} or in '
  assert proc.returncode == 1 and error.startswith(prefix), proc.stderr[-3000:]
  configs = pathlib.Path(error.removeprefix(prefix))
  assert configs.is_relative_to(venv.parents[1]) and configs.parts[-2:] == ('avjax', 'configs')


def test_resolve_takes_a_missing_configs_path_from_the_package(monkeypatch, tmp_path):
  monkeypatch.chdir(ROOT)  # A checkout: its own configs/ first.
  assert config_lib.resolve('configs/recon.py:tiny') == 'configs/recon.py:tiny'
  monkeypatch.chdir(tmp_path)
  installed = os.path.join(config_lib.configs_dir(), 'recon.py')
  assert config_lib.resolve('configs/recon.py:tiny,data=lrw') == installed + ':tiny,data=lrw'
  assert config_lib.resolve('./configs/recon.py') == installed
  (tmp_path / 'configs').mkdir()
  (tmp_path / 'configs' / 'recon.py').touch()  # A user's own configs/recon.py wins.
  assert config_lib.resolve('configs/recon.py') == 'configs/recon.py'
  with pytest.raises(ValueError, match=r'^no config file configs/nope.py in .* or in '):
    config_lib.resolve('configs/nope.py')
  with pytest.raises(ValueError, match=r'^no config file mine/recon.py in [^ ]*$'):
    config_lib.resolve('mine/recon.py')
