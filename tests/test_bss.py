"""Separation metrics: SI-SDR against direct formulas, BSS Eval against mir_eval."""

import warnings

import numpy as np
import pytest
import scipy.signal
from mir_eval import separation  # The test-only reference (setup.py pins mir_eval<0.9).

from avjax.evaluate import bss

SAMPLE_RATE = 8000
NUM_SAMPLES = 4000  # 0.5 s.
# Both implementations solve the same float64 least-squares problems; they
# differ by rounding only (about 1e-11 dB observed), far below this.
TOLERANCE_DB = 1e-6


def _mir_eval_sources(references, estimates, **kwargs):
  """mir_eval's bss_eval_sources (deprecated there since 0.8, removed in 0.9)."""
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', FutureWarning)
    return separation.bss_eval_sources(references, estimates, **kwargs)


def _sources(rng, num_sources=2):
  """A modulated harmonic tone, then low-passed noises, each of unit RMS: [K, N]."""
  t = np.arange(NUM_SAMPLES) / SAMPLE_RATE
  f0 = rng.uniform(100, 300)
  tone = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
  tone *= 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 6) * t)
  b, a = scipy.signal.butter(4, rng.uniform(0.1, 0.5))
  noises = [scipy.signal.lfilter(b, a, rng.normal(size=NUM_SAMPLES))
            for _ in range(num_sources - 1)]
  sources = np.stack([tone] + noises)
  return sources / np.sqrt(np.mean(sources**2, axis=1, keepdims=True))


def _estimates(rng, references):
  """Leaky mixtures of `references`, each through a short causal filter, plus noise."""
  k = len(references)
  mixing = np.eye(k) + rng.uniform(-0.3, 0.3, (k, k))
  mixed = mixing @ references
  filtered = np.stack([scipy.signal.lfilter(rng.normal(size=8) * 0.3 + np.eye(8)[0], 1, x)
                       for x in mixed])
  return filtered + 0.05 * rng.normal(size=filtered.shape)


# ---- SI-SDR ----

def test_si_sdr_of_a_hand_made_estimate():
  t = np.arange(NUM_SAMPLES) / SAMPLE_RATE  # 0.5 s: whole periods of 100 Hz.
  reference = np.sin(2 * np.pi * 100 * t)
  noise = 0.1 * np.cos(2 * np.pi * 100 * t)  # Orthogonal to the reference.
  estimate = 0.5 * reference + noise + 3.0  # The offset is removed with the mean.
  # |0.5 s|^2 / |n|^2 = 0.25 / 0.01 -> 10 log10(25) dB.
  assert bss.si_sdr(estimate, reference) == pytest.approx(10 * np.log10(25.0), abs=1e-9)
  assert bss.si_sdr(reference, reference) == np.inf


@pytest.mark.parametrize('seed', range(3))
def test_si_sdr_matches_the_correlation_formula(seed):
  rng = np.random.default_rng(seed)
  reference = rng.normal(size=NUM_SAMPLES) + 1.0
  estimate = rng.uniform(0.2, 2) * reference + rng.uniform(0.1, 1) * rng.normal(size=NUM_SAMPLES)
  rho = np.corrcoef(estimate, reference)[0, 1]  # SI-SDR = 10 log10(rho^2 / (1 - rho^2)).
  assert bss.si_sdr(estimate, reference) == pytest.approx(10 * np.log10(rho**2 / (1 - rho**2)))


def test_si_sdr_is_scale_invariant_and_batched():
  rng = np.random.default_rng(0)
  references = rng.normal(size=(3, NUM_SAMPLES))
  estimates = references + rng.normal(size=(3, NUM_SAMPLES)) * np.array([[0.1], [0.5], [1.0]])
  scores = bss.si_sdr(estimates, references)
  assert scores.shape == (3,) and scores[0] > scores[1] > scores[2]
  for j in range(3):
    assert bss.si_sdr(estimates[j], references[j]) == pytest.approx(scores[j])
  np.testing.assert_allclose(bss.si_sdr(7.0 * estimates, references), scores)
  np.testing.assert_allclose(bss.si_sdr(estimates, -0.01 * references), scores)


def test_si_sdr_rejects_silent_and_mismatched_signals():
  x = np.random.default_rng(0).normal(size=100)
  with pytest.raises(ValueError, match='reference is silent'):
    bss.si_sdr(x, np.full(100, 2.0))  # Constant: silent once zero-mean.
  with pytest.raises(ValueError, match='estimate is silent'):
    bss.si_sdr(np.zeros(100), x)
  with pytest.raises(ValueError, match='shape'):
    bss.si_sdr(x, x[:50])


# ---- BSS Eval ----

@pytest.mark.parametrize('seed', range(3))
def test_bss_eval_matches_mir_eval(seed):
  rng = np.random.default_rng(seed)
  references = _sources(rng)
  estimates = _estimates(rng, references)
  expected = _mir_eval_sources(references, estimates, compute_permutation=False)
  got = bss.bss_eval(estimates, references)
  np.testing.assert_allclose(got[:3], expected[:3], rtol=0, atol=TOLERANCE_DB)
  np.testing.assert_array_equal(got.permutation, [0, 1])
  assert np.all(np.isfinite(got[:3]))


def test_bss_eval_permutation_search_matches_mir_eval_and_undoes_a_swap():
  rng = np.random.default_rng(3)
  references = _sources(rng)
  estimates = _estimates(rng, references)
  in_order = bss.bss_eval(estimates, references)
  swapped = bss.bss_eval(estimates[::-1], references, search_permutation=True)
  np.testing.assert_array_equal(swapped.permutation, [1, 0])
  np.testing.assert_allclose(swapped[:3], in_order[:3], rtol=0, atol=TOLERANCE_DB)
  expected = _mir_eval_sources(references, estimates[::-1].copy())
  np.testing.assert_allclose(swapped[:3], expected[:3], rtol=0, atol=TOLERANCE_DB)
  np.testing.assert_array_equal(swapped.permutation, expected[3])
  unsearched = bss.bss_eval(estimates[::-1], references)
  assert np.all(unsearched.sir < in_order.sir - 10)


def test_permutation_of_three_sources():
  rng = np.random.default_rng(4)
  references = _sources(rng, num_sources=3)
  order = [1, 2, 0]  # Estimate i carries reference order[i] ...
  estimates = references[order] + 0.05 * rng.normal(size=references.shape)
  result = bss.bss_eval(estimates, references, search_permutation=True)
  np.testing.assert_array_equal(result.permutation, [2, 0, 1])  # ... so reference j is in p[j].
  assert np.all(result.sir > 20)


def test_a_short_filter_is_distortion_not_error():
  rng = np.random.default_rng(5)
  references = _sources(rng)
  references[:, -16:] = 0  # The filter's tail stays inside the signal.
  echo = [0, 0, 0, 1.0, 0, 0, 0, 0, -0.5]  # A delay and an echo.
  estimates = scipy.signal.lfilter(echo, 1, references, axis=1)
  allowed = bss.bss_eval(estimates, references)
  assert np.all(allowed.sdr > 100) and np.all(allowed.sir > 100)
  gain_only = bss.bss_eval(estimates, references, filter_length=1)
  assert np.all(gain_only.sdr < 10)


def test_identical_references_take_the_least_squares_path():
  rng = np.random.default_rng(6)
  reference = _sources(rng, num_sources=2)[1]
  references = np.stack([reference, reference])  # A singular Gram matrix.
  estimates = references + 0.1 * rng.normal(size=references.shape)
  got = bss.bss_eval(estimates, references, filter_length=64)  # Short: a fast lstsq.
  # Both subspaces are one reference's delays: no interference, SAR = SDR.
  assert np.all(got.sir > 200)
  np.testing.assert_allclose(got.sar, got.sdr, rtol=0, atol=1e-6)
  for j in range(2):
    alone = bss.bss_eval(estimates[j:j + 1], references[j:j + 1], filter_length=64)
    assert got.sdr[j] == pytest.approx(alone.sdr[0], abs=1e-6)


def test_bss_eval_rejects_silent_sources_by_index():
  rng = np.random.default_rng(7)
  references = _sources(rng)
  with pytest.raises(ValueError, match=r'reference source \[1\] is silent'):
    bss.bss_eval(references, references * np.array([[1.0], [0.0]]))
  with pytest.raises(ValueError, match=r'estimated source \[0\] is silent'):
    bss.bss_eval(references * np.array([[0.0], [1.0]]), references)
  with pytest.raises(ValueError, match='shape'):
    bss.bss_eval(references[:, :100], references)
  with pytest.raises(ValueError, match=r'\[sources, samples\]'):
    bss.bss_eval(references[0], references[0])
