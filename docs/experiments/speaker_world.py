r"""Does the speaker suite's EER improve with more speakers for the same clips?

  python docs/experiments/speaker_world.py /tmp/avjax/speaker_world 1000
  python docs/experiments/speaker_world.py /tmp/avjax/speaker_world_4k 4000

An experiment of docs/speaker.md, not part of the package: avsynth heads with 336
training speakers of three one-clip sessions each (the default's 1,008 training clips),
the default's 48 training speakers among them, and the default's 16 test speakers and
trials, so the verification is scored on the same people. It pretrains `both` (seed 0)
for the given steps and scores it with the suite (no supervised runs). The world is
registered as the avsynth config `heads_many` by patching, in this process and in the
preparation's worker processes (which import this file through `render_clip`), how a
clip's speaker is drawn.
"""

import dataclasses
import functools
import sys

from avjax.data.builders import avsynth
from avjax.data.synth import heads

DEFAULT = heads.PRESETS['heads']
MANY = dataclasses.replace(DEFAULT, num_train_speakers=336, train_clips_per_session=1,
                           validation_clips_per_session=1)
_clip_identity, _clips = heads.clip_identity, avsynth._clips  # pylint: disable=protected-access


def clip_identity(config, split, index):
  """In `MANY`, the default's people: test speakers 48-63, training speakers 0-47, 64-351."""
  speaker, track = _clip_identity(config, split, index)
  if config != MANY:
    return speaker, track
  if split == 'test':
    speaker += DEFAULT.num_train_speakers - MANY.num_train_speakers
  elif speaker >= DEFAULT.num_train_speakers:
    speaker += DEFAULT.num_test_speakers
  return speaker, speaker * config.sessions_per_speaker + track % config.sessions_per_speaker


def render_clip(config, split, index, seed=0):
  """`heads.render_clip`, from this module, so that a worker applies the patch."""
  return heads.render_clip(config, split, index, seed=seed)


def many_clips(pool, config, split, num_examples):
  """`avsynth._clips`, rendered by `render_clip` for `heads_many`."""
  if config.preset != 'heads_many':
    yield from _clips(pool, config, split, num_examples)
    return
  render = functools.partial(render_clip, config.synth_config, split)
  yield from enumerate(pool.map(render, range(num_examples)))


heads.clip_identity = clip_identity
heads.PRESETS['heads_many'] = MANY
avsynth._clips = many_clips  # pylint: disable=protected-access
if not any(c.name == 'heads_many' for c in avsynth.Avsynth.BUILDER_CONFIGS):
  avsynth.Avsynth.BUILDER_CONFIGS.append(avsynth.AvsynthConfig(
      world='heads', preset='heads_many', description='336 training speakers (experiment).'))


if __name__ == '__main__':
  from avjax.evaluate import speaker  # pylint: disable=g-import-not-at-top
  workdir, steps = sys.argv[1], int(sys.argv[2])
  config = speaker.get_config()
  for data in (config.data, config.pretrain_data):
    data.update(config='heads_many', data_dir=f'{workdir}/tfds')
  config.methods, config.finetune_from, config.label_fractions = ('both',), (), ()
  config.total_steps = dict(disentangle=steps, speaker=0)
  speaker.run(config, workdir)
