"""separation: on/off-screen source separation with a spectrogram u-net (Owens & Efros 2018).

Each example is a window of a talking-head clip: `window_frames` video frames
(every `frame_stride`-th one kept and averaged down by `frame_downsample`, as
the sync network was trained)
and the audio under them, RMS-normalised. `preprocess` returns them compact
(uint8 frames, int16 samples); `expand`, inside the jitted step, makes the
float frames and normalises the audio's RMS. Mixtures are made on the device
(`mix`): clip i's off-screen talker is clip i - 1 of the batch, so every
mixture is the sum of two RMS-normalised clips, as in Owens's `mix_sounds`.

Spectrogram (`stft`): periodic Hann frames centred on the samples t * hop
(64 ms window, 16 ms hop: 1024 and 256 samples at 16 kHz), the Nyquist bin
dropped, so F = n_fft / 2 bins (Owens keeps 1024 of 1025). The audio window
is cut to T hops, T the largest multiple of the u-net's time factor that fits
under the frames (Owens crops his spectrogram to 128 frames), so T and the
samples match exactly and `istft` inverts `stft` by weighted overlap-add.
Features [T, F, 2] (`to_features`): log-magnitude in dB mapped linearly from
`db_range` to [-1, 1] (clipped; Owens's is [-100, 80] dB) and phase / pi. The
u-net's input is the mixture's, its targets each source's.

Modes: 'onoff' conditions the u-net on the sync network's conv2, conv3 and
conv5 maps of (on-screen video, mixture), spatially averaged, at
`config.model.unet.cond_levels`; head 0 is the on-screen source, head 1 the
off-screen one. 'pit', the audio-only baseline, sees no video and scores the
better of the two orderings of its heads, per example.

Outputs (`output`): 'spectrogram', Owens's, reads each head's two channels
as the estimate's features; 'mask' reads its first channel h as a ratio
mask (h + 1) / 2 of the mixture's magnitude and keeps the mixture's phase
(Owens's `phase_type='orig'`; masks as in Zhao et al. 2018's Sound of
Pixels), so an untrained u-net's estimate (h near 0) is the mixture, halved.

Loss per example (`loss`), summed over the two heads: 'spectrogram',
Owens's, mean |log-magnitude error| + `phase_weight` x mean |phase error|
(normalised units; the phase term for 'spectrogram' outputs only, a mask's
phase is the mixture's); 'si_sdr', minus the SI-SDR (dB) of the head's
waveform, the measure the suite reports (Le Roux et al. 2019; as Conv-TasNet
trains).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from avjax.data import ops
from avjax.models import fusion
from avjax.models import unet as unet_models
from avjax.tasks import expand
from avjax.tasks import sync

MODES = ('onoff', 'pit')
OUTPUTS = ('spectrogram', 'mask')
LOSSES = ('spectrogram', 'si_sdr')
SYNC_FEATURES = ('conv2', 'conv3', 'conv5')  # Owens's three scales of the sync network.


def hann(length):
  """Periodic Hann window, float32 [length]."""
  return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)).astype(np.float32)


def check_framing(num_samples, frame_length, hop_length, n_fft):
  """ValueError unless `stft` can frame `num_samples` samples and `istft` invert it."""
  if frame_length % hop_length or frame_length < 2 * hop_length or n_fft < frame_length:
    raise ValueError(f'STFT frame_length={frame_length} must be a multiple of hop_length='
                     f'{hop_length}, at least twice it, and at most n_fft={n_fft}')
  if num_samples % hop_length:
    raise ValueError(f'{num_samples} samples is not a multiple of hop_length={hop_length}')


def _pad_last(x, before, after):
  return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(before, after)])


def stft(audio, frame_length, hop_length, n_fft):
  """Audio [..., S] -> complex64 [..., S / hop, n_fft / 2].

  Frame t is centred on sample t * hop (zeros beyond the ends), weighted by a
  periodic Hann window and zero padded to n_fft; the Nyquist bin is dropped.
  The magnitudes are those of `ops.stft_magnitude` without its last bin.
  """
  num_samples = audio.shape[-1]
  check_framing(num_samples, frame_length, hop_length, n_fft)
  overlap, num_frames = frame_length // hop_length, num_samples // hop_length
  padded = _pad_last(audio, frame_length // 2, frame_length - frame_length // 2)
  blocks = padded.reshape(audio.shape[:-1] + (num_frames + overlap, hop_length))
  frames = jnp.concatenate([blocks[..., j:j + num_frames, :] for j in range(overlap)], -1)
  return jnp.fft.rfft(frames * hann(frame_length), n=n_fft)[..., :n_fft // 2]


def istft(spectrum, frame_length, hop_length, n_fft):
  """Inverse of `stft`: complex [..., T, n_fft / 2] -> [..., T * hop].

  The Nyquist bin is taken as zero. Weighted overlap-add: each inverse frame
  is windowed again, and the sum is divided by the overlap-added squared window.
  """
  num_frames = spectrum.shape[-2]
  check_framing(num_frames * hop_length, frame_length, hop_length, n_fft)
  overlap = frame_length // hop_length
  window = hann(frame_length)
  frames = jnp.fft.irfft(_pad_last(spectrum, 0, 1), n=n_fft)[..., :frame_length] * window
  blocks = frames.reshape(frames.shape[:-1] + (overlap, hop_length))  # [..., T, k, hop]
  lead = [(0, 0)] * (blocks.ndim - 3)
  summed = sum(jnp.pad(blocks[..., j, :], lead + [(j, overlap - 1 - j), (0, 0)])
               for j in range(overlap))  # [..., T + k - 1, hop]
  squared = (window**2).reshape(overlap, hop_length)
  norm = sum(np.pad(np.broadcast_to(squared[j], (num_frames, hop_length)),
                    ((j, overlap - 1 - j), (0, 0))) for j in range(overlap))
  # The first sample's window weight is 0; it is cropped, but a 0 there would make the
  # gradient NaN.
  out = (summed / np.where(norm > 0, norm, 1.0)).reshape(summed.shape[:-2] + (-1,))
  start = frame_length // 2
  return out[..., start:start + num_frames * hop_length]


def to_features(spectrum, db_range):
  """Complex [..., T, F] -> float32 [..., T, F, 2] in [-1, 1]: (log-magnitude, phase).

  The magnitude in dB, 20 log10 |X|, is mapped linearly from
  db_range = (low, high) to [-1, 1] and clipped; the phase is angle / pi.
  """
  low, high = db_range
  db = 20.0 * jnp.log10(jnp.maximum(jnp.abs(spectrum), 1e-30))
  magnitude = jnp.clip(2.0 * (db - low) / (high - low) - 1.0, -1.0, 1.0)
  return jnp.stack([magnitude, jnp.angle(spectrum) / jnp.pi], axis=-1)


def from_features(features, db_range):
  """Inverse of `to_features` (up to its clipping): [..., T, F, 2] -> complex [..., T, F]."""
  low, high = db_range
  db = low + (features[..., 0] + 1.0) * (high - low) / 2.0
  return 10.0**(db / 20.0) * jnp.exp(1j * jnp.pi * features[..., 1])


def masked(heads, spectrum):
  """Heads [B, 2, T, F, 2] in [-1, 1] as ratio masks (h + 1) / 2 (channel 0) of the
  mixture's spectrum [B, T, F] -> the masked spectra, complex [B, 2, T, F]."""
  return (heads[..., 0] + 1.0) / 2.0 * spectrum[:, None]


def mix(audio):
  """Audio [B, S] -> (sources [B, 2, S], mixture [B, S]).

  Source 0 (on-screen) is clip i, source 1 (off-screen) clip i - 1 of the
  batch (wrapping), and the mixture is their sum.
  """
  sources = jnp.stack([audio, jnp.roll(audio, 1, axis=0)], axis=1)
  return sources, sources[:, 0] + sources[:, 1]


def spectrogram_l1(pred, target, phase_weight):
  """Per-example loss [B] of heads [B, 2, T, F, 2] against targets of that shape, in order.

  Each head's mean |log-magnitude error| + phase_weight * mean |phase
  error|, summed over the heads.
  """
  err = jnp.abs(pred - target).mean(axis=(2, 3))  # [B, heads, (magnitude, phase)]
  return (err[..., 0] + phase_weight * err[..., 1]).sum(-1)


def pit(loss, pred, target):
  """(per-example `loss(pred, target)` [B] of the better ordering of the heads of pred
  [B, 2, ...], swapped [B] bool: the heads' order was reversed)."""
  direct, crossed = loss(pred, target), loss(pred[:, ::-1], target)
  return jnp.minimum(direct, crossed), crossed < direct


def si_sdr(estimate, reference, eps=0.0):
  """Scale-invariant SDR in dB over the last axis; the definition of `avjax.evaluate.bss.si_sdr`
  (`eps` added to both energies keeps a training loss finite on silence)."""
  estimate = estimate - estimate.mean(-1, keepdims=True)
  reference = reference - reference.mean(-1, keepdims=True)
  scale = (estimate * reference).sum(-1, keepdims=True) / ((reference**2).sum(-1, keepdims=True)
                                                           + eps)
  target = scale * reference
  return 10.0 * (jnp.log10((target**2).sum(-1) + eps)
                 - jnp.log10(((estimate - target)**2).sum(-1) + eps))


def negative_si_sdr(estimates, references):
  """Per-example loss [B] of waveforms [B, 2, S] against references of that shape, in
  order: minus each head's SI-SDR (dB), summed over the heads."""
  return -si_sdr(estimates, references, eps=1e-8).sum(-1)


def normalise_rms(audio, target):
  """Float audio [..., S] scaled to RMS `target` along its last axis; jnp."""
  rms = jnp.sqrt(jnp.mean(jnp.square(audio), axis=-1, keepdims=True))
  return audio * (target / jnp.maximum(rms, 1e-8))


def window_samples(window_frames, hop_length, time_factor,
                   samples_per_frame=ops.SAMPLES_PER_FRAME):
  """Samples per example: the most whole hops under the frames that make a multiple of
  `time_factor` STFT frames (the u-net's divisibility)."""
  frames = window_frames * samples_per_frame // hop_length // time_factor * time_factor
  if not frames:
    raise ValueError(f'{window_frames} video frames hold fewer than {time_factor} STFT frames '
                     f'of {hop_length} samples, the u-net\'s time factor')
  return frames * hop_length


class Separation:
  """The separation task; see `avjax.tasks` for the contract.

  Beyond it, `separate(params, batch) -> (estimates [B, 2, S], references
  [B, 2, S], mixture [B, S])` gives waveforms (on-screen first; for 'pit' the
  heads in their better order) for BSS Eval and listening.
  """

  # The example features `preprocess` reads ('pit' reads the video's length only).
  features = ('video', 'audio')

  def __init__(self, config):
    self.config = config.separation
    if self.config.mode not in MODES:
      raise ValueError(f'unknown separation.mode {self.config.mode!r}; known: {MODES}')
    if self.config.output not in OUTPUTS:
      raise ValueError(f'unknown separation.output {self.config.output!r}; known: {OUTPUTS}')
    if self.config.loss not in LOSSES:
      raise ValueError(f'unknown separation.loss {self.config.loss!r}; known: {LOSSES}')
    # A phase loss only where the heads predict the phase.
    self.phase_weight = self.config.phase_weight if self.config.output == 'spectrogram' else 0.0
    self.onoff = self.config.mode == 'onoff'
    speed = dict(dtype=jnp.dtype(config.dtype), remat=config.get('remat', False))
    unet = config.model.unet.to_dict()
    unet['cond_levels'] = tuple(unet['cond_levels']) if self.onoff else ()
    self.unet = unet_models.SpectrogramUNet(**unet, num_sources=2, **speed)
    self.sync_net = fusion.SyncNet(**config.model.sync.to_dict(), **speed)
    rate = ops.SAMPLE_RATE
    self.stft_sizes = dict(frame_length=round(rate * self.config.frame_ms / 1000),
                           hop_length=round(rate * self.config.hop_ms / 1000),
                           n_fft=self.config.n_fft)
    self.num_samples = window_samples(self.config.window_frames, self.stft_sizes['hop_length'],
                                      math.prod(unet['time_strides']))
    check_framing(self.num_samples, **self.stft_sizes)
    self.db_range = tuple(self.config.db_range)
    if self.config.init_sync and not self.onoff:
      raise ValueError("separation.init_sync is set but mode 'pit' has no sync network")
    # Read once, on the host: `init` runs traced (under jit and eval_shape).
    self.pretrained_sync = (sync.load_sync_params(self.config.init_sync)
                            if self.config.init_sync else None)

  def preprocess(self, example, rng):
    """A compact example: 'audio' int16 [S]; 'onoff' also 'video', the frames shown, uint8."""
    video, audio = example['video'], example['audio']
    frames = self.config.window_frames
    start = int(rng.integers(0, max(len(video) - frames, 0) + 1))
    samples, clip = ops.time_crop(audio, video, start, frames)  # Raises if the clip is short.
    features = {'audio': np.asarray(samples[:self.num_samples], np.int16)}
    if self.onoff:
      features['video'] = sync.shown_frames(clip, self.config.frame_stride,
                                            self.config.frame_downsample)
    return features

  def expand(self, batch):
    """A batch of `preprocess` -> {'audio' float32 at RMS `config.rms`; 'onoff': 'video'
    float32 in [-1, 1]}; jnp, jit-able."""
    out = {'audio': normalise_rms(expand.to_float_audio(batch['audio']), self.config.rms)}
    if self.onoff:
      out['video'] = expand.to_float_image(batch['video'])
    return out

  def _features(self, audio):
    return to_features(stft(audio, **self.stft_sizes), self.db_range)

  def _condition(self, aux):
    """The sync network's maps [B, T', H', W', C] -> spatial means [B, T', C]."""
    return [aux[name].mean(axis=(2, 3)) for name in SYNC_FEATURES]

  def _init_sync(self, rng, video, mixture):
    """(random sync_net params, the conditioning they give)."""
    (_, aux), variables = self.sync_net.init_with_output({'params': rng}, video, mixture)
    return variables['params'], self._condition(aux)

  def init(self, rng, batch):
    batch = self.expand(batch)
    unet_rng, sync_rng = jax.random.split(rng)
    _, mixture = mix(batch['audio'])
    params, cond = {}, ()
    if self.onoff:
      args = (sync_rng, batch['video'], mixture)
      shapes, cond_shapes = jax.eval_shape(self._init_sync, *args)
      if self.pretrained_sync is None:
        params['sync_net'] = self._init_sync(*args)[0]
      else:  # Compiles no random sync_net.
        params['sync_net'] = sync.pretrained_like(self.pretrained_sync, shapes,
                                                  self.config.init_sync)
      cond = [jnp.zeros(c.shape, c.dtype) for c in cond_shapes]  # The u-net needs their shapes.
    params['unet'] = self.unet.init({'params': unet_rng}, self._features(mixture), cond)['params']
    return params

  def _predict(self, params, batch, mixture):
    """Each head's estimate of the mixture (and, 'onoff', the video), complex [B, 2, T, F]."""
    cond = ()
    if self.onoff:
      _, aux = self.sync_net.apply({'params': params['sync_net']}, batch['video'], mixture)
      cond = self._condition(aux)
    spectrum = stft(mixture, **self.stft_sizes)
    out = self.unet.apply({'params': params['unet']}, to_features(spectrum, self.db_range),
                          cond).astype(jnp.float32)
    if self.config.output == 'mask':
      return masked(out, spectrum)
    return from_features(out, self.db_range)

  def _heads_and_loss(self, params, batch):
    """(per-example loss [B], estimates [B, 2, T, F] in the targets' order, sources,
    mixture) of an expanded batch."""
    sources, mixture = mix(batch['audio'])
    pred = self._predict(params, batch, mixture)
    if self.config.loss == 'si_sdr':
      outputs, targets, loss = istft(pred, **self.stft_sizes), sources, negative_si_sdr
    else:
      outputs, targets = to_features(pred, self.db_range), self._features(sources)
      loss = lambda p, t: spectrogram_l1(p, t, self.phase_weight)
    if self.onoff:
      return loss(outputs, targets), pred, sources, mixture
    loss, swapped = pit(loss, outputs, targets)
    pred = jnp.where(swapped[:, None, None, None], pred[:, ::-1], pred)
    return loss, pred, sources, mixture

  def _separate(self, params, batch):
    loss, pred, sources, mixture = self._heads_and_loss(params, self.expand(batch))
    return loss, istft(pred, **self.stft_sizes), sources, mixture

  def separate(self, params, batch):
    """(estimates [B, 2, S], references [B, 2, S], mixture [B, S]); jit-able."""
    return self._separate(params, batch)[1:]

  def loss(self, params, batch, rng):
    del rng  # Deterministic: the mixtures come from the batch's order.
    loss = self._heads_and_loss(params, self.expand(batch))[0].mean()
    return loss, {'loss': loss}

  def evaluate(self, params, batch):
    loss, estimates, sources, mixture = self._separate(params, batch)
    estimate_si_sdr = si_sdr(estimates[:, 0], sources[:, 0])
    mixture_si_sdr = si_sdr(mixture, sources[:, 0])
    return {'loss': loss.mean(), 'si_sdr': estimate_si_sdr.mean(),
            'mixture_si_sdr': mixture_si_sdr.mean(),
            'si_sdr_improvement': (estimate_si_sdr - mixture_si_sdr).mean()}

  def visualize(self, params, batch):
    del params, batch
    return None

  def encoders(self):
    # The u-net reads spectrogram features made inside the task, not a batch
    # feature, so it does not fit `export.load_encoder`'s contract; a trained
    # separator is used through `separate` on `checkpoint.restore_params`.
    return {}
