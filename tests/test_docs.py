"""README.md and docs/*.md: every `python -m MODULE` and `python colabs/...py` command
they show names a module that exists, flags it defines and config files that exist; their
links and pictures resolve; CI runs README's test command; no page or notebook installs
from a default repository address."""

import collections
import importlib.util
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

from avjax.evaluate import results

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
NOTEBOOKS = sorted((ROOT / 'colabs').glob('*.ipynb'))
PROJECT = ('avjax', 'launch', 'colabs')  # Their commands' flags are checked.

_FENCE = re.compile(r'^```(\w*)\n(.*?)^```', re.M | re.S)
_INLINE = re.compile(r'`([^`]+)`')
_SHELL = ('', 'bash', 'sh', 'shell', 'console')
_SEPARATORS = re.compile(r'[;&|]+')
# A flag's definition in `--helpfull` (absl: "  --[no]name: help") or `--help` (argparse:
# "  --name VALUE", "  -c [str], --config [str]"); not usage examples ("--name=value").
_DEFINED = re.compile(r'(?:^\s+|, )--(?:\[no\])?(\w[\w.-]*)(?=[:\s,]|$)', re.M)
_LINK = re.compile(r'\]\(([^)\s]+)\)')
_CONFIG_FILE = re.compile(r'configs/[a-z0-9_]+\.py')  # Not a configs/NAME.py placeholder.
_HOST = r'(?:[\w-]+\.)+[A-Za-z]{2,}'  # A real host name; HOST or OWNER placeholders have no dot.
_REPO_URL = re.compile(
    rf'(?:git\+\w+://|git@){_HOST}|https?://(?:www\.)?(?:github\.com|gitlab\.com|bitbucket\.org)/'
    rf'|https?://{_HOST}/\S*\.git\b|(?:git clone|pip install)[^\n]*https?://{_HOST}')

Command = collections.namedtuple('Command', 'page program args')


def shell_snippets(text):
  """The shell code blocks of a markdown page, and its inline code that runs python."""
  snippets = [code for lang, code in _FENCE.findall(text) if lang in _SHELL]
  prose = _FENCE.sub('', text)
  inline = [' '.join(code.split()) for code in _INLINE.findall(prose)]  # Prose wraps lines.
  return snippets + [code for code in inline if code.startswith('python ')]


def python_commands(snippet):
  """(program, args) of each python command in a shell snippet: 'avjax.main' for
  `python -m avjax.main`, 'colabs/execute.py' for a script; continuations joined,
  comments dropped, commands split at newlines, ;, &&, || and |."""
  commands = []
  for line in snippet.replace('\\\n', ' ').splitlines():
    lexer = shlex.shlex(line, posix=True, punctuation_chars=';&|')
    lexer.whitespace_split = True
    command = []
    for token in [*lexer, ';']:
      if not _SEPARATORS.fullmatch(token):
        command.append(token)
        continue
      python = [i for i, t in enumerate(command) if t in ('python', 'python3')]
      if python:
        rest = command[python[0] + 1:]
        if rest[:1] == ['-m'] and len(rest) > 1:
          commands.append((rest[1], rest[2:]))
        elif rest and rest[0].endswith('.py'):
          commands.append((rest[0], rest[1:]))
      command = []
  return commands


def page_commands():
  return [Command(page.relative_to(ROOT), program, args) for page in PAGES
          for snippet in shell_snippets(page.read_text())
          for program, args in python_commands(snippet)]


def defined_flags(programs):
  """{program: set of flag names}, from `--helpfull` (a script: `--help`), each program in
  its own process (modules define flags on import), all at once."""
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  procs = {}
  for program in programs:
    cmd = ([sys.executable, program, '--help'] if program.endswith('.py') else
           [sys.executable, '-m', program, '--helpfull'])
    procs[program] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
  return {program: set(_DEFINED.findall(proc.communicate(timeout=300)[0]))
          for program, proc in procs.items()}


def flag_problems(command, flags):
  """What is wrong with `command`'s flags and config file, given its program's `flags`."""
  problems = []
  for arg in command.args:
    if not arg.startswith('--'):
      continue
    name, _, value = arg[2:].partition('=')
    base = name.split('.')[0]  # --config.a.b=v overrides a field of --config.
    if base not in flags and not (base.startswith('no') and base[2:] in flags):
      problems.append(f'--{name} is not a flag of {command.program}')
    config = _CONFIG_FILE.fullmatch(value.split(':')[0]) if base == 'config' else None
    if config and not (ROOT / config.group()).is_file():
      problems.append(f'{config.group()} does not exist')
  return problems


def test_shell_commands_are_parsed_as_written():
  snippet = ('AVJAX_WORKDIR=/tmp/w python colabs/execute.py a.ipynb \\\n    --out /tmp/x  # c\n'
             "pip install -e '.[test]' && python -m pytest -n 2 tests\n"
             'for n in a b; do python -m avjax.bench --config=configs/$n.py; done')
  assert python_commands(snippet) == [
      ('colabs/execute.py', ['a.ipynb', '--out', '/tmp/x']),
      ('pytest', ['-n', '2', 'tests']),
      ('avjax.bench', ['--config=configs/$n.py'])]
  text = 'Run `python -m avjax.export\n--out=D` or:\n```bash\npython -m avjax.main\n```\n'
  assert shell_snippets(text) == ['python -m avjax.main\n', 'python -m avjax.export --out=D']


def test_every_documented_command_exists_with_its_flags():
  commands = page_commands()
  programs = sorted({c.program for c in commands})
  assert {'avjax.main', 'avjax.evaluate', 'pytest', 'colabs/execute.py'} <= set(programs)
  problems = []
  for program in programs:
    exists = ((ROOT / program).is_file() if program.endswith('.py') else
              importlib.util.find_spec(program) is not None)
    if not exists:
      problems.append(f'{program}: no such module or script')
  checked = [p for p in programs if p.split('.')[0].split('/')[0] in PROJECT]
  flags = defined_flags(checked)
  for program in checked:
    assert len(flags[program]) > 1, f'{program} printed no flags: does it start?'
  problems += [f'{c.page}: python {c.program} {" ".join(c.args)}: {problem}'
               for c in commands if c.program in flags
               for problem in flag_problems(c, flags[c.program])]
  assert not problems, '\n'.join(problems)


def test_no_page_or_notebook_installs_from_a_default_repository_address():
  texts = {page.relative_to(ROOT): page.read_text() for page in PAGES}
  for path in NOTEBOOKS:
    texts[path.relative_to(ROOT)] = '\n'.join(
        ''.join(cell['source']) for cell in json.loads(path.read_text())['cells'])
  found = [f'{path}: {m.group()}' for path, text in texts.items()
           for m in _REPO_URL.finditer(text)]
  assert not found, '\n'.join(found)
  assert _REPO_URL.search('git clone https://github.com/avjax/avjax && cd avjax')
  assert _REPO_URL.search("REPO = 'https://gitlab.com/x/y'")
  assert _REPO_URL.search('pip install git+https://example.org/x/y')
  assert not _REPO_URL.search('SOURCE: a folder, a wheel or git+https://HOST/OWNER/REPO')


def slug(heading):
  """GitHub's anchor of a markdown heading."""
  return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def test_links_and_pictures_resolve():
  problems = []
  for page in PAGES:
    for link in _LINK.findall(_FENCE.sub('', page.read_text())):
      if re.match(r'\w+:', link):
        continue
      path, _, anchor = link.partition('#')
      target = (page.parent / path).resolve() if path else page
      if not target.is_file():
        problems.append(f'{page.relative_to(ROOT)}: {link}: no such file')
      elif anchor and anchor not in {slug(h) for h in re.findall(
          r'^#+ (.+)$', _FENCE.sub('', target.read_text()), re.M)}:
        problems.append(f'{page.relative_to(ROOT)}: {link}: no such heading')
  assert not problems, '\n'.join(problems)
  assert slug('The suites on real datasets') == 'the-suites-on-real-datasets'
  assert slug('TPU pod (`launch.tpu`)') == 'tpu-pod-launchtpu'


def test_each_suite_page_has_its_results_block():
  for suite in ('speech', 'speaker', 'sync'):
    text = (ROOT / 'docs' / f'{suite}.md').read_text()
    replaced = results.replace_block(text, suite, 'TABLES', f'docs/{suite}.md')
    assert replaced.count('TABLES') == 1 and '| method | mode |' not in replaced


def test_ci_runs_the_test_command_of_the_readme():
  ci = (ROOT / '.ci' / 'run').read_text().splitlines()
  command = "pip install -e '.[test]' && python -m pytest -n 2 tests"
  assert command in ci
  assert f'```bash\n{command}\n```' in (ROOT / 'README.md').read_text()
