r"""Exports a run's trained encoders with their config, and loads them back.

  python -m avjax.export --workdir=/tmp/recon --out=/tmp/recon_export

then `avjax.export.load_encoder('/tmp/recon_export', name='audio_encoder')`.
The command's flags are defined when it runs, not on import, so library code
(the evaluation suites) imports this module next to `avjax.main`'s --workdir.
"""

import ml_collections
import orbax.checkpoint as ocp
from absl import app
from absl import flags

from avjax import checkpoint
from avjax import tasks


def export_encoders(workdir, out_dir):
  """Writes each of the task's encoders as OUT/NAME/{params,config.json}; returns the names."""
  config = checkpoint.load_config(workdir)
  task = tasks.TASKS[config.task](config)
  params = checkpoint.restore_params(workdir)
  names = []
  for name, (_, input_key) in task.encoders().items():
    encoder_dir = checkpoint.as_path(out_dir) / name
    encoder_dir.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as checkpointer:  # Closing waits for the write.
      checkpointer.save(encoder_dir / 'params', params[name], force=True)
    export_config = ml_collections.ConfigDict(config.to_dict())
    export_config.export = dict(name=name, input_key=input_key)
    checkpoint.save_config(export_config, encoder_dir)
    names.append(name)
  return names


def load_encoder(directory, name='audio_encoder'):
  """Loads an exported encoder: returns `(apply, params)`, params as numpy.

  `apply(params, inputs, **kwargs) -> (features, aux)` is pure; `inputs` is the feature
  named in the export's config (`config.export.input_key`) of the task's
  expanded batch (`task.expand(batch)`, not the compact one `preprocess` makes),
  or a tuple of them where that key is a tuple (an encoder of several inputs):
  e.g. an `audio_encoder`'s float windows [B, T, W] (`AudioEncoder.windows`), a
  `speaker_encoder`'s log-mel [B, 4 T, 40], a `face_encoder`'s float frames.
  Keyword arguments go to the module: an `audio_encoder` takes `lengths` [B],
  each clip's frames when clips are zero-padded to one length (`AudioEncoder`).
  """
  config = checkpoint.load_config(checkpoint.as_path(directory) / name)
  module, input_key = tasks.TASKS[config.task](config).encoders()[name]
  params = checkpoint.load_exported_params(directory, name)

  def apply(params, inputs, **kwargs):
    inputs = tuple(inputs) if isinstance(input_key, tuple) else (inputs,)
    return module.apply({'params': params}, *inputs, **kwargs)

  return apply, params


def define_flags():
  """--workdir and --out, required; `python -m avjax.export` defines them, an import does not."""
  flags.DEFINE_string('workdir', None, 'A training run\'s workdir.')
  flags.DEFINE_string('out', None, 'Directory to write the encoders to.')
  flags.mark_flags_as_required(['workdir', 'out'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  out = flags.FLAGS.out
  for name in export_encoders(flags.FLAGS.workdir, out):
    print(f'exported {name} to {out}/{name}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
