"""TFDS builders; importing this package registers them with TFDS."""

from avjax.data.builders import avsynth  # noqa: F401  (registers 'avsynth')
