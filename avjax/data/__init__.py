"""Data: the avsynth world, TFDS builders, host-side ops and Grain pipelines.

Nothing in this package imports from `avjax.models` or `avjax.tasks`.
"""
