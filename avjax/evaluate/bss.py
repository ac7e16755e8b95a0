"""Source separation metrics on numpy arrays: SI-SDR and BSS Eval v3 (SDR, SIR, SAR).

`bss_eval` follows `mir_eval.separation.bss_eval_sources` (Vincent et al.
2006, BSS Eval v3): an estimate is projected by least squares onto the
`filter_length` delays 0, ..., L - 1 of its own reference (the allowed
distortion, a time-invariant FIR filter) and of all references (that plus
interference); what is left is artifacts. Signals are zero padded by L - 1
samples at the end, as there. The Gram matrix of the delayed references and
their correlations with the estimates come from FFTs; one linear solve per
subspace serves all estimates.
"""

import itertools
from typing import NamedTuple

import numpy as np
import scipy.linalg


class BssResult(NamedTuple):
  """Per reference source j: the criteria of estimate `permutation[j]`, in dB."""
  sdr: np.ndarray
  sir: np.ndarray
  sar: np.ndarray
  permutation: np.ndarray


def _check_pair(estimate, reference):
  """float64 copies of two equally shaped arrays; ValueError otherwise."""
  estimate, reference = np.asarray(estimate, np.float64), np.asarray(reference, np.float64)
  if estimate.shape != reference.shape:
    raise ValueError(f'estimate shape {estimate.shape} != reference shape {reference.shape}')
  if estimate.ndim == 0 or estimate.shape[-1] == 0:
    raise ValueError(f'need signals with samples on the last axis, got shape {estimate.shape}')
  return estimate, reference


def _check_not_silent(signals, what):
  """ValueError naming the rows of `signals` [..., N] (flattened) that are all zero."""
  silent = np.flatnonzero(~np.any(signals.reshape(-1, signals.shape[-1]), axis=-1))
  if silent.size:
    rows = f' {silent.tolist()}' if signals.ndim > 1 else ''
    raise ValueError(f'{what}{rows} is silent (all zeros): the measure is undefined')


def _db(numerator, denominator):
  """10 log10(numerator / denominator); +inf where the denominator is 0."""
  with np.errstate(divide='ignore'):
    return 10.0 * (np.log10(numerator) - np.log10(denominator))


def si_sdr(estimate, reference):
  """Scale-invariant SDR in dB (Le Roux et al. 2019), over the last axis.

  Both signals are made zero-mean; the target is the reference scaled by
  <estimate, reference> / |reference|^2 and the noise is the rest of the
  estimate; SI-SDR = 10 log10(|target|^2 / |noise|^2), +inf for a perfect
  estimate. Leading axes are batch axes: returns a float for 1D inputs, else
  an array of their shape. Raises ValueError for a silent (constant) signal.
  """
  estimate, reference = _check_pair(estimate, reference)
  estimate = estimate - estimate.mean(-1, keepdims=True)
  reference = reference - reference.mean(-1, keepdims=True)
  _check_not_silent(reference, 'zero-mean reference')
  _check_not_silent(estimate, 'zero-mean estimate')
  scale = np.sum(estimate * reference, -1, keepdims=True) / np.sum(reference**2, -1, keepdims=True)
  target = scale * reference
  out = _db(np.sum(target**2, -1), np.sum((estimate - target)**2, -1))
  return float(out) if out.ndim == 0 else out


def _delay_gram(spectra, filter_length, n_fft):
  """Gram matrix [K L, K L] of the delays 0..L-1 of K signals given by their rFFTs.

  Entry (i L + a, j L + b) = <s_i delayed by a, s_j delayed by b>
  = cross-correlation r_ij[b - a]; exact since n_fft >= N + L - 1.
  """
  k = len(spectra)
  correlations = np.fft.irfft(spectra[:, None] * spectra[None].conj(), n_fft)  # [K, K, n_fft]
  lags = np.arange(filter_length)
  blocks = correlations[:, :, (lags[None] - lags[:, None]) % n_fft]  # [K, K, L, L]
  return blocks.transpose(0, 2, 1, 3).reshape(k * filter_length, k * filter_length)


def _delay_correlations(spectra, estimate_spectra, filter_length, n_fft):
  """[K L, E]: entry (i L + a, e) = <s_i delayed by a, estimate e>."""
  correlations = np.fft.irfft(spectra[:, None] * estimate_spectra[None].conj(), n_fft)
  delayed = correlations[:, :, (-np.arange(filter_length)) % n_fft]  # [K, E, L]
  return delayed.transpose(0, 2, 1).reshape(-1, estimate_spectra.shape[0])


def _solve(gram, rhs):
  """gram^-1 rhs; a least-squares solution if gram is singular, as in mir_eval.

  Any least-squares solution gives the same projection; QR with pivoting
  (gelsy) finds one faster than the SVD that mir_eval uses.
  """
  try:
    return np.linalg.solve(gram, rhs)
  except np.linalg.LinAlgError:
    return scipy.linalg.lstsq(gram, rhs, lapack_driver='gelsy')[0]


def _project(spectra, coefficients, filter_length, n_fft, length):
  """Sum over sources of FIR filters [K L, E] applied to them: [E, length]."""
  filters = coefficients.reshape(len(spectra), filter_length, -1)
  filtered = np.einsum('kfe,kf->ef', np.fft.rfft(filters, n_fft, axis=1), spectra)
  return np.fft.irfft(filtered, n_fft)[:, :length]


def _criteria(estimates, references, filter_length):
  """SDR, SIR, SAR [E, K] of every estimate (row) against every reference (column)."""
  num_sources, num_samples = references.shape
  length = num_samples + filter_length - 1
  n_fft = 1 << (length - 1).bit_length()
  spectra = np.fft.rfft(references, n_fft)
  estimate_spectra = np.fft.rfft(estimates, n_fft)
  gram = _delay_gram(spectra, filter_length, n_fft)
  rhs = _delay_correlations(spectra, estimate_spectra, filter_length, n_fft)
  padded = np.pad(estimates, ((0, 0), (0, filter_length - 1)))
  projected_all = _project(spectra, _solve(gram, rhs), filter_length, n_fft, length)  # [E, length]
  energy = lambda x: np.sum(x**2, -1)
  sdr, sir, sar = (np.empty((len(estimates), num_sources)) for _ in range(3))
  for j in range(num_sources):
    block = slice(j * filter_length, (j + 1) * filter_length)
    coefficients = _solve(gram[block, block], rhs[block])
    own = _project(spectra[j:j + 1], coefficients, filter_length, n_fft, length)  # [E, length]
    sdr[:, j] = _db(energy(own), energy(padded - own))
    sir[:, j] = _db(energy(own), energy(projected_all - own))
    sar[:, j] = _db(energy(projected_all), energy(padded - projected_all))
  return sdr, sir, sar


def bss_eval(estimates, references, filter_length=512, search_permutation=False):
  """BSS Eval v3 SDR, SIR and SAR in dB of estimates [K, N] against references [K, N].

  Matches `mir_eval.separation.bss_eval_sources` with `filter_length` = 512.
  Without `search_permutation` estimate j is scored against reference j (the
  order is known, e.g. on-screen / off-screen heads); with it, the
  permutation that maximises the mean SIR is chosen, as mir_eval does by
  default. Returns a `BssResult`; `permutation[j]` is the estimate matched
  to reference j. Raises ValueError on mismatched shapes and on silent
  (all-zero) references or estimates.
  """
  estimates, references = _check_pair(estimates, references)
  if estimates.ndim != 2:
    raise ValueError(f'need [sources, samples] arrays, got shape {estimates.shape}')
  if filter_length < 1:
    raise ValueError(f'filter_length must be >= 1, got {filter_length}')
  _check_not_silent(references, 'reference source')
  _check_not_silent(estimates, 'estimated source')
  sdr, sir, sar = _criteria(estimates, references, filter_length)
  sources = np.arange(len(references))
  permutation = _best_permutation(sir) if search_permutation else sources
  return BssResult(sdr[permutation, sources], sir[permutation, sources],
                   sar[permutation, sources], permutation)


def _best_permutation(sir):
  """The p maximising mean_j sir[p[j], j] (the first in itertools order on ties)."""
  sources = np.arange(sir.shape[1])
  return np.array(max(itertools.permutations(sources), key=lambda p: np.mean(sir[p, sources])))
