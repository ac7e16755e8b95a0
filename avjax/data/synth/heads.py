"""avsynth talking heads: a speaker says a few words, with an emotion.

Each clip is deterministic given (config, split, index, seed). Speakers are
latent identities (`speakers.py`) driving a source-filter voice (`voice.py`)
and a cartoon face (`face.py`); the phonemes of the words (`lexicon.py`) drive
both the formants and the mouth (visemes), and an emotion with intensity and
continuous arousal/valence drives prosody and facial expression.

The face moves with the voice the way people's do:
- Brows rise on pitch accents (Cave et al. 1996, ICSLP; Flecha-Garcia 2010,
  Speech Communication 52; Krahmer & Swerts 2007, J. Memory and Language 57:
  brow raises as visual beats on prominent words; Ekman 1979, "About brows":
  brows as batons on stressed words), in proportion to the accent's F0 rise,
  with the eyes opening a little; the same accents make the word louder
  (Lieberman 1960, JASA 32).
- An emotion's expression has an onset, an apex and an offset (Ekman & Friesen
  1982, J. Nonverbal Behavior 6): it rises from near neutral and may decay
  within the clip. The voice's emotion follows the same course, one episode
  driving both (Scherer 2005, Social Science Information 44).
- Arousal scales head-motion energy (Busso et al. 2007, IEEE TASLP 15: head
  motion differs by emotion), and the head rises with F0 accents (Yehia et al.
  2002, J. Phonetics 30; Munhall et al. 2004, Psychological Science 15: head
  motion correlates with F0 and amplitude, and carries prosody).
- Smiling spreads the lips, which shortens the vocal tract and raises the
  formants; lowered mouth corners lower them (Tartter 1980, Perception &
  Psychophysics 27; Tartter & Braun 1994, JASA 96; Drahota et al. 2008, Speech
  Communication 50), so valence that moves the mouth reaches the voice.

Every clip also has a neutral reference frame: the same speaker and session
(background, lighting, pose bias), with no head motion, the mouth at rest and
every expression control neutral. `expression_controls` gives a clip's and its
reference's expression controls without rendering sound or pixels.

Splits: `train` and `validation` hold different clips of the train speakers;
`test` holds only unseen speakers. Each speaker has several sessions (tracks),
each with its own background, lighting, pose bias and room noise.
"""

import dataclasses

import numpy as np
from scipy import ndimage

from avjax.data.synth import face as face_lib
from avjax.data.synth import lexicon
from avjax.data.synth import speakers
from avjax.data.synth import voice as voice_lib

EMOTIONS = ('anger', 'disgust', 'fear', 'happy', 'neutral', 'sad')
INTENSITIES = ('low', 'medium', 'high')
VOCABULARY = lexicon.VOCABULARY
NUM_VISEMES = lexicon.NUM_VISEMES
SPLITS = ('train', 'validation', 'test')

_INTENSITY_SCALE = np.array([0.45, 0.7, 1.0])
# Per emotion at full intensity: arousal, valence, F0 shift (st), F0 range x,
# tempo x, gain (dB), breathiness +, jitter x, brow raise, brow tilt,
# eye opening +, smile, smile asymmetry.
_PROFILE = np.array([
    # ar    va    f0   rng  tempo  dB   brth jit  brow  tilt  eye   smile asym
    [0.75, -0.60, 2.0, 1.5, 1.10, 6.0, -0.3, 1.3, -0.6, -1.0, -0.15, -0.35, 0.0],
    [0.30, -0.65, -1.0, 0.9, 0.85, 1.0, 0.1, 1.2, -0.4, -0.5, -0.35, -0.45, 0.6],
    [0.70, -0.50, 4.0, 1.2, 1.15, 2.0, 0.4, 2.0, 0.9, 0.7, 0.45, -0.25, 0.0],
    [0.55, 0.75, 3.0, 1.6, 1.05, 4.0, 0.0, 1.0, 0.3, 0.0, -0.10, 1.0, 0.0],
    [0.00, 0.00, 0.0, 1.0, 1.00, 0.0, 0.0, 1.0, 0.0, 0.0, 0.00, 0.0, 0.0],
    [-0.55, -0.60, -2.0, 0.5, 0.80, -5.0, 0.5, 1.3, 0.2, 0.9, -0.30, -0.7, 0.0],
])
# The face controls that show expression (`expression_controls`).
EXPRESSION = ('brow_raise', 'brow_tilt', 'eye_open', 'smile_l', 'smile_r')
# Brow raise per semitone of pitch accent: a full raise (AU1+2, about 1.3 px at
# 64x64) on an accent of 2.5 st, the median speaker's full accent.
_BROW_PER_ST = 0.4
_EYE_PER_BROW = 0.15        # eye opening per unit of accent brow raise
_ACCENT_DB_PER_ST = 1.0     # an accent's loudness per semitone of its F0 rise
_HEAD_RISE_PER_ST = 0.006   # head rise (frame units, ~0.2 px at 64x64) per semitone
_HEAD_AROUSAL = 0.6         # head-motion amplitude x exp(this * arousal)
_FORMANTS_PER_SMILE = 0.04  # formant change per unit of smile (lip spreading)


@dataclasses.dataclass(frozen=True)
class HeadsConfig:
  """Sizes of the talking-heads world."""
  sample_rate: int = 16000
  fps: int = 25
  frame_size: int = 64
  duration_s: float = 2.0
  num_train_speakers: int = 48
  num_test_speakers: int = 16
  sessions_per_speaker: int = 3
  train_clips_per_session: int = 7
  validation_clips_per_session: int = 1
  test_clips_per_session: int = 8
  max_words: int = 5
  snr_db: tuple[float, float] = (5.0, 30.0)
  num_trials: int = 4000  # Half targets; 2000 non-targets for minDCF at p_target 0.01.

  @property
  def num_frames(self) -> int:
    return int(round(self.duration_s * self.fps))

  @property
  def num_samples(self) -> int:
    return int(round(self.duration_s * self.sample_rate))


PRESETS = {
    'heads': HeadsConfig(),
    'heads_tiny': HeadsConfig(
        frame_size=32, duration_s=1.0, num_train_speakers=4,
        num_test_speakers=2, sessions_per_speaker=2,
        train_clips_per_session=5, validation_clips_per_session=1,
        test_clips_per_session=5, max_words=2, num_trials=40),
}


def _clips_per_session(config: HeadsConfig, split: str) -> int:
  if split not in SPLITS:
    raise ValueError(f'Unknown split {split!r}; expected one of {SPLITS}.')
  return getattr(config, f'{split}_clips_per_session')


def _num_speakers(config: HeadsConfig, split: str) -> int:
  return (config.num_test_speakers if split == 'test'
          else config.num_train_speakers)


def split_sizes(config: HeadsConfig) -> dict[str, int]:
  """Number of clips per split."""
  return {s: _num_speakers(config, s) * config.sessions_per_speaker
             * _clips_per_session(config, s) for s in SPLITS}


def clip_identity(config: HeadsConfig, split: str, index: int):
  """(global speaker id, global track id) of a clip, without rendering it."""
  per_session = _clips_per_session(config, split)
  size = split_sizes(config)[split]
  if not 0 <= index < size:
    raise IndexError(f'index {index} out of range for {split!r} ({size}).')
  session = index // per_session
  speaker = session // config.sessions_per_speaker
  if split == 'test':
    speaker += config.num_train_speakers
  track = speaker * config.sessions_per_speaker + (
      session % config.sessions_per_speaker)
  return speaker, track


def _smooth_noise(rng, n, sigma):
  x = ndimage.gaussian_filter1d(rng.standard_normal(n + 4 * int(sigma) + 4),
                                sigma)[2 * int(sigma) + 2:][:n]
  return x / (x.std() + 1e-9)


def _ramp(x):
  """0 below 0, 1 above 1, smooth (zero slope at both ends) in between."""
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3.0 - 2.0 * x)


def _envelope(rng, t):
  """An expression's course over the times `t` (s), 0 .. 1: near neutral before
  its onset, rising to the apex, held, then perhaps decaying in its offset."""
  before = rng.uniform(0.0, 0.25)               # level before the onset
  onset = rng.uniform(-0.3, 0.35 * t[-1])       # s; < 0: already rising at the start
  rise, hold, fall = rng.uniform(0.2, 0.8), rng.uniform(0.5, 3.0), rng.uniform(0.5, 1.5)
  after = rng.uniform(0.3, 0.8)                 # level the offset decays to
  up = before + (1.0 - before) * _ramp((t - onset) / rise)
  return up * (1.0 - (1.0 - after) * _ramp((t - onset - rise - hold) / fall))


def _affect(rng, prof, level):
  """Arousal / valence trajectories in [-1, 1] of an emotion shown at `level` [T]."""
  n = len(level)
  sigma = max(n / 6.0, 2.0)
  arousal = prof[0] * level + 0.15 * _smooth_noise(rng, n, sigma)
  valence = prof[1] * level + 0.15 * _smooth_noise(rng, n, sigma)
  return np.clip(arousal, -1, 1), np.clip(valence, -1, 1)


def _blinks(rng, t):
  """Eyelid factor in [0, 1] per frame time: 0 during a blink."""
  out = np.ones_like(t)
  start = rng.uniform(-1.0, 1.0)
  while start < t[-1]:
    out = np.minimum(out, 1.0 - np.exp(-0.5 * ((t - start) / 0.045) ** 2) * 1.05)
    start += rng.uniform(1.0, 4.0)
  return np.clip(out, 0.0, 1.0)


def _mouth(utt, config):
  """Coarticulated jaw / width / rounding and the viseme per video frame."""
  sub = 8
  t = (np.arange(config.num_frames * sub) + 0.5) / (config.fps * sub)
  ph, _ = voice_lib.phone_at(utt, t)
  vis = np.array([0] + [lexicon.PHONES[p].viseme
                        for p in lexicon.PHONE_NAMES[1:]], np.int32)[ph]
  posture = ndimage.gaussian_filter1d(
      lexicon.VISEME_POSTURES[vis], 0.035 * config.fps * sub, axis=0)
  posture = posture.reshape(config.num_frames, sub, 3).mean(1)
  return posture, vis.reshape(config.num_frames, sub)[:, sub // 2]


def _frame_index(times, fps, n, ceil):
  f = np.ceil(times * fps) if ceil else np.floor(times * fps)
  return np.clip(f, 0, n).astype(np.int32)


def _noise(rng, n, slope):
  """Room tone: noise with a 1/f^slope power spectrum, unit RMS."""
  spec = np.fft.rfft(rng.standard_normal(n))
  f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
  x = np.fft.irfft(spec * (f / 0.01) ** (-slope / 2.0), n)
  return x / (x.std() + 1e-12)


@dataclasses.dataclass(frozen=True)
class _Plan:
  """Everything about a clip but its sound and pixels."""
  speaker: int
  track: int
  emotion: int
  intensity: int
  arousal: np.ndarray        # [T]
  valence: np.ndarray        # [T]
  utt: lexicon.Utterance
  voice: speakers.Voice
  face: speakers.Face
  session: speakers.Session
  prosody: voice_lib.Prosody
  controls: face_lib.FaceControls   # [T] each
  neutral: face_lib.FaceControls    # [1] each: the reference frame
  viseme: np.ndarray         # [T]
  mouth_open: np.ndarray     # [T]


def _neutral_controls(sess: speakers.Session) -> face_lib.FaceControls:
  """One frame in the session's pose, mouth at rest, a neutral expression."""
  dx, dy, tilt, zoom = sess.pose
  jaw, width, rounding = lexicon.VISEME_POSTURES[0]
  one = lambda x: np.full(1, x, np.float64)
  return face_lib.FaceControls(
      cx=one(dx), cy=one(dy), scale=one(zoom), tilt=one(tilt), jaw=one(jaw),
      lip_width=one(width), rounding=one(rounding), smile_l=one(0.0),
      smile_r=one(0.0), brow_raise=one(0.0), brow_tilt=one(0.0),
      eye_open=one(1.0), gaze_x=one(0.0), gaze_y=one(0.0))


def _plan(config: HeadsConfig, split: str, index: int, seed: int) -> _Plan:
  """Draws a clip's speaker, emotion, words, prosody and face controls."""
  speaker, track = clip_identity(config, split, index)
  rng = speakers.rng_for(seed, 'clip', split, index)
  z = speakers.latent(seed, speaker)
  voice, face = speakers.voice(z), speakers.face(z)
  sess = speakers.session(seed, track)
  n_t, fps = config.num_frames, config.fps

  emotion = int(rng.integers(len(EMOTIONS)))
  intensity = 1 if emotion == EMOTIONS.index('neutral') else int(
      rng.integers(len(INTENSITIES)))
  scale = _INTENSITY_SCALE[intensity]
  prof = _PROFILE[emotion]
  frame_t = (np.arange(n_t) + 0.5) / fps
  level = scale * _envelope(rng, frame_t)   # How strongly the emotion shows.
  arousal, valence = _affect(rng, prof, level)
  ar_dev, va_dev = arousal - prof[0] * level, valence - prof[1] * level

  rate = voice.rate * (1.0 + (prof[4] - 1.0) * scale)
  utt = lexicon.plan_utterance(rng, config.duration_s, rate, config.max_words)
  strength = rng.uniform(0.4, 1.2, len(utt.words))   # Each word's accent prominence.
  accent_st = lambda t, lev: (voice_lib.accents(utt, t, strength) * voice.pitch_range
                              * (1.0 + (prof[3] - 1.0) * lev))

  # Face: mouth from visemes; expression from the emotion's course, arousal,
  # valence and the pitch accents; head motion scaled by arousal.
  posture, viseme = _mouth(utt, config)
  accent = accent_st(frame_t, level)
  beat = _BROW_PER_ST * accent
  energy = np.exp(_HEAD_AROUSAL * arousal)
  head = lambda amp, sigma: amp * energy * _smooth_noise(rng, n_t, sigma * fps)
  smile = prof[11] * level + 0.4 * va_dev
  asym = prof[12] * level
  dx, dy, tilt, zoom = sess.pose
  ctl = face_lib.FaceControls(
      cx=dx + head(0.04, 0.5),
      cy=dy + head(0.025, 0.4) - _HEAD_RISE_PER_ST * accent,
      scale=zoom * (1.0 + head(0.02, 0.6)), tilt=tilt + head(0.05, 0.5),
      jaw=posture[:, 0],
      lip_width=np.clip(posture[:, 1] + 0.2 * np.maximum(smile, 0), 0, 1),
      rounding=posture[:, 2], smile_l=smile + asym, smile_r=smile - asym,
      brow_raise=np.clip(prof[8] * level + 0.3 * ar_dev + beat
                         + 0.1 * _smooth_noise(rng, n_t, 0.3 * fps),
                         *face_lib.BROW_RAISE_RANGE),
      brow_tilt=prof[9] * level,
      eye_open=np.clip(1.0 + prof[10] * level + 0.15 * ar_dev + _EYE_PER_BROW * beat,
                       0.0, face_lib.EYE_OPEN_MAX) * _blinks(rng, frame_t),
      gaze_x=0.4 * _smooth_noise(rng, n_t, 0.8 * fps),
      gaze_y=0.2 * _smooth_noise(rng, n_t, 0.8 * fps))

  # Voice, per control frame: the same emotion's course, accents and smile.
  ctrl_t = voice_lib.control_times(config.sample_rate, config.num_samples)
  at_ctrl = lambda x: np.interp(ctrl_t, frame_t, x)
  level_c, ar_c = at_ctrl(level), at_ctrl(ar_dev)
  accent_c = accent_st(ctrl_t, level_c)
  prosody = voice_lib.Prosody(
      f0_st=voice_lib.intonation(ctrl_t, prof[2] * level_c + 3.0 * ar_c, accent_c, rng),
      gain_db=prof[5] * level_c + 5.0 * ar_c + _ACCENT_DB_PER_ST * accent_c,
      breath=prof[6] * level_c,
      formant_mult=1.0 + _FORMANTS_PER_SMILE * at_ctrl(smile),
      jitter_mult=float(1.0 + (prof[7] - 1.0) * scale))
  return _Plan(speaker=speaker, track=track, emotion=emotion, intensity=intensity,
               arousal=arousal, valence=valence, utt=utt, voice=voice, face=face,
               session=sess, prosody=prosody, controls=ctl,
               neutral=_neutral_controls(sess), viseme=viseme,
               mouth_open=np.clip(posture[:, 0], 0, 1))


def render_clip(config: HeadsConfig, split: str, index: int,
                seed: int = 0) -> dict:
  """Renders one clip; deterministic given the arguments."""
  plan = _plan(config, split, index, seed)
  rng = speakers.rng_for(seed, 'clip', split, index, 'sound')
  n_t, n_s, size = config.num_frames, config.num_samples, config.frame_size
  speech = voice_lib.synthesize(plan.utt, plan.voice, plan.prosody, config.sample_rate,
                                n_s, rng) * 10.0 ** (plan.session.mic_gain_db / 20.0)
  snr_db = float(rng.uniform(*config.snr_db))
  power = np.mean(speech ** 2)
  audio = speech + _noise(rng, n_s, plan.session.noise_slope) * np.sqrt(
      power / 10.0 ** (snr_db / 10.0))
  audio = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
  face, sess, utt = plan.face, plan.session, plan.utt
  return dict(
      audio=audio, video=face_lib.render(face, sess, plan.controls, size),
      neutral_frame=face_lib.render(face, sess, plan.neutral, size)[0],
      speaker=np.int32(plan.speaker), track=np.int32(plan.track),
      emotion=np.int32(plan.emotion), intensity=np.int32(plan.intensity),
      arousal=plan.arousal.astype(np.float32), valence=plan.valence.astype(np.float32),
      words=utt.words.astype(np.int32),
      word_start=_frame_index(utt.word_times[:, 0], config.fps, n_t, False),
      word_end=_frame_index(utt.word_times[:, 1], config.fps, n_t, True),
      viseme=plan.viseme.astype(np.int32),
      mouth_open=plan.mouth_open.astype(np.float32),
      mouth_box=face_lib.mouth_box(plan.controls, face, size),
      neutral_mouth_box=face_lib.mouth_box(plan.neutral, face, size)[0],
      eyes_box=face_lib.eyes_box(plan.controls, face, size),
      snr_db=np.float32(snr_db))


def _expression(ctl: face_lib.FaceControls) -> np.ndarray:
  return np.stack([getattr(ctl, k) for k in EXPRESSION], -1).astype(np.float32)


def expression_controls(config: HeadsConfig, split: str, index: int,
                        seed: int = 0) -> dict:
  """A clip's ground-truth expression, without rendering its sound or pixels.

  `expression` float32 [T, len(EXPRESSION)]: the clip's controls per frame
  (blinks included), as `render_clip` renders them; `neutral_expression`
  [len(EXPRESSION)]: those of its `neutral_frame`; and its `emotion` and
  `speaker` (int32).
  """
  plan = _plan(config, split, index, seed)
  return dict(expression=_expression(plan.controls),
              neutral_expression=_expression(plan.neutral)[0],
              emotion=np.int32(plan.emotion), speaker=np.int32(plan.speaker))


def trials(config: HeadsConfig, seed: int = 0) -> list[tuple[int, int, int]]:
  """Balanced (same=1 / different=0, test index a, test index b) pairs, a < b, drawn
  without replacement: no pair twice, none of a clip with itself. Targets and
  non-targets alternate (ceil(num_trials / 2) targets); ValueError if the test split
  has fewer distinct pairs of either kind than that asks for."""
  rng = speakers.rng_for(seed, 'trials')
  n = split_sizes(config)['test']
  spk = np.array([clip_identity(config, 'test', i)[0] for i in range(n)])
  a, b = np.triu_indices(n, 1)
  counts = {1: (config.num_trials + 1) // 2, 0: config.num_trials // 2}
  drawn = {}
  for label, count in counts.items():
    pool = np.flatnonzero((spk[a] == spk[b]) == bool(label))
    if count > len(pool):
      raise ValueError(
          f'avsynth heads trials: config.num_trials={config.num_trials} asks for {count} '
          f'{"target" if label else "non-target"} pairs, but the test split has only '
          f'{len(pool)} distinct ones')
    drawn[label] = rng.choice(pool, count, replace=False)
  out = []
  for k in range(config.num_trials):
    label = int(k % 2 == 0)
    pair = drawn[label][k // 2]
    out.append((label, int(a[pair]), int(b[pair])))
  return out
