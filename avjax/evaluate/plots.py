"""Spectrogram figures of waveforms, as the separation notebook draws them (PNG)."""

import io

import numpy as np

from avjax.data import ops

COLOUR_LEVELS = 128  # Of the colour map: 0.6 dB steps over 80 dB, and a small palette PNG.


def log_spectrogram(waveform, frame_length=512, hop_length=128):
  """Magnitude in dB [frames, frame_length // 2 + 1] of a float waveform [S]
  (`ops.stft_magnitude`: Hann window, centred frames; 32 ms / 8 ms at 16 kHz)."""
  magnitude = ops.stft_magnitude(waveform, frame_length, hop_length, frame_length)
  return 20.0 * np.log10(np.maximum(magnitude, 1e-8))


def plot_spectrograms(waveforms, path, columns=1, dynamic_range=80.0,
                      sample_rate=ops.SAMPLE_RATE):
  """Log spectrograms of {title: float waveform [S]}, a panel each in `columns`
  columns, on one colour scale (the loudest panel's peak down `dynamic_range`
  dB), so that louder and quieter estimates compare; a PNG.

  The colour map has COLOUR_LEVELS levels and the spectrogram's pixels are not
  blended, so the figure needs few colours: it is written as a 256-colour
  palette PNG, about 40% of the RGB size, with no visible change.
  """
  import matplotlib  # Imported here: only plotting needs it.
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt
  from PIL import Image
  spectra = {title: log_spectrogram(w) for title, w in waveforms.items()}
  top = max(s.max() for s in spectra.values())
  rows = -(-len(spectra) // columns)
  fig, axes = plt.subplots(rows, columns, squeeze=False, sharex=True, sharey=True,
                           figsize=(4.5 * columns, 1.8 * rows + 0.4))
  for ax, (title, spectrum) in zip(axes.flat, spectra.items()):
    seconds = len(waveforms[title]) / sample_rate
    image = ax.imshow(spectrum.T, origin='lower', aspect='auto', interpolation='nearest',
                      cmap=plt.get_cmap('magma', COLOUR_LEVELS), vmin=top - dynamic_range,
                      vmax=top, extent=(0, seconds, 0, sample_rate / 2000))
    ax.set_title(title, fontsize='small')
  for i, ax in enumerate(axes.flat):
    if i >= len(spectra):
      ax.axis('off')
    elif i + columns >= len(spectra):  # The lowest panel of its column.
      ax.tick_params(labelbottom=True)
      ax.set_xlabel('time (s)')
  for ax in axes[:, 0]:
    ax.set_ylabel('kHz')
  fig.colorbar(image, ax=axes, label='dB', shrink=0.9)
  png = io.BytesIO()
  fig.savefig(png, format='png', dpi=100, bbox_inches='tight')
  plt.close(fig)
  Image.open(png).convert('RGB').quantize(256).save(path, optimize=True)
