r"""Renders a few avsynth clips to a contact sheet, WAV files and MP4 files.

  python -m avjax.data.synth.preview --config heads --out /tmp/preview \
      [--split train] [--num 4] [--seed 0]

`--config` is a preset name of `heads.PRESETS` or `scenes.PRESETS`.
"""

import os
import subprocess

from absl import app
from absl import flags
import imageio
import imageio_ffmpeg
import matplotlib
matplotlib.use('Agg')
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
import soundfile

from avjax.data.synth import heads

_CONFIG = flags.DEFINE_string('config', 'heads', 'Preset name.')
_OUT = flags.DEFINE_string('out', None, 'Output directory.', required=True)
_SPLIT = flags.DEFINE_string('split', 'train', 'Split to render.')
_NUM = flags.DEFINE_integer('num', 4, 'Number of clips.')
_SEED = flags.DEFINE_integer('seed', 0, 'World seed.')
_FRAMES_SHOWN = 8


def generator(name: str):
  """(module, config) of a preset; scenes is imported only when asked for."""
  if name in heads.PRESETS:
    return heads, heads.PRESETS[name]
  from avjax.data.synth import scenes  # pylint: disable=g-import-not-at-top
  if name in scenes.PRESETS:
    return scenes, scenes.PRESETS[name]
  raise ValueError(f'Unknown config {name!r}; expected one of '
                   f'{sorted(heads.PRESETS) + sorted(scenes.PRESETS)}.')


def indices(module, config, split: str, num: int) -> list[int]:
  """Clip indices spread over the split (talking heads: many speakers)."""
  size = module.split_sizes(config)[split]
  return [int(i) for i in np.unique(np.linspace(0, size - 1, num).round())]


def describe(module, clip: dict) -> str:
  """A one-line text label of a clip's ground truth."""
  if module is heads:
    words = ' '.join(heads.VOCABULARY[w] for w in clip['words'])
    return (f"speaker {int(clip['speaker'])}  track {int(clip['track'])}  "
            f"{heads.EMOTIONS[clip['emotion']]}/"
            f"{heads.INTENSITIES[clip['intensity']]}  "
            f"snr {float(clip['snr_db']):.0f} dB\n\"{words}\"")
  return f"action: {module.ACTIONS[int(clip['action'])]}"


def _log_spectrogram(audio: np.ndarray, n_fft: int = 512, hop: int = 128):
  x = audio.astype(np.float32) / 32768.0
  frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
  spec = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2
  return 10.0 * np.log10(spec.T + 1e-10)


def _frame_strip(clip: dict) -> np.ndarray:
  """Evenly spaced frames side by side; sound-source masks outlined."""
  video = clip['video']
  idx = np.linspace(0, len(video) - 1, _FRAMES_SHOWN).round().astype(int)
  frames = video[idx].copy()
  if 'source_mask' in clip:
    mask = clip['source_mask'][idx] > 0
    edge = mask & ~(np.roll(mask, 1, 1) & np.roll(mask, -1, 1)
                    & np.roll(mask, 1, 2) & np.roll(mask, -1, 2))
    frames[edge] = (255, 255, 0)
  return np.concatenate(list(frames), 1)


def contact_sheet(module, config, clips, path: str) -> None:
  """One row per clip: frames, waveform, log spectrogram and labels."""
  fig, axes = plt.subplots(len(clips), 3, figsize=(18, 2.6 * len(clips)),
                           gridspec_kw={'width_ratios': [4, 1.3, 1.3]},
                           squeeze=False)
  for row, clip in zip(axes, clips):
    row[0].imshow(_frame_strip(clip), interpolation='nearest')
    row[0].set_title(describe(module, clip), fontsize=9, loc='left')
    t = np.arange(len(clip['audio'])) / config.sample_rate
    row[1].plot(t, clip['audio'] / 32768.0, lw=0.3)
    if 'mouth_open' in clip:
      ft = (np.arange(len(clip['mouth_open'])) + 0.5) / config.fps
      row[1].plot(ft, clip['mouth_open'], 'r', lw=1, label='mouth_open')
      row[1].legend(fontsize=6, loc='upper right')
    row[1].set_ylim(-1, 1.05)
    row[1].set_title('waveform', fontsize=8)
    row[2].imshow(_log_spectrogram(clip['audio']), origin='lower',
                  aspect='auto', cmap='magma', vmin=-80,
                  extent=(0, t[-1], 0, config.sample_rate / 2000))
    row[2].set_title('log spectrogram (kHz)', fontsize=8)
    for ax in row:
      ax.tick_params(labelsize=6)
    row[0].axis('off')
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def write_media(clip: dict, config, stem: str) -> None:
  """`stem.wav` and `stem.mp4` (video with the audio muxed in)."""
  soundfile.write(stem + '.wav', clip['audio'], config.sample_rate)
  silent = stem + '.video.mp4'
  size = clip['video'].shape[1]
  scale = max(1, 256 // size)
  big = clip['video'].repeat(scale, 1).repeat(scale, 2)
  imageio.mimwrite(silent, list(big), fps=config.fps, macro_block_size=1)
  subprocess.run(
      [imageio_ffmpeg.get_ffmpeg_exe(), '-y', '-loglevel', 'error',
       '-i', silent, '-i', stem + '.wav', '-c:v', 'copy', '-c:a', 'aac',
       '-shortest', stem + '.mp4'], check=True)
  os.remove(silent)


def main(argv):
  del argv
  module, config = generator(_CONFIG.value)
  os.makedirs(_OUT.value, exist_ok=True)
  clips = [module.render_clip(config, _SPLIT.value, i, _SEED.value)
           for i in indices(module, config, _SPLIT.value, _NUM.value)]
  contact_sheet(module, config, clips,
                os.path.join(_OUT.value, 'contact_sheet.png'))
  for k, clip in enumerate(clips):
    write_media(clip, config, os.path.join(_OUT.value, f'clip_{k}'))
  print(f'Wrote {len(clips)} clips to {_OUT.value}')


if __name__ == '__main__':
  app.run(main)
