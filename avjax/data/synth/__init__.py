"""avsynth: a procedural audio-visual world with known ground truth (numpy only).

Two generators, both deterministic given (config, split, index, seed):

* `heads.render_clip(config: heads.HeadsConfig, split, index, seed) -> dict`
  a talking head. Audio 16 kHz mono int16, video 25 fps uint8 RGB.
* `scenes.render_clip(config: scenes.ScenesConfig, split, index, seed) -> dict`
  a scene of moving objects, one of which makes the sound.

Field names and dtypes are the contract with the TFDS builder
(`avjax.data.builders.avsynth`) and every task; see those modules' docstrings.
"""
