"""action: which kind of object makes the sound? The sync network fine-tuned on avsynth scenes.

Each example is a window of `window_frames` video frames at a uniformly drawn
start and the audio under them (aligned, one track), with the clip's `action`
label (an index into `avjax.data.synth.scenes.ACTIONS`: the sounding object's
type). The video is shown as the sync task shows it (`sync.shown_frames`: every
`frame_stride`-th frame, averaged down by `frame_downsample`). `preprocess`
returns them compact (uint8 frames, int16 audio) and `expand` makes the
network's float inputs on the device, as sync's. Training flips the video
left-right at random if `flip`, drawn in `loss` (`sync.random_flip`); `predict`
and `evaluate` never do.

Model: Owens & Efros's early-fusion `SyncNet` (`config.model.sync`); its maps
`head_inputs` (aux names), each averaged over time and space and concatenated,
go through one linear layer to `num_classes` logits. ('conv5',) is Owens's
action-recognition fine-tuning of the fused network; ('conv5', 'audio') also
reads the audio stream's output, which a network whose fusion passes the audio
only in a time-centred product (`fusion_correlate`) needs: the product carries
how the sound changes with the motion, not what the sound is. Loss: softmax
cross-entropy; metrics loss and accuracy.

`init_sync`, a `python -m avjax.export` directory of a sync run, starts the
sync network from its exported `sync_net` (as `separation.init_sync`); ''
trains it from scratch. The head always starts random, and the whole network
is fine-tuned at one learning rate.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from avjax.data import ops
from avjax.data import pipeline
from avjax.models import fusion
from avjax.tasks import classification
from avjax.tasks import sync


def pooled(aux, maps):
  """The sync network's `maps` (aux names: [B, ..., C]) -> their means over all but the
  first and last axes, concatenated, [B, sum of C]."""
  return jnp.concatenate([aux[m].mean(axis=tuple(range(1, aux[m].ndim - 1))) for m in maps],
                         axis=-1)


class Action:
  """The action task; see `avjax.tasks` for the contract.

  Beyond it, `predict(params, batch) -> logits [B, num_classes]` (jit-able)
  for evaluation suites.
  """

  features = ('video', 'audio', 'action')  # The example features `preprocess` reads.

  def __init__(self, config):
    self.config = config.action
    dtype = jnp.dtype(config.dtype)
    self.net = fusion.SyncNet(**config.model.sync.to_dict(), dtype=dtype,
                              remat=config.get('remat', False))
    self.head = nn.Dense(self.config.num_classes
                         or len(pipeline.class_names(config.data, 'action')), dtype=dtype)
    # Read once, on the host: `init` runs traced (under jit and eval_shape).
    self.pretrained_sync = (sync.load_sync_params(self.config.init_sync)
                            if self.config.init_sync else None)

  def preprocess(self, example, rng):
    video, audio = example['video'], example['audio']
    frames = self.config.window_frames
    room = min(len(video), len(audio) // ops.SAMPLES_PER_FRAME) - frames
    start = int(rng.integers(0, max(room, 0) + 1))
    samples, clip = ops.time_crop(audio, video, start, frames)  # Raises if the clip is short.
    return {'video': sync.shown_frames(clip, self.config.frame_stride,
                                       self.config.frame_downsample),
            'audio': np.asarray(samples, np.int16),
            'label': np.int32(example['action'])}

  def expand(self, batch):
    """A batch of `preprocess` -> {'video' float32 in [-1, 1]; 'audio' float32;
    'label'}; jnp, jit-able."""
    video, audio = sync.expand_clip(batch)
    return {'video': video, 'audio': audio, 'label': batch['label']}

  def _init_sync(self, rng, video, audio):
    """(random sync_net params, the pooled features they give)."""
    (_, aux), variables = self.net.init_with_output({'params': rng}, video, audio)
    return variables['params'], pooled(aux, self.config.head_inputs)

  def init(self, rng, batch):
    batch = self.expand(batch)
    sync_rng, head_rng = jax.random.split(rng)
    args = (sync_rng, batch['video'], batch['audio'])
    shapes, features = jax.eval_shape(self._init_sync, *args)
    if self.pretrained_sync is None:
      sync_params = self._init_sync(*args)[0]
    else:  # Compiles no random sync_net.
      sync_params = sync.pretrained_like(self.pretrained_sync, shapes, self.config.init_sync)
    head = self.head.init({'params': head_rng}, jnp.zeros(features.shape, features.dtype))
    return {'sync_net': sync_params, 'head': head['params']}

  def predict(self, params, batch, rng=None):
    """Logits [B, num_classes], float32, of a preprocessed batch; jit-able. With `rng`
    (training), the video flipped at random if `flip`."""
    batch = self.expand(batch)
    video = batch['video']
    if rng is not None and self.config.flip:
      video = sync.random_flip(rng, video)
    _, aux = self.net.apply({'params': params['sync_net']}, video, batch['audio'])
    logits = self.head.apply({'params': params['head']},
                             pooled(aux, self.config.head_inputs))
    return logits.astype(jnp.float32)

  def loss(self, params, batch, rng):
    """Training: the video flipped at random (`flip`) with `rng`; None: not augmented."""
    return classification.class_metrics(self.predict(params, batch, rng), batch['label'])

  def evaluate(self, params, batch):
    return classification.class_metrics(self.predict(params, batch), batch['label'])[1]

  def visualize(self, params, batch):
    del params, batch
    return None

  def encoders(self):
    return {'sync_net': (self.net, ('video', 'audio'))}
