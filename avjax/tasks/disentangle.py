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
  clip's own face. Not symmetric (METHODS.md states one direction). Other
  clips of the same track in the batch are not negatives (`mask_same_track`:
  dropped from the softmax), since avsynth batches often hold two clips of a
  track; the track is the unit the method assumes is one identity, known
  without labels, so no speaker label is used.
- **disentanglement** (confusion, after Alvi et al. 2018, "Turning a Blind
  Eye"; the paper's loss, absent from the public trainer): auxiliary linear
  classifiers (`twostream.FactorClassifiers`) predict content from identity
  embeddings -- the viseme at each step (avsynth's per-frame `viseme`, from
  audio and from face identity embeddings) -- and the track from content
  embeddings -- the clip's global track id at each step (avsynth's `track`,
  `num_tracks` classes), from audio and video content embeddings. Both
  directions use every step, not time averages. Targets outside the label
  space (a missing viseme, a test-split track) are left out of the classifier
  term. One loss for the generic trainer (one loss, one optimizer):
    classifier term = cross-entropy of the classifiers on
        stop_gradient(embeddings): trains the classifiers only;
    confusion term  = KL(uniform || softmax) of the classifiers applied with
        stop_gradient(classifier params) to the live embeddings: trains the
        trunks and heads only, towards a uniform prediction. KL is the
        cross-entropy to the uniform distribution minus log(classes): the same
        gradients, 0 when fully confused.
  Each term is the mean over its two modalities; classifier and confusion
  terms sum the two directions. The classifier term is trained in every
  variant (its weight only sets the classifiers' pace), so its accuracies
  measure how much content the identity embeddings carry and vice versa.

Metrics: the weighted total `loss`; `content_loss`, `identity_loss`,
`classifier_loss`, `confusion_loss`; `content_accuracy` (the aligned audio
step ranks first; chance 1 / T) and `identity_accuracy` (the own face ranks
first; chance about 1 / B); the classifiers' `viseme_from_identity_*` and
`track_from_content_*` losses and accuracies.
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
  that leave room for a face window beside it, and a face window of `identity_frames` frames uniform among the starts that do not
  overlap it. Raises ValueError when the clip is shorter than both windows."""
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


def same_track_negatives(track):
  """[B, B] bool: column j is another clip (j != i) of row i's track; ids < 0 are unknown."""
  same = (track[:, None] == track[None, :]) & (track[:, None] >= 0)
  return same & ~jnp.eye(len(track), dtype=bool)


def identity_metrics(logits, track=None):
  """Cross-track matching: logits [B, B] (audio i against face j), target j = i; with
  `track`, other clips of a row's track leave its softmax. (loss, accuracy)."""
  excluded = None if track is None else same_track_negatives(track)
  return softmax_matching(logits, jnp.arange(len(logits)), excluded)


def class_metrics(logits, labels, num_classes):
  """(mean cross-entropy, accuracy) over the positions whose label is in [0, num_classes)."""
  logits = logits.astype(jnp.float32)
  valid = (labels >= 0) & (labels < num_classes)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, labels, 0))
  count = jnp.maximum(valid.sum(), 1)
  return (jnp.where(valid, loss, 0.0).sum() / count,
          jnp.where(valid, logits.argmax(-1) == labels, False).sum() / count)


def confusion(logits):
  """Mean KL(uniform || softmax(logits)) over positions: cross-entropy to the uniform
  distribution minus log(classes); 0 when the prediction is uniform."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))
  return (-log_probs.mean(-1) - np.log(logits.shape[-1])).mean()


def num_tracks_of(config):
  """`disentangle.num_tracks`, or where 0: the train tracks of the avsynth preset
  `data.config` (the validation split shares them; test tracks fall outside), or
  a real dataset's tracks (`pipeline.class_names`)."""
  if config.disentangle.num_tracks:
    return config.disentangle.num_tracks
  if config.data.name != 'avsynth':
    return len(pipeline.class_names(config.data, 'track'))
  preset = heads.PRESETS.get(config.data.config)
  if preset is None:
    raise ValueError(f'set disentangle.num_tracks for data.config={config.data.config!r} '
                     f'(0 reads it from an avsynth heads preset: {sorted(heads.PRESETS)})')
  return preset.num_train_speakers * preset.sessions_per_speaker


class Disentangle:
  """The disentangle task; see `avjax.tasks` for the contract."""

  def __init__(self, config):
    self.config = config.disentangle
    dtype = jnp.dtype(config.dtype)
    model = config.model
    heads_kwargs = dict(embedding=model.embedding, head_hidden=model.head_hidden, dtype=dtype,
                        remat=config.get('remat', False))
    self.audio = twostream.AudioEncoder(**model.audio.to_dict(), **heads_kwargs)
    self.face = twostream.FaceEncoder(**model.face.to_dict(), **heads_kwargs)
    self.embedding = model.embedding
    self.similarity = twostream.ScaledCosine()
    self.num_visemes = heads.NUM_VISEMES
    self.num_tracks = num_tracks_of(config)
    self.classifiers = twostream.FactorClassifiers(self.num_visemes, self.num_tracks, dtype)

  def init(self, rng, batch):
    batch = self.expand(batch)
    keys = jax.random.split(rng, 5)
    vector = jnp.zeros((1, 1, self.embedding), jnp.float32)  # One step of one clip.
    return {
        'speaker_encoder': self.audio.init({'params': keys[0]}, batch['mel'])['params'],
        'face_encoder': self.face.init({'params': keys[1]}, batch['video'])['params'],
        'content_similarity': self.similarity.init(keys[2], vector[0], vector[0])['params'],
        'identity_similarity': self.similarity.init(keys[3], vector[0], vector[0])['params'],
        'classifiers': self.classifiers.init(keys[4], vector, vector, vector, vector)['params'],
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

  def embed(self, params, batch):
    """Per-step embeddings, float32, of an `expand`ed batch: audio_{content,identity}
    [B, T, D] of `mel`, video_content [B, T, D] of `video`, face_identity [B, K, D] of
    `face`."""
    audio_identity, audio = self.audio.apply({'params': params['speaker_encoder']}, batch['mel'])
    _, video = self.face.apply({'params': params['face_encoder']}, batch['video'])
    face_identity, _ = self.face.apply({'params': params['face_encoder']}, batch['face'])
    return {'audio_content': audio['content'], 'audio_identity': audio_identity,
            'video_content': video['content'], 'face_identity': face_identity}

  def logits(self, params, embeddings):
    """(content logits [B, T, T]: video step against audio step; identity logits [B, B]:
    time-averaged audio identity against the centre face identity step)."""
    e = embeddings
    content = self.similarity.apply({'params': params['content_similarity']},
                                    e['video_content'], e['audio_content'])
    face = e['face_identity'][:, e['face_identity'].shape[1] // 2]
    identity = self.similarity.apply({'params': params['identity_similarity']},
                                     e['audio_identity'].mean(axis=1), face)
    return content, identity

  def _classify(self, classifier_params, embeddings):
    e = embeddings
    return self.classifiers.apply({'params': classifier_params}, e['audio_identity'],
                                  e['face_identity'], e['audio_content'], e['video_content'])

  def factor_terms(self, params, embeddings, batch):
    """(classifier term, confusion term, metrics); see the module docstring."""
    track = jnp.broadcast_to(batch['track'][:, None], embeddings['audio_content'].shape[:2])
    targets = {'audio_identity': (batch['viseme'], self.num_visemes),
               'face_identity': (batch['face_viseme'], self.num_visemes),
               'audio_content': (track, self.num_tracks),
               'video_content': (track, self.num_tracks)}
    fixed = self._classify(params['classifiers'], jax.lax.stop_gradient(embeddings))
    live = self._classify(jax.lax.stop_gradient(params['classifiers']), embeddings)
    fitted = {k: class_metrics(fixed[k], *targets[k]) for k in targets}
    mean = lambda a, b, i: (fitted[a][i] + fitted[b][i]) / 2
    metrics = {
        'viseme_from_identity_loss': mean('audio_identity', 'face_identity', 0),
        'viseme_from_identity_accuracy': mean('audio_identity', 'face_identity', 1),
        'track_from_content_loss': mean('audio_content', 'video_content', 0),
        'track_from_content_accuracy': mean('audio_content', 'video_content', 1),
    }
    classifier = metrics['viseme_from_identity_loss'] + metrics['track_from_content_loss']
    confused = (confusion(live['audio_identity']) + confusion(live['face_identity'])) / 2 + (
        confusion(live['audio_content']) + confusion(live['video_content'])) / 2
    return classifier, confused, metrics

  def _metrics(self, params, batch):
    cfg = self.config
    batch = self.expand(batch)
    embeddings = self.embed(params, batch)
    content_logits, identity_logits = self.logits(params, embeddings)
    content_loss, content_accuracy = content_metrics(content_logits)
    identity_loss, identity_accuracy = identity_metrics(
        identity_logits, batch['track'] if cfg.mask_same_track else None)
    classifier, confused, metrics = self.factor_terms(params, embeddings, batch)
    loss = (cfg.content_weight * content_loss + cfg.identity_weight * identity_loss
            + cfg.classifier_weight * classifier + cfg.confusion_weight * confused)
    return loss, dict(metrics, loss=loss, content_loss=content_loss,
                      content_accuracy=content_accuracy, identity_loss=identity_loss,
                      identity_accuracy=identity_accuracy, classifier_loss=classifier,
                      confusion_loss=confused)

  def loss(self, params, batch, rng):
    del rng  # Deterministic: the windows were drawn in preprocess.
    return self._metrics(params, batch)

  def evaluate(self, params, batch):
    return self._metrics(params, batch)[1]

  def visualize(self, params, batch):
    del params, batch
    return None

  def encoders(self):
    """`speaker_encoder`: the audio stream on `mel` (`log_mel_features` frames); its
    output is the per-step identity embedding (time-average it to verify), aux['content']
    the content embedding. `face_encoder`: the face stream on frames, the same outputs."""
    return {'speaker_encoder': (self.audio, 'mel'), 'face_encoder': (self.face, 'video')}
