"""Tests for the spectrogram figures (avjax.evaluate.plots)."""

import imageio.v3 as iio
import numpy as np

from avjax.data import ops
from avjax.evaluate import plots


def tone(hz, seconds=0.5, amplitude=0.5):
  return amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * ops.SAMPLE_RATE))
                            / ops.SAMPLE_RATE)


def test_log_spectrogram_peaks_at_the_tone_and_scales_in_db():
  spectrum = plots.log_spectrogram(tone(1000.0))
  assert spectrum.shape == (-(-8000 // 128), 257)  # Centred frames every 8 ms; 512-point FFT.
  assert np.all(spectrum.argmax(axis=1)[2:-2] == 1000 * 512 // ops.SAMPLE_RATE)  # Bin 32.
  louder = plots.log_spectrogram(tone(1000.0, amplitude=5.0))
  np.testing.assert_allclose((louder - spectrum).max(axis=1), 20.0, atol=1e-6)  # 10x = +20 dB.


def test_plot_spectrograms_lays_the_panels_out_in_columns(tmp_path):
  waveforms = {'low': tone(300.0), 'high': tone(3000.0), 'silence': np.zeros(8000)}
  shapes = {}
  for columns in (1, 2):
    plots.plot_spectrograms(waveforms, tmp_path / f'{columns}.png', columns=columns)
    shapes[columns] = iio.imread(tmp_path / f'{columns}.png').shape
  assert shapes[1][0] > shapes[1][1]  # Three panels in a column: tall.
  assert shapes[2][1] > shapes[2][0]  # Two rows of two: wide.
