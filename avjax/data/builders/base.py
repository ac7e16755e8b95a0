"""The base of avjax's TFDS builders: array_record unless the caller asks otherwise.

TFDS writes TFRecord by default, and finishing a TFRecord dataset needs
TensorFlow; `tfds.builder(name, data_dir=...)` and `tfds.data_source(name,
data_dir=...)` pass no file format, so with TFDS's default they fail where
TensorFlow is not installed. A dataset already prepared keeps the format it
was written in.
"""

import tensorflow_datasets as tfds


class Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A `GeneratorBasedBuilder` whose default file format is array_record."""

  def __init__(self, *, file_format=None, **kwargs):
    super().__init__(file_format=file_format, **kwargs)
    if file_format is None and not self.info.initialized:  # Not read from a prepared dir.
      self.info.set_file_format(tfds.core.FileFormat.ARRAY_RECORD, override=True)
