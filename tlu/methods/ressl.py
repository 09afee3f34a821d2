"""ReSSL (Zheng et al. 2021, "ReSSL: Relational Self-Supervised Learning with Weak
Augmentation"): a student (online backbone and projector) matches the relation of a
momentum teacher to a queue of past teacher features: the softmax of a view's
similarities to the queue, sharper for the teacher (tau_k < tau_q), by cross-entropy
(the KL of Section 3 up to the teacher's constant entropy). No positives, no negatives.

Implemented as solo-learn's `ReSSL` and `ressl_loss_func`: q = l2-normalised projector of
the first view (student), k = the same of the second view by the momentum encoder (EMA of
backbone and projector on BYOL's cosine schedule, `tlu.methods.momentum_target`),
loss = -mean_n sum_j softmax(k_n . Q / tau_k)_j log softmax(q_n . Q / tau_q)_j
(`tlu.unsupervised.contrastive.ressl_loss`); after the loss the keys k replace the oldest
rows of the queue Q (FIFO, `tlu.unsupervised.queue`). The queue is method state
(`extra['queue']`, random unit rows at the start) beside the target (`extra['target']`),
both checkpointed. The projector is Linear-ReLU-Linear (no BatchNorm), as solo-learn's.
Deviation: both views come from the task's one augmentation (the paper's teacher view is
weakly augmented: give per-view pipelines, `tlu.data.augment.MultiView`, for that).
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.momentum_target import MomentumTarget
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.ops import l2_normalize
from tlu.unsupervised import queue as queue_lib
from tlu.unsupervised.contrastive import ressl_loss

TARGET = MomentumTarget(('backbone', 'projector'))


@METHODS.register('ressl')
class ReSSL(Method):
  """config: temperature_q > 0 (0.1), temperature_k > 0 (0.04); momentum in [0, 1] (the
  base of the cosine schedule to 1: solo-learn 0.99); queue_size >= 1 (65536; a batch
  larger than the queue keeps its last rows); projector: MLP widths (no BatchNorm).

  batch: {'image': (N, H, W, C) uint8}. Metrics: teacher_entropy (mean entropy of the
  teacher's relation: log Q when uniform, low when sharp).
  """
  ranges = {'momentum': checks.UNIT, 'projector': checks.WIDTHS,
            'queue_size': checks.POSITIVE_INT, 'temperature_k': checks.POSITIVE,
            'temperature_q': checks.POSITIVE}
  inputs = 'images'

  @classmethod
  def example_config(cls):
    return {'temperature_q': 0.1, 'temperature_k': 0.04, 'momentum': 0.99, 'queue_size': 24,
            'projector': (16, 8)}

  @classmethod
  def heads(cls, config, num_classes):
    del num_classes
    return {'projector': heads_lib.mlp(config.projector)}

  def init_extra(self, variables, rng):
    return {'target': TARGET.init(variables),
            'queue': queue_lib.init_queue(rng, int(self.config.queue_size),
                                          int(self.config.projector[-1]))}

  def loss_fn(self, params, model_state, batch, rng):
    views = jnp.concatenate(self.views(batch, rng)[:2])
    out, batch_stats = self.forward(params, model_state, views, ('projector',))
    keys, target = TARGET.forward(self, model_state['extra']['target'], views, ('projector',))
    q = jnp.split(l2_normalize(out['projector'].astype(jnp.float32)), 2)[0]
    k = jnp.split(l2_normalize(keys['projector'].astype(jnp.float32)), 2)[1]
    state = model_state['extra']['queue']
    loss = ressl_loss(q, k, state['queue'], self.config.temperature_q,
                      self.config.temperature_k)
    log_t = jax.nn.log_softmax(k @ state['queue'].T / self.config.temperature_k, axis=1)
    metrics = {'teacher_entropy': jax.lax.stop_gradient(
        -jnp.mean(jnp.sum(jnp.exp(log_t) * log_t, 1)))}
    extra = {'target': target, 'queue': queue_lib.enqueue(state, k)}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics, outputs=out,
                      extra=extra)

  def after_update(self, state):
    """The momentum encoder follows the updated online encoder (momentum after this step)."""
    return TARGET.after_update(self, state)
