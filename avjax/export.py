r"""Exports a run's trained encoders with their config.

  python -m avjax.export --workdir=/tmp/recon --out=/tmp/recon_export

then `avjax.checkpoint.load_encoder('/tmp/recon_export', name='audio_encoder')`.
"""

from absl import app
from absl import flags

from avjax import checkpoint

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training run\'s workdir.')
_OUT = flags.DEFINE_string('out', None, 'Directory to write the encoders to.')
flags.mark_flags_as_required(['workdir', 'out'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  for name in checkpoint.export_encoders(_WORKDIR.value, _OUT.value):
    print(f'exported {name} to {_OUT.value}/{name}')


if __name__ == '__main__':
  app.run(main)
