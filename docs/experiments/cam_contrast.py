r"""Does the audio's timing, not motion alone, place the sync network's CAM?

  python docs/experiments/cam_contrast.py PRETRAIN_DIR [PRETRAIN_DIR ...]

An experiment of docs/sync.md, not part of the package. For each sync run
(a suite's WORKDIR/seed_K/pretrain/sync), on the middle window of each test
scene as the suite scores localisation: the CAM with the aligned audio, and
the contrast CAM(aligned) - CAM(shifted), the shifted track starting 0.6 of a
window later (earlier where the clip ends first). A response to motion that
does not depend on the audio's timing cancels in the contrast. Scored for the
trained network and a random one (seeded as the suite's), at conv5 and at
the fusion; prints pointing accuracy and pixel AUC.
"""

import sys

import jax
import numpy as np

from avjax import checkpoint
from avjax.data import ops
from avjax.data import pipeline
from avjax.evaluate import localization
from avjax.evaluate import runs
from avjax.evaluate import sync as sync_suite
from avjax.tasks import sync


def shifted_inputs(config, inputs):
  """The suite's middle-window inputs with the audio taken 0.6 window later (or earlier)."""
  source = pipeline.load_source(config.data, 'test')
  window = config.sync.window_frames * ops.SAMPLES_PER_FRAME
  out = []
  for i, x in enumerate(inputs):
    audio = source[i]['audio']
    start = (len(source[i]['video']) - config.sync.window_frames) // 2 * ops.SAMPLES_PER_FRAME
    shift = int(0.6 * window)
    begin = start + shift if start + shift + window <= len(audio) else start - shift
    out.append({'video': x['video'], 'audio': ops.to_float(audio[begin:begin + window])})
  return out


def main(pretrain_dirs):
  for directory in pretrain_dirs:
    config = checkpoint.load_config(directory)
    task = sync.Sync(config)
    inputs, seen, _, masks = sync_suite.middle_windows(config)
    shifted = shifted_inputs(config, inputs)
    first = runs.batches(inputs[:1], 1)[0]
    nets = {'trained': checkpoint.restore_params(directory)['sync_net'],
            'random': task.net.init({'params': jax.random.key(config.seed)}, first['video'],
                                    first['audio'])['params']}
    for net, params in nets.items():
      for name in ('cam', 'fusion_cam'):
        aligned = sync_suite.cams(task.net, params, inputs, 16, name=name)
        contrast = aligned - sync_suite.cams(task.net, params, shifted, 16, name=name)
        for kind, m in (('aligned', aligned), ('contrast', contrast)):
          s = localization.score(localization.resize_maps(m, seen.shape[1:4]), masks)
          print(f'{directory} seed {config.seed} {net:7s} {name:10s} {kind:8s} '
                f'pointing {s["pointing_accuracy"]:.3f} pixel_auc {s["pixel_auc"]:.3f}',
                flush=True)


if __name__ == '__main__':
  main(sys.argv[1:])
