"""Verification metrics: EER and minDCF against scikit-learn's ROC and brute force."""

import re

import numpy as np
import pytest
from sklearn import metrics  # The test-only reference.

from avjax.data.synth import heads
from avjax.evaluate import verification

# Both sides compute the same float64 ratios; one trial in a few hundred moves
# a rate by more than 1e-3, so this catches any off-by-one.
TOLERANCE = 1e-12


def _trials(seed, num_targets=61, num_nontargets=187, decimals=None):
  """Gaussian target (mean 1.5) and non-target (mean 0) scores, shuffled; rounded for ties."""
  rng = np.random.default_rng(seed)
  scores = np.r_[rng.normal(1.5, 1, num_targets), rng.normal(0, 1, num_nontargets)]
  labels = np.r_[np.ones(num_targets, int), np.zeros(num_nontargets, int)]
  if decimals is not None:
    scores = np.round(scores, decimals)
  order = rng.permutation(len(scores))
  return scores[order], labels[order]


def _sklearn_points(scores, labels):
  """(far, frr, thresholds) from roc_curve, by decreasing threshold; reject-all at max + ulp."""
  fpr, tpr, thresholds = metrics.roc_curve(labels, scores, drop_intermediate=False)
  assert thresholds[0] == np.inf
  thresholds[0] = np.nextafter(np.max(scores), np.inf)
  return fpr, 1 - tpr, thresholds


def _sklearn_eer(scores, labels):
  """Where the ROC polyline crosses FAR = FRR (FAR - FRR rises strictly along it)."""
  far, frr, thresholds = _sklearn_points(scores, labels)
  gap = far - frr
  assert np.all(np.diff(gap) > 0)
  return np.interp(0, gap, far), np.interp(0, gap, frr), np.interp(0, gap, thresholds)


def _brute_force_min_dcf(scores, labels, p_target, c_miss, c_fa):
  """min over all thresholds t (accept score >= t) of the normalised DCF, from the definition."""
  targets, nontargets = scores[labels == 1], scores[labels == 0]
  best = np.inf
  for t in np.r_[-np.inf, scores, np.inf]:
    p_miss, p_fa = np.mean(targets < t), np.mean(nontargets >= t)
    best = min(best, c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa)
  return best / min(c_miss * p_target, c_fa * (1 - p_target))


# ---- EER ----

@pytest.mark.parametrize('decimals', [None, 1])
@pytest.mark.parametrize('seed', range(4))
def test_eer_matches_the_sklearn_roc(seed, decimals):
  scores, labels = _trials(seed, decimals=decimals)
  if decimals is not None:
    assert len(np.unique(scores)) < len(scores) / 3  # Many ties.
  rate, threshold = verification.eer(scores, labels)
  far, frr, expected_threshold = _sklearn_eer(scores, labels)
  assert far == pytest.approx(frr, abs=TOLERANCE)
  assert rate == pytest.approx(far, abs=TOLERANCE)
  assert threshold == pytest.approx(expected_threshold, abs=TOLERANCE)
  assert 0.1 < rate < 0.4  # Means 1.5 sd apart: EER = Phi(-0.75) = 0.23 in the limit.


def test_eer_of_four_trials_by_hand():
  # Non-targets 0.1, 0.5; targets 0.5, 0.9. Thresholds 0.1, 0.5, 0.9, reject-all
  # give (FAR, FRR) = (1, 0), (0.5, 0), (0, 0.5), (0, 1). FAR = FRR halfway
  # between the 2nd and 3rd points, which the tie at 0.5 joins by a segment.
  scores, labels = [0.1, 0.5, 0.5, 0.9], [0, 0, 1, 1]
  rate, threshold = verification.eer(scores, labels)
  assert rate == pytest.approx(0.25, abs=TOLERANCE)
  assert threshold == pytest.approx(0.7, abs=TOLERANCE)
  far, frr = verification.det_curve(scores, labels)
  np.testing.assert_allclose(far, [1, 0.5, 0, 0])
  np.testing.assert_allclose(frr, [0, 0, 0.5, 1])


def test_separated_scores_give_eer_zero_at_the_lowest_target():
  scores, labels = [0.3, -1.0, 0.2, 2.0, 0.9, 0.8], [0, 0, 0, 1, 1, 1]
  assert verification.eer(scores, labels) == (0.0, 0.8)
  assert verification.eer(-np.asarray(scores), labels)[0] == 1.0  # Reversed: all wrong.


def test_tied_and_identical_distributions_give_eer_one_half():
  assert verification.eer([2.0] * 5, [0, 1, 1, 0, 1])[0] == pytest.approx(0.5, abs=TOLERANCE)
  rng = np.random.default_rng(0)
  scores, labels = rng.normal(size=40000), rng.integers(0, 2, 40000)
  assert verification.eer(scores, labels)[0] == pytest.approx(0.5, abs=0.01)  # sd 0.0025.


def test_det_curve_matches_the_sklearn_roc():
  scores, labels = _trials(7, decimals=1)
  far, frr = verification.det_curve(scores, labels)
  expected_far, expected_frr, _ = _sklearn_points(scores, labels)
  np.testing.assert_allclose(far, expected_far[::-1], rtol=0, atol=TOLERANCE)
  np.testing.assert_allclose(frr, expected_frr[::-1], rtol=0, atol=TOLERANCE)


def test_bad_trials_are_rejected():
  with pytest.raises(ValueError, match='both target'):
    verification.eer([0.1, 0.2], [1, 1])
  with pytest.raises(ValueError, match='both target'):
    verification.min_dcf([0.1, 0.2], [0, 0])
  with pytest.raises(ValueError, match='not finite'):
    verification.eer([0.1, np.nan, 0.3], [0, 1, 1])
  with pytest.raises(ValueError, match='not finite'):
    verification.det_curve([0.1, np.inf], [0, 1])
  with pytest.raises(ValueError, match='0 or 1'):
    verification.eer([0.1, 0.2, 0.3], [0, 1, 2])
  with pytest.raises(ValueError, match='shape'):
    verification.eer([0.1, 0.2, 0.3], [0, 1])
  with pytest.raises(ValueError, match='p_target'):
    verification.min_dcf([0.1, 0.2], [0, 1], p_target=1.0)


# ---- minDCF ----

@pytest.mark.parametrize('p_target, c_miss, c_fa', [
    (0.01, 1.0, 1.0), (0.05, 1.0, 1.0), (0.5, 1.0, 1.0), (0.01, 10.0, 1.0), (0.9, 1.0, 3.0)])
@pytest.mark.parametrize('decimals', [None, 1])
@pytest.mark.parametrize('seed', range(3))
def test_min_dcf_matches_brute_force_and_the_sklearn_roc(seed, decimals, p_target, c_miss, c_fa):
  scores, labels = _trials(seed, decimals=decimals)
  cost, threshold = verification.min_dcf(scores, labels, p_target, c_miss, c_fa)
  expected = _brute_force_min_dcf(scores, labels, p_target, c_miss, c_fa)
  assert cost == pytest.approx(expected, abs=TOLERANCE)
  far, frr, _ = _sklearn_points(scores, labels)
  sklearn_costs = c_miss * p_target * frr + c_fa * (1 - p_target) * far
  assert cost == pytest.approx(
      sklearn_costs.min() / min(c_miss * p_target, c_fa * (1 - p_target)), abs=TOLERANCE)
  # The threshold attains the minimum.
  targets, nontargets = scores[labels == 1], scores[labels == 0]
  at_threshold = (c_miss * p_target * np.mean(targets < threshold)
                  + c_fa * (1 - p_target) * np.mean(nontargets >= threshold))
  assert at_threshold / min(c_miss * p_target, c_fa * (1 - p_target)) == pytest.approx(
      cost, abs=TOLERANCE)
  assert 0 < cost <= 1


def test_min_dcf_of_four_trials_by_hand():
  scores, labels = [0.1, 0.5, 0.5, 0.9], [0, 0, 1, 1]
  # p_target 0.5: cost = FAR + FRR, 0.5 at thresholds 0.5 and 0.9; the lower wins.
  assert verification.min_dcf(scores, labels, p_target=0.5) == (0.5, 0.5)
  # p_target 0.01: cost = FRR + 99 FAR; only (FAR, FRR) = (0, 0.5) and (0, 1) avoid
  # the 99, so 0.5 at 0.9.
  assert verification.min_dcf(scores, labels) == pytest.approx((0.5, 0.9))
  # Separated scores cost nothing.
  assert verification.min_dcf([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == (0.0, 0.8)


# ---- Embeddings ----

def test_cosine_scores_of_hand_made_pairs():
  a = np.array([[1.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
  b = np.array([[2.0, 0.0], [-4.0, 3.0], [-2.0, -2.0]])
  np.testing.assert_allclose(verification.cosine_scores(a, b), [1.0, 0.0, -1.0], atol=1e-15)
  with pytest.raises(ValueError, match='zero'):
    verification.cosine_scores(a, b * np.array([[1.0], [0.0], [1.0]]))
  with pytest.raises(ValueError, match='shape'):
    verification.cosine_scores(a, b[:2])


def test_average_crops_normalises_before_and_after_the_mean():
  crops = np.array([[[10.0, 0.0], [0.0, 0.5]],  # Unit crops (1, 0), (0, 1): equal weight.
                    [[0.0, 2.0], [0.0, 3.0]]])
  averaged = verification.average_crops(crops)
  np.testing.assert_allclose(averaged, [[np.sqrt(0.5), np.sqrt(0.5)], [0.0, 1.0]], atol=1e-15)
  with pytest.raises(ValueError, match='crops'):
    verification.average_crops(crops[0])


def test_identification_assigns_the_nearest_enrolled_mean():
  embeddings = np.array([
      [1.0, 0.0], [1.0, 0.2],  # Speaker 7 enrolled.
      [0.0, 1.0], [0.0, 5.0],  # Speaker 3 enrolled.
      [2.0, 0.1],              # 7, correct.
      [0.1, 1.0],              # 3, correct.
      [1.0, 0.3],              # 3, but nearer 7's mean: wrong.
      [-1.0, 2.0]])            # 7, but nearer 3's mean: wrong.
  speakers = np.array([7, 7, 3, 3, 7, 3, 3, 7])
  enrol = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
  assert verification.identification_accuracy(embeddings, speakers, enrol) == 0.5
  assert verification.identification_accuracy(embeddings[:6], speakers[:6], enrol[:6]) == 1.0
  with pytest.raises(ValueError, match=r'\[5\] have no enrolment'):
    verification.identification_accuracy(embeddings, np.r_[speakers[:-1], 5], enrol)
  with pytest.raises(ValueError, match='no test rows'):
    verification.identification_accuracy(embeddings, speakers, np.ones(8, bool))


# ---- Trial lists ----

def test_read_trials_round_trips(tmp_path):
  path = tmp_path / 'veri_test.txt'
  path.write_text('1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n'
                  '\n'
                  '0 id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav\n'
                  '  1\ta.wav   b.wav  \n')
  labels, paths_a, paths_b = verification.read_trials(path)
  np.testing.assert_array_equal(labels, [1, 0, 1])
  assert labels.dtype.kind == 'i'
  assert paths_a == ['id10270/x6uYqmx31kE/00001.wav'] * 2 + ['a.wav']
  assert paths_b == ['id10270/8jEAjG6SegY/00008.wav', 'id10300/ize_eiCFEg0/00003.wav', 'b.wav']


@pytest.mark.parametrize('bad_line, message', [
    ('1 a.wav', '2 fields'), ('1 a.wav b.wav c.wav', '4 fields'), ('2 a.wav b.wav', "got '2'"),
    ('yes a.wav b.wav', "got 'yes'")])
def test_read_trials_names_the_file_and_line_of_a_bad_line(tmp_path, bad_line, message):
  path = tmp_path / 'trials.txt'
  path.write_text(f'1 a.wav b.wav\n\n{bad_line}\n0 a.wav c.wav\n')
  with pytest.raises(ValueError, match=re.escape(f'{path}:3: ') + f'.*{message}'):
    verification.read_trials(path)


def test_avsynth_trials_score_by_test_index():
  config = heads.PRESETS['heads_tiny']
  labels, index_a, index_b = np.asarray(heads.trials(config)).T  # As the module docstring says.
  speaker = np.array([heads.clip_identity(config, 'test', i)[0]
                      for i in range(heads.split_sizes(config)['test'])])
  np.testing.assert_array_equal(labels, speaker[index_a] == speaker[index_b])
  one_hot = np.eye(speaker.max() + 1)[speaker]  # A perfect speaker embedding.
  scores = verification.cosine_scores(one_hot[index_a], one_hot[index_b])
  assert verification.eer(scores, labels) == (0.0, 1.0)
