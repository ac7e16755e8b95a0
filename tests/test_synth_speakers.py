"""Tests of the avsynth speakers: faces and voices share sex, age and height."""

import dataclasses

import numpy as np
from sklearn import linear_model

from avjax.data.synth import speakers

N = 400   # speakers: fast, and enough for the correlations below to be 4+ SE from 0


def _flat(traits):
  return np.concatenate([np.ravel(getattr(traits, f.name))
                         for f in dataclasses.fields(traits)]).astype(float)


def _people(n=N, seed=0):
  zs = [speakers.latent(seed, k) for k in range(n)]
  return ([speakers.person(z) for z in zs], [speakers.voice(z) for z in zs],
          np.array([_flat(speakers.face(z)) for z in zs]))


def _held_out_r2(x, y):
  half = len(y) // 2
  model = linear_model.LinearRegression().fit(x[:half], y[:half])
  residual = y[half:] - model.predict(x[half:])
  return 1.0 - np.mean(residual ** 2) / np.var(y[half:])


def test_person_distributions():
  people, _, _ = _people()
  female = np.array([p.female for p in people])
  age = np.array([p.age for p in people])
  height = np.array([p.height_cm for p in people])
  assert 0.4 < female.mean() < 0.6
  assert np.all((age >= speakers.AGE_RANGE[0]) & (age <= speakers.AGE_RANGE[1]))
  assert age.std() > 12   # Uniform over 50 years: SD 14.4.
  for sex in (False, True):
    mean, sd = speakers.HEIGHT_CM[sex]
    assert abs(height[female == sex].mean() - mean) < 1.5
    assert abs(height[female == sex].std() - sd) < 1.5


def test_face_predicts_f0_and_formant_scale():
  """Sex alone explains 0.76 of the variance of log F0 (ln(210/120) apart, SD 0.15
  within a sex) and 0.75 of log formant scale (ln 1.17 apart, SD 0.045), and the
  face shows sex; 0.6 leaves room for sampling noise on 200 held-out speakers."""
  _, voices, faces = _people()
  for name in ('f0_hz', 'formant_scale'):
    r2 = _held_out_r2(faces, np.log([getattr(v, name) for v in voices]))
    print(f'log {name} from face traits: held-out R^2 {r2:.3f}')
    assert r2 > 0.6, name


def test_height_reaches_formants_and_head_size():
  """Within a sex, taller people have lower formants and larger heads."""
  people, voices, faces = _people()
  female = np.array([p.female for p in people])
  height = np.array([p.height_cm for p in people])
  within = lambda x: x - np.where(female, x[female].mean(), x[~female].mean())
  head = faces[:, 0]   # head_w
  formants = np.log([v.formant_scale for v in voices])
  r_formant = np.corrcoef(within(height), within(formants))[0, 1]
  r_head = np.corrcoef(within(height), within(np.log(head)))[0, 1]
  print(f'within-sex r(height, log formant scale) {r_formant:.3f}, '
        f'r(height, log head width) {r_head:.3f}')
  assert -0.47 < r_formant < -0.13   # -0.3 +- 3.5 SE at 400 speakers
  assert 0.19 < r_head < 0.51        # 0.35 +- 3.5 SE


def test_age_reaches_face_and_voice():
  """The same people at 21 and at 69: greyer, men's hairlines higher; women's F0
  lower, men's higher, voices breathier and more irregular. Nothing else moves."""
  zs = [speakers.latent(0, k) for k in range(100)]
  at = lambda z, age_z: np.concatenate([z[:26], [age_z], z[27:]])
  young, old = [[at(z, a) for z in zs] for a in (-2.0, 2.0)]
  female = np.array([speakers.person(z).female for z in zs])
  face = speakers.face
  colour = lambda zs: np.array([np.ptp(face(z).hair) for z in zs])   # Grey has none.
  assert np.all(colour(old) <= colour(young))
  assert colour(old).mean() < 0.8 * colour(young).mean()
  rise = np.array([face(o).hairline - face(y).hairline for y, o in zip(young, old)])
  assert np.all(rise[female] == 0) and np.mean(rise[~female] > 0.02) > 0.3
  for y, o in zip(young, old):
    changed = {f.name for f in dataclasses.fields(speakers.Face)
               if getattr(face(y), f.name) != getattr(face(o), f.name)}
    assert changed <= {'hair', 'hairline'}, changed
  st = np.array([12 * np.log2(speakers.voice(o).f0_hz / speakers.voice(y).f0_hz)
                 for y, o in zip(young, old)])
  print(f'F0 change from 21 to 69: women {st[female].mean():.2f} st, '
        f'men {st[~female].mean():.2f} st')
  assert np.all(st[female] < -1.0) and np.all(st[~female] > 0.5)
  for name in ('breathiness', 'jitter'):
    assert all(getattr(speakers.voice(o), name) > getattr(speakers.voice(y), name)
               for y, o in zip(young, old)), name
