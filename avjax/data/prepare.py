"""`tfds build` without TensorFlow: TFDS's own build command, with its flags.

TFDS's `tfds` script imports TensorFlow for its other commands, so it does not
start where TensorFlow is not installed; this runs only `build`, with avjax's
builders registered (README, "Preparing at scale with Beam"). avjax's builders
write array_record unless `--file_format` asks for another format:

  python -m avjax.data.prepare lrw --config=s64 --manual_dir=/data/lrw \
      --beam_pipeline_options=runner=DirectRunner,direct_num_workers=8
"""

from absl import app
from absl import logging
from tensorflow_datasets.scripts.cli import build
from tensorflow_datasets.scripts.cli import cli_utils

from avjax.data import builders  # noqa: F401  (registers avjax's TFDS builders)


def main(args):
  logging.set_verbosity(logging.INFO)
  args.execute()


if __name__ == '__main__':
  app.run(main, flags_parser=cli_utils.make_flags_parser(build.Args, 'tfds build'))
