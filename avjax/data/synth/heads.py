"""avsynth talking heads: a speaker says a few words, with an emotion.

Each clip is deterministic given (config, split, index, seed). Speakers are
latent identities (`speakers.py`) driving a source-filter voice (`voice.py`)
and a cartoon face (`face.py`); the phonemes of the words (`lexicon.py`) drive
both the formants and the mouth (visemes), and an emotion with intensity and
continuous arousal/valence drives prosody and facial expression.

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


def _affect(rng, emotion, scale, t):
  """Arousal / valence trajectories [len(t)] in [-1, 1]."""
  n, sigma = len(t), max(len(t) / 6.0, 2.0)
  mean = _PROFILE[emotion, :2] * scale
  arousal = mean[0] + 0.15 * _smooth_noise(rng, n, sigma)
  valence = mean[1] + 0.15 * _smooth_noise(rng, n, sigma)
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


def render_clip(config: HeadsConfig, split: str, index: int,
                seed: int = 0) -> dict:
  """Renders one clip; deterministic given the arguments."""
  speaker, track = clip_identity(config, split, index)
  rng = speakers.rng_for(seed, 'clip', split, index)
  z = speakers.latent(seed, speaker)
  voice, face = speakers.voice(z), speakers.face(z)
  sess = speakers.session(seed, track)
  n_t, n_s = config.num_frames, config.num_samples

  emotion = int(rng.integers(len(EMOTIONS)))
  intensity = 1 if emotion == EMOTIONS.index('neutral') else int(
      rng.integers(len(INTENSITIES)))
  scale = _INTENSITY_SCALE[intensity]
  prof = _PROFILE[emotion]
  frame_t = (np.arange(n_t) + 0.5) / config.fps
  arousal, valence = _affect(rng, emotion, scale, frame_t)

  # Speech: emotion moves prosody per control frame through arousal.
  rate = voice.rate * (1.0 + (prof[4] - 1.0) * scale)
  utt = lexicon.plan_utterance(rng, config.duration_s, rate, config.max_words)
  hop = voice_lib.hop_length(config.sample_rate)
  ctrl_t = np.arange(n_s // hop + 1) * hop / config.sample_rate
  ar_c = np.interp(ctrl_t, frame_t, arousal)
  drift = ar_c - prof[0] * scale
  prosody = voice_lib.Prosody(
      f0_shift_st=prof[2] * scale + 3.0 * drift,
      gain_db=prof[5] * scale + 5.0 * drift,
      breath=np.full_like(ctrl_t, prof[6] * scale),
      range_mult=float(1.0 + (prof[3] - 1.0) * scale),
      jitter_mult=float(1.0 + (prof[7] - 1.0) * scale))
  speech = voice_lib.synthesize(utt, voice, prosody, config.sample_rate, n_s,
                                rng) * 10.0 ** (sess.mic_gain_db / 20.0)
  snr_db = float(rng.uniform(*config.snr_db))
  power = np.mean(speech ** 2)
  audio = speech + _noise(rng, n_s, sess.noise_slope) * np.sqrt(
      power / 10.0 ** (snr_db / 10.0))
  audio = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)

  # Face: mouth from visemes, expression from emotion and valence/arousal.
  posture, viseme = _mouth(utt, config)
  dv = valence - prof[1] * scale
  motion = lambda amp, sigma: amp * _smooth_noise(rng, n_t, sigma * config.fps)
  smile = prof[11] * scale + 0.4 * dv
  dx, dy, tilt, zoom = sess.pose
  ctl = face_lib.FaceControls(
      cx=dx + motion(0.04, 0.5), cy=dy + motion(0.025, 0.4),
      scale=zoom * (1.0 + motion(0.02, 0.6)), tilt=tilt + motion(0.05, 0.5),
      jaw=posture[:, 0],
      lip_width=np.clip(posture[:, 1] + 0.2 * np.maximum(smile, 0), 0, 1),
      rounding=posture[:, 2],
      smile_l=smile + prof[12] * scale, smile_r=smile - prof[12] * scale,
      brow_raise=prof[8] * scale + 0.3 * (arousal - prof[0] * scale)
      + motion(0.1, 0.3),
      brow_tilt=np.full(n_t, prof[9] * scale),
      eye_open=(1.0 + prof[10] * scale + 0.15 * (arousal - prof[0] * scale))
      * _blinks(rng, frame_t),
      gaze_x=motion(0.4, 0.8), gaze_y=motion(0.2, 0.8))
  video = face_lib.render(face, sess, ctl, config.frame_size)

  return dict(
      audio=audio, video=video,
      speaker=np.int32(speaker), track=np.int32(track),
      emotion=np.int32(emotion), intensity=np.int32(intensity),
      arousal=arousal.astype(np.float32), valence=valence.astype(np.float32),
      words=utt.words.astype(np.int32),
      word_start=_frame_index(utt.word_times[:, 0], config.fps, n_t, False),
      word_end=_frame_index(utt.word_times[:, 1], config.fps, n_t, True),
      viseme=viseme.astype(np.int32),
      mouth_open=np.clip(posture[:, 0], 0, 1).astype(np.float32),
      mouth_box=face_lib.mouth_box(ctl, face, config.frame_size),
      snr_db=np.float32(snr_db))


def trials(config: HeadsConfig, seed: int = 0) -> list[tuple[int, int, int]]:
  """Balanced (same=1 / different=0, test index a, test index b) pairs."""
  rng = speakers.rng_for(seed, 'trials')
  n = split_sizes(config)['test']
  spk = np.array([clip_identity(config, 'test', i)[0] for i in range(n)])
  out = []
  for k in range(config.num_trials):
    a = int(rng.integers(n))
    same = k % 2 == 0
    pool = np.flatnonzero((spk == spk[a]) == same)
    pool = pool[pool != a]
    out.append((int(same), a, int(rng.choice(pool))))
  return out
