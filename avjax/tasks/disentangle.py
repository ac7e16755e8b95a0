"""disentangle: speaker and content embeddings from faces and voices (Nagrani et al. 2020).

Nagrani, Chung, Albanie & Zisserman, "Disentangled speech embeddings using
cross-modal self-supervision" (ICASSP 2020, arXiv 2002.08742), with the
losses of the group's public trainer (joonson/syncnet_trainer,
`SyncNetDist.py`); see `avjax.models.twostream` for the network and
shared/METHODS.md for what the sources state.

Each example is one talking-head clip, seen as:
- a window of `window_frames` video frames at a uniformly drawn start
  (`video`, each frame averaged down by `frame_downsample`, in [-1, 1]);
- the log-mel frames under it (`mel` [4 window_frames, 40]): 40 bands, 25 ms
  window, 10 ms hop, 512-point FFT, computed over the whole utterance and
  instance-normalised there (each band to zero mean and unit variance over the
  utterance's time, as the trainer's InstanceNorm1d; `log_mel_features`),
  then cropped; mel frame k is centred on sample 160 k, so video frame t goes
  with mel frames [4 t, 4 t + 4);
- a second, short face window of `identity_frames` frames (`face`) at another
  time of the same clip, never overlapping the first: the face at another
  time, with other content, for the identity loss (the paper's hypothesis:
  within a face track identity is shared and content is not; the public
  trainer reads it from the same window);
- the clip's `speaker` and `track` ids and the per-frame `viseme` of both
  windows (-1 where the data has none).

Batches travel compact (`avjax.tasks.expand`): `preprocess` gives both windows'
frames as uint8 (averaged down on the host, rounded), and `expand` makes them
float on the device; the log-mel, normalised over the whole utterance, is
float32 from the host.

Embeddings: each head ends in BatchNorm over clips and steps
(`twostream.RunningNorm`), so identity and content embeddings are centred and
spread from initialisation on: the mean cosine of different clips' identity
embeddings at initialisation is 0.09 (voice) and 0.15 (face) on the default
preset, where per-example norms alone gave 0.93 and 0.98, and the identity
gradient vanished in the content loss's wake. `loss` normalises by batch
statistics (the `face` window by those of `video`, `embed`) and returns the
new running averages as `metrics['statistics']`, which the trainer sets
(`avjax.train.train_step`); `evaluate`, the exports and every scoring read
the running averages, so they give the same embeddings. The cosine logits
start at `twostream.initial_scale` (2.5 for the default's 64 dims), so the
first logits spread as the public trainer's do and the first losses sit at chance.

Losses (weights in `config.disentangle`):
- **content** (multi-way matching, Chung et al. 2019, "Perfect match"):
  within each clip, every video step's content embedding against every audio
  step's, `w_c cos + b_c`; softmax cross-entropy over the audio steps with the
  aligned one (the same step) as target. Logits [B, T, T], target t for row t.
- **identity**: each clip's time-averaged audio identity embedding against
  the face identity embedding at the centre step of its other-time window
  (the step whose 5-frame context is all inside the window; the window's start
  is random, so this is the trainer's "one random time step"), across the
  batch: logits [B, B] = w_i cos + b_i, softmax over the faces, target the
  clip's own face. Not symmetric (METHODS.md states one direction).
  False negatives leave the softmax: other clips of the clip's track
  (`mask_same_track`: the unit the method assumes is one identity, known
  without labels) and, with `mask_same_speaker`, of its speaker where the
  data names one. The paper's setting has next to none: VoxCeleb2 holds 5,994
  speakers, so a batch of 64 random clips holds about 0.3 same-speaker pairs
  (0.02% of its negatives) and needs no labels; avsynth's 48 train speakers
  put 1.7 other-track same-speaker pairs in a batch of 16 (82% of batches
  have one). Masking them by the `speaker` label reproduces the paper's
  regime on avsynth; it is weak supervision (the label only removes
  negatives, never makes a positive). A world with as many speakers as
  VoxCeleb2 would need no label.
- **disentanglement** (confusion, after Alvi et al. 2018, "Turning a Blind
  Eye"; the paper's loss, absent from the public trainer): two auxiliary
  adversaries (`twostream.MatchingAdversary` or `ClassAdversary`) try to read
  content from identity embeddings and identity from content embeddings;
  the confusion term trains the streams to leave them nothing to read. The
  default targets are ones the paper had on VoxCeleb2, without labels:
    `content_target='sync'`: which audio step goes with a video step (the
        content task), from the identity embeddings of the video window and
        the audio: logits [B, T, T], target t;
    `identity_target='clip'`: which clip's face goes with a voice (the
        identity task), from the time-averaged audio content embedding and the
        face content embedding at the other window's centre step: logits
        [B, B], target the own clip, the identity loss's false negatives left
        out.
  Oracles that read the dataset's labels stay available, named as such:
  `content_target='viseme'` (avsynth's per-frame viseme, from audio and face
  identity embeddings), `identity_target='track'` (the clip's track id,
  `num_tracks` classes; label-free on a dataset whose tracks are known) or
  `'speaker'` (its speaker id), from audio and video content embeddings at
  every step; labels outside the classes (a missing viseme, a test-split
  track) are left out. A target the dataset lacks is a ValueError.
  Terms (one loss for the generic trainer):
    adversary term = cross-entropy of the adversaries on
        stop_gradient(embeddings): trains the adversaries only;
    confusion term = KL(target distribution || adversary's prediction), the
        adversaries' parameters under stop_gradient, on the live embeddings:
        trains the streams only. The target distribution is the label prior,
        so a stream that carries nothing meets it at once: uniform over the
        candidates for matching (each is the target once), the batch's mean
        prediction for a classifier (its estimate of the label prior; uniform
        targets on a skewed label such as the viseme, 38.8% one class, made
        80% of the confusion gradient one offset shared by every clip). Its
        gradient sums to zero over positions: it removes information, never
        pushes every embedding one way.
  The confusion weight ramps in once identity has started to learn: it is
  `confusion_weight` times clip((progress - `confusion_start`) /
  `confusion_ramp`, 0, 1), progress being a running average (over about ten
  steps, kept with the heads' running averages) of the identity loss below
  chance (log of each row's candidates), in nats. (The loss sees no step
  count; progress is what the ramp waits for. A single batch's progress
  scatters by 0.15 nats and opened the ramp at random early on.) A
  classifier's terms are the means over its two modalities; the adversary and
  confusion terms sum the two directions. The adversary term is trained in every variant, so its
  accuracies measure what each stream carries of the other factor.

Metrics: the weighted total `loss`; `content_loss`, `identity_loss`,
`adversary_loss`, `confusion_loss`, `confusion_gate` (the ramp, 0 to 1);
`content_accuracy` (the aligned audio step ranks first; chance 1 / T),
`identity_accuracy` (the own face ranks first; chance about 1 / B) and
`identity_chance` (the identity loss of no information, `chance_loss`),
`identity_progress` (the running average that ramps the confusion in); the
adversaries' `content_from_identity_{loss,accuracy}` and
`identity_from_content_{loss,accuracy}`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from avjax.data import ops
from avjax.data import pipeline
from avjax.data.synth import heads
from avjax.models import twostream
from avjax.tasks import expand

NUM_MELS = 40
MELS_PER_FRAME = 4  # 10 ms hop at 25 fps.
_EXCLUDED = -1e9  # Logit of a softmax entry left out.
# Of the running average of the identity loss below chance that ramps the confusion in:
# batches of 16 scatter it by about 0.15 nats, its average over ten by about 0.03.
PROGRESS_MOMENTUM = 0.9


def instance_normalise(features, eps=1e-5):
  """[T, F] -> each column (band) to zero mean, unit variance over T (InstanceNorm1d)."""
  features = np.asarray(features, np.float32)
  mean, var = features.mean(axis=0), features.var(axis=0)
  return ((features - mean) / np.sqrt(var + eps)).astype(np.float32)


def log_mel_features(audio):
  """An utterance (int16 PCM or float in [-1, 1], 16 kHz) -> the audio trunk's input.

  40-band log-mel (25 ms window, 10 ms hop, 512-point FFT; `ops.log_mel`),
  instance-normalised over the utterance: [ceil(N / 160), 40] float32, 4
  frames per video frame. The `speaker_encoder` export reads these (a batch of
  them, [B, 4 T, 40]); score whole utterances or crops of them.
  """
  audio = np.asarray(audio)
  audio = ops.to_float(audio) if audio.dtype == np.int16 else audio.astype(np.float32)
  return instance_normalise(ops.log_mel(audio, num_mels=NUM_MELS, window_ms=25.0, hop_ms=10.0,
                                        n_fft=512))


def downsample(frames, factor):
  """uint8 frames [T, H, W, 3] averaged down by `factor` (`ops.downsample_frames`)."""
  return ops.downsample_frames(frames, factor) if factor > 1 else frames


def draw_windows(num_frames, window_frames, identity_frames, rng):
  """(start, face_start): a window [start, start + window_frames), uniform over the starts
  that leave room for a face window beside it, and a face window of `identity_frames`
  frames uniform among the starts that do not overlap it. Raises ValueError when the clip
  is shorter than both windows."""
  if num_frames < window_frames + identity_frames:
    raise ValueError(f'a clip of {num_frames} frames cannot hold a window of {window_frames} '
                     f'frames and a separate face window of {identity_frames}')
  starts = np.arange(num_frames - window_frames + 1)  # Those that leave a face window.
  starts = starts[(starts >= identity_frames)
                  | (starts + window_frames + identity_frames <= num_frames)]
  start = int(starts[rng.integers(0, len(starts))])
  others = np.concatenate([np.arange(0, start - identity_frames + 1),
                           np.arange(start + window_frames, num_frames - identity_frames + 1)])
  return start, int(rng.choice(others))


def softmax_matching(logits, targets, excluded=None):
  """(mean cross-entropy, accuracy) of logits [..., N] against int targets [...].

  `excluded` [..., N] (bool) drops entries from the softmax (never the target's).
  """
  logits = logits.astype(jnp.float32)
  if excluded is not None:
    logits = jnp.where(excluded, _EXCLUDED, logits)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
  return loss, (logits.argmax(-1) == targets).mean()


def content_metrics(logits):
  """Multi-way matching within each clip: logits [B, T_video, T_audio] (video step t
  against every audio step), target the aligned audio step t. (loss, accuracy)."""
  targets = jnp.broadcast_to(jnp.arange(logits.shape[1]), logits.shape[:2])
  return softmax_matching(logits, targets)


def same_group_negatives(group):
  """[B, B] bool: column j is another clip (j != i) of row i's group (a track, a
  speaker); ids < 0 are unknown."""
  same = (group[:, None] == group[None, :]) & (group[:, None] >= 0)
  return same & ~jnp.eye(len(group), dtype=bool)


def identity_metrics(logits, excluded=None):
  """Cross-track matching: logits [B, B] (audio i against face j), target j = i; the
  `excluded` [B, B] entries (false negatives) leave each row's softmax. (loss, accuracy)."""
  return softmax_matching(logits, jnp.arange(len(logits)), excluded)


def chance_loss(excluded, size):
  """The matching loss of a prediction with no information: the mean over rows of the
  log of their candidates (`size` less the `excluded` [B, B] ones; None: none)."""
  candidates = size - (0 if excluded is None else excluded.sum(-1))
  return jnp.log(candidates.astype(jnp.float32)).mean()


def class_metrics(logits, labels, num_classes):
  """(mean cross-entropy, accuracy) over the positions whose label is in [0, num_classes)."""
  logits = logits.astype(jnp.float32)
  valid = (labels >= 0) & (labels < num_classes)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, labels, 0))
  count = jnp.maximum(valid.sum(), 1)
  return (jnp.where(valid, loss, 0.0).sum() / count,
          jnp.where(valid, logits.argmax(-1) == labels, False).sum() / count)


def confusion(logits, target, valid=None):
  """Mean KL(target || softmax(logits)) over the positions `valid` [...] (all if None):
  0 when the prediction is the target distribution [..., N] (zeros allowed)."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))
  safe = jnp.where(target > 0, target, 1.0)
  kl = jnp.sum(jnp.where(target > 0, target * (jnp.log(safe) - log_probs), 0.0), -1)
  if valid is None:
    return kl.mean()
  return jnp.where(valid, kl, 0.0).sum() / jnp.maximum(valid.sum(), 1)


def uniform_target(excluded):
  """Uniform probabilities over each row's candidates: excluded [..., N] bool -> [..., N]."""
  allowed = (~excluded).astype(jnp.float32)
  return allowed / allowed.sum(-1, keepdims=True)


def prior_target(logits, valid):
  """The label prior a classifier has learnt: its mean prediction over the positions
  `valid` [...] of logits [..., N], under stop_gradient, broadcast to [..., N]."""
  probs = jax.nn.softmax(jax.lax.stop_gradient(logits).astype(jnp.float32))
  weights = valid[..., None].astype(jnp.float32)
  axes = tuple(range(probs.ndim - 1))
  prior = (probs * weights).sum(axes) / jnp.maximum(weights.sum(axes), 1)
  return jnp.broadcast_to(prior, probs.shape)


def confusion_gate(progress, start, ramp):
  """The confusion weight's ramp, 0 to 1, at `progress` (nats of identity loss below
  chance): clip((progress - start) / ramp, 0, 1); a step at `start` if ramp is 0."""
  if ramp <= 0:
    return (progress >= start).astype(jnp.float32)
  return jnp.clip((progress - start) / ramp, 0.0, 1.0)


def num_classes_of(config, feature):
  """The classes of a clip-level label: `disentangle.num_tracks` for 'track' where set;
  else the train speakers or tracks of the avsynth preset `data.config` (the
  validation split shares them; test ones fall outside), or a real dataset's
  (`pipeline.class_names`)."""
  if feature == 'track' and config.disentangle.num_tracks:
    return config.disentangle.num_tracks
  if config.data.name != 'avsynth':
    return len(pipeline.class_names(config.data, feature))
  preset = heads.PRESETS.get(config.data.config)
  if preset is None:
    raise ValueError(f'set disentangle.num_tracks for data.config={config.data.config!r} '
                     f'(0 reads it from an avsynth heads preset: {sorted(heads.PRESETS)})')
  speakers = preset.num_train_speakers
  return speakers * preset.sessions_per_speaker if feature == 'track' else speakers


CONTENT_TARGETS = ('sync', 'viseme')  # 'viseme' reads the dataset's per-frame labels.
IDENTITY_TARGETS = ('clip', 'track', 'speaker')  # 'track', 'speaker' read the dataset's.


def check_targets(config):
  """ValueError unless `disentangle.content_target` and `identity_target` are known and
  the dataset has the feature each label target reads."""
  cfg = config.disentangle
  targets = {'content_target': (cfg.content_target, CONTENT_TARGETS),
             'identity_target': (cfg.identity_target, IDENTITY_TARGETS)}
  for field, (value, known) in targets.items():
    if value not in known:
      raise ValueError(f'unknown disentangle.{field} {value!r}; known: {list(known)}')
  labels = {f: v for f, (v, _) in targets.items() if v not in ('sync', 'clip')}
  if labels:
    builder = pipeline.unprepared_builder(config.data)
    for field, feature in labels.items():
      if feature not in builder.info.features:
        raise ValueError(f'dataset {builder.info.full_name} has no feature {feature!r} '
                         f'(disentangle.{field}={feature!r} reads it)')


def adversary(num_classes, embedding, dtype):
  """A `ClassAdversary` of `num_classes`, or where 0 a `MatchingAdversary`."""
  if num_classes:
    return twostream.ClassAdversary(num_classes, dtype)
  return twostream.MatchingAdversary(embedding, dtype)


def _centre(steps):
  """The centre step of a window's embeddings [B, K, D] -> [B, D]."""
  return steps[:, steps.shape[1] // 2]


def _class_terms(fixed_logits, live_logits, labels, num_classes):
  """(loss, accuracy, confusion) of a `ClassAdversary`'s two modalities: logits of
  stop_gradient embeddings, logits of live ones under frozen parameters, labels;
  each term the mean of the two, the confusion's target the label prior."""
  terms = []
  for fixed, live, label in zip(fixed_logits, live_logits, labels):
    valid = (label >= 0) & (label < num_classes)
    terms.append((*class_metrics(fixed, label, num_classes),
                  confusion(live, prior_target(live, valid), valid)))
  return tuple((a + b) / 2 for a, b in zip(*terms))


def _encode(module, params, inputs, train, **kwargs):
  """module.apply to inputs: (outputs, {}); with `train`, by batch statistics: (outputs,
  the heads' new running averages)."""
  if not train:
    return module.apply({'params': params}, inputs, **kwargs), {}
  outputs, state = module.apply({'params': params}, inputs, train=True,
                                mutable=[twostream.STATISTICS], **kwargs)
  return outputs, state[twostream.STATISTICS]


def stack_windows(video, face, gap):
  """Frames [B, T, ...] and [B, K, ...] -> (frames [B, T + gap + K, ...], where [B, T + gap
  + K]: True on the first T): the two windows with `gap` zero frames between, so a
  conv over time that pads `gap` zeros sees each as alone."""
  zeros = jnp.zeros(video.shape[:1] + (gap,) + video.shape[2:], video.dtype)
  steps = video.shape[1] + gap + face.shape[1]
  return (jnp.concatenate([video, zeros, face], axis=1),
          jnp.broadcast_to(jnp.arange(steps) < video.shape[1], (len(video), steps)))


class Disentangle:
  """The disentangle task; see `avjax.tasks` for the contract."""

  def __init__(self, config):
    check_targets(config)
    self.config = config.disentangle
    dtype = jnp.dtype(config.dtype)
    model = config.model
    heads_kwargs = dict(embedding=model.embedding, head_hidden=model.head_hidden, dtype=dtype,
                        remat=config.get('remat', False))
    self.audio = twostream.AudioEncoder(**model.audio.to_dict(), **heads_kwargs)
    self.face = twostream.FaceEncoder(**model.face.to_dict(), **heads_kwargs)
    self.embedding = model.embedding
    self.similarity = twostream.ScaledCosine(twostream.initial_scale(model.embedding))
    # Classes of each adversary's label; 0: a matching one ('sync', 'clip').
    self.num_content = heads.NUM_VISEMES if self.config.content_target == 'viseme' else 0
    target = self.config.identity_target
    self.num_identity = num_classes_of(config, target) if target != 'clip' else 0
    self.content_adversary = adversary(self.num_content, model.embedding, dtype)
    self.identity_adversary = adversary(self.num_identity, model.embedding, dtype)

  def init(self, rng, batch):
    """Parameters; the heads' running averages are the statistics of `batch`."""
    batch = self.expand(batch)
    keys = jax.random.split(rng, 6)
    vector = jnp.zeros((1, 1, self.embedding), jnp.float32)  # One step of one clip.
    return {
        'speaker_encoder': self.audio.init({'params': keys[0]}, batch['mel'])['params'],
        'face_encoder': self.face.init({'params': keys[1]}, batch['video'])['params'],
        'content_similarity': self.similarity.init(keys[2], vector[0], vector[0])['params'],
        'identity_similarity': self.similarity.init(keys[3], vector[0], vector[0])['params'],
        'content_adversary': self.content_adversary.init(keys[4], vector, vector)['params'],
        'identity_adversary': self.identity_adversary.init(keys[5], vector, vector)['params'],
        'identity_progress': jnp.zeros((), jnp.float32),  # A running average (`loss`).
    }

  def preprocess(self, example, rng):
    cfg = self.config
    mel = log_mel_features(example['audio'])
    video = example['video']
    num_frames = min(len(video), len(mel) // MELS_PER_FRAME)
    start, face_start = draw_windows(num_frames, cfg.window_frames, cfg.identity_frames, rng)
    window = slice(start, start + cfg.window_frames)
    face_window = slice(face_start, face_start + cfg.identity_frames)
    viseme = np.asarray(example.get('viseme', np.full(len(video), -1)), np.int32)
    return {
        'mel': mel[MELS_PER_FRAME * start:MELS_PER_FRAME * (start + cfg.window_frames)],
        'video': downsample(video[window], cfg.frame_downsample),
        'face': downsample(video[face_window], cfg.frame_downsample),
        'viseme': viseme[window],
        'face_viseme': viseme[face_window],
        'speaker': np.int32(example.get('speaker', -1)),
        'track': np.int32(example.get('track', -1)),
        'start': np.int32(start),
        'face_start': np.int32(face_start),
    }

  def expand(self, batch):
    """The compact batch of `preprocess` -> its `video` and `face` as float32 in [-1, 1]."""
    return dict(batch, video=expand.to_float_image(batch['video']),
                face=expand.to_float_image(batch['face']))

  def embed(self, params, batch, train=False):
    """Per-step embeddings, float32, of an `expand`ed batch, and with `train` the heads'
    new running averages ({} otherwise): ({audio_content, audio_identity [B, T, D] of
    `mel`; video_content, video_identity [B, T, D] of `video`; face_content,
    face_identity [B, K, D] of `face`}, {'speaker_encoder': ..., 'face_encoder': ...}).

    The face stream sees both windows in one call (`stack_windows`), and `train`
    normalises both by the statistics of `video`'s steps: evaluation and the exported
    `face_encoder` read video windows, a 5-frame window's statistics put 4 of its 5
    steps at an edge."""
    (audio_identity, audio), audio_averages = _encode(
        self.audio, params['speaker_encoder'], batch['mel'], train)
    t, gap = batch['video'].shape[1], self.face.kernel[0] // 2
    frames, video_steps = stack_windows(batch['video'], batch['face'], gap)
    (identity, face), face_averages = _encode(self.face, params['face_encoder'], frames, train,
                                              where=video_steps)
    embeddings = {'audio_content': audio['content'], 'audio_identity': audio_identity,
                  'video_content': face['content'][:, :t], 'video_identity': identity[:, :t],
                  'face_content': face['content'][:, t + gap:],
                  'face_identity': identity[:, t + gap:]}
    averages = {'speaker_encoder': audio_averages, 'face_encoder': face_averages}
    return embeddings, (averages if train else {})

  def logits(self, params, embeddings):
    """(content logits [B, T, T]: video step against audio step; identity logits [B, B]:
    time-averaged audio identity against the centre face identity step)."""
    e = embeddings
    content = self.similarity.apply({'params': params['content_similarity']},
                                    e['video_content'], e['audio_content'])
    identity = self.similarity.apply({'params': params['identity_similarity']},
                                     e['audio_identity'].mean(axis=1), _centre(e['face_identity']))
    return content, identity

  def excluded(self, batch):
    """[B, B] bool: the identity loss's false negatives (`mask_same_track`,
    `mask_same_speaker`), or None."""
    groups = [batch[k] for k, on in (('track', self.config.mask_same_track),
                                     ('speaker', self.config.mask_same_speaker)) if on]
    if not groups:
      return None
    return jnp.any(jnp.stack([same_group_negatives(g) for g in groups]), axis=0)

  def factor_terms(self, params, embeddings, batch, excluded=None):
    """(adversary term, confusion term, metrics); see the module docstring. `excluded`:
    the identity loss's false negatives, left out of the clip adversary too."""
    fixed = jax.lax.stop_gradient(embeddings)
    frozen = jax.lax.stop_gradient(params)
    content = self._content_terms(params['content_adversary'],
                                  frozen['content_adversary'], fixed, embeddings, batch)
    identity = self._identity_terms(params['identity_adversary'],
                                    frozen['identity_adversary'], fixed, embeddings, batch,
                                    excluded)
    metrics = {'content_from_identity_loss': content[0],
               'content_from_identity_accuracy': content[1],
               'identity_from_content_loss': identity[0],
               'identity_from_content_accuracy': identity[1]}
    return content[0] + identity[0], content[2] + identity[2], metrics

  def _content_terms(self, adversary_params, frozen, fixed, live, batch):
    """(loss, accuracy, confusion) of the adversary reading content from identity."""
    if not self.num_content:  # Sync: logits [B, T, T], target the aligned step.
      apply = lambda p, e: self.content_adversary.apply(
          {'params': p}, e['video_identity'], e['audio_identity'])
      loss, accuracy = content_metrics(apply(adversary_params, fixed))
      logits = apply(frozen, live)
      return loss, accuracy, confusion(logits, jnp.full(logits.shape, 1 / logits.shape[-1]))
    apply = lambda p, e: self.content_adversary.apply(
        {'params': p}, e['audio_identity'], e['face_identity'])
    return _class_terms(apply(adversary_params, fixed), apply(frozen, live),
                        (batch['viseme'], batch['face_viseme']), self.num_content)

  def _identity_terms(self, adversary_params, frozen, fixed, live, batch, excluded):
    """(loss, accuracy, confusion) of the adversary reading identity from content."""
    if not self.num_identity:  # Clip: logits [B, B], target the own clip.
      apply = lambda p, e: self.identity_adversary.apply(
          {'params': p}, e['audio_content'].mean(axis=1), _centre(e['face_content']))
      loss, accuracy = identity_metrics(apply(adversary_params, fixed), excluded)
      logits = apply(frozen, live)
      left_out = jnp.zeros(logits.shape, bool) if excluded is None else excluded
      return loss, accuracy, confusion(jnp.where(left_out, _EXCLUDED, logits),
                                       uniform_target(left_out))
    apply = lambda p, e: self.identity_adversary.apply(
        {'params': p}, e['audio_content'], e['video_content'])
    label = jnp.broadcast_to(batch[self.config.identity_target][:, None],
                             live['audio_content'].shape[:2])
    return _class_terms(apply(adversary_params, fixed), apply(frozen, live), (label, label),
                        self.num_identity)

  def _metrics(self, params, batch, train):
    cfg = self.config
    batch = self.expand(batch)
    embeddings, averages = self.embed(params, batch, train)
    content_logits, identity_logits = self.logits(params, embeddings)
    content_loss, content_accuracy = content_metrics(content_logits)
    excluded = self.excluded(batch)
    identity_loss, identity_accuracy = identity_metrics(identity_logits, excluded)
    adversary, confused, metrics = self.factor_terms(params, embeddings, batch, excluded)
    chance = chance_loss(excluded, len(identity_logits))
    progress = jax.lax.stop_gradient(params['identity_progress'])  # Its running average.
    gate = confusion_gate(progress, cfg.confusion_start, cfg.confusion_ramp)
    loss = (cfg.content_weight * content_loss + cfg.identity_weight * identity_loss
            + cfg.adversary_weight * adversary + cfg.confusion_weight * gate * confused)
    metrics = dict(metrics, loss=loss, content_loss=content_loss,
                   content_accuracy=content_accuracy, identity_loss=identity_loss,
                   identity_accuracy=identity_accuracy, identity_chance=chance,
                   identity_progress=progress, adversary_loss=adversary,
                   confusion_loss=confused, confusion_gate=gate)
    if not train:
      return loss, metrics
    batch_progress = jax.lax.stop_gradient(chance - identity_loss)
    averages['identity_progress'] = (PROGRESS_MOMENTUM * progress
                                     + (1 - PROGRESS_MOMENTUM) * batch_progress)
    return loss, dict(metrics, statistics=averages)

  def loss(self, params, batch, rng):
    """By batch statistics; `metrics['statistics']`: the new running averages (the
    heads', `identity_progress`)."""
    del rng  # Deterministic: the windows were drawn in preprocess.
    return self._metrics(params, batch, train=True)

  def evaluate(self, params, batch):
    return self._metrics(params, batch, train=False)[1]

  def visualize(self, params, batch):
    del params, batch
    return None

  def encoders(self):
    """`speaker_encoder`: the audio stream on `mel` (`log_mel_features` frames); its
    output is the per-step identity embedding (time-average it to verify), aux['content']
    the content embedding. `face_encoder`: the face stream on frames, the same outputs."""
    return {'speaker_encoder': (self.audio, 'mel'), 'face_encoder': (self.face, 'video')}
