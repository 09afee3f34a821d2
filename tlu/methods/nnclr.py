"""NNCLR (Dwibedi et al. 2021, "With a Little Help from My Friends: Nearest-Neighbor
Contrastive Learning of Visual Representations"): SimCLR whose positive is the nearest
neighbour of a view's projection in a support set of past projections, not the
projection itself.

Implemented as solo-learn's `NNCLR` and `nnclr_loss_func`: z = l2-normalised
projector(f(x)), p = predictor(z); NN(z, Q) = argmax_q z . q over the support queue Q
(Section 3.1: the nearest of unit vectors); the NNCLR loss symmetrised as the
reference code,

  loss = CE(NN(z1) p2^T / tau, diag) / 2 + CE(NN(z2) p1^T / tau, diag) / 2

over the global batch (`tlu.unsupervised.contrastive.nnclr_loss`); after the loss the
first view's z (constants) replace the oldest rows of Q (FIFO, `tlu.unsupervised.queue`).
The queue (Q, d) and its pointer are method state (`extra['queue']`), checkpointed, so a
resumed run looks up the same neighbours; it starts as random unit rows (solo-learn).
Deviations: the projector's last layer has no BatchNorm (solo-learn's has); the
neighbour-label accuracy diagnostic (solo-learn's nn_acc, which reads labels) is not kept.
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.ops import l2_normalize
from tlu.unsupervised import queue as queue_lib
from tlu.unsupervised.contrastive import nnclr_loss


@METHODS.register('nnclr')
class NNCLR(Method):
  """config: temperature > 0 (solo-learn: 0.2); queue_size >= 1 (the support set Q,
  65536 in the paper; a batch larger than Q keeps its last Q rows); projector / predictor:
  MLP widths (BatchNorm between layers), the predictor ending in the projector's width.

  batch: {'image': (N, H, W, C) uint8}. Metrics: contrastive_accuracy (both directions'
  mean), neighbour_similarity (mean cosine of z and its neighbour: 1 when the queue holds
  the batch itself).
  """
  ranges = {'predictor': checks.WIDTHS, 'projector': checks.WIDTHS,
            'queue_size': checks.POSITIVE_INT, 'temperature': checks.POSITIVE}
  inputs = 'images'

  @classmethod
  def example_config(cls):
    return {'temperature': 0.2, 'queue_size': 24, 'projector': (16, 8), 'predictor': (16, 8)}

  @classmethod
  def check(cls, config):
    if config.projector[-1] != config.predictor[-1]:   # the values' ranges: `ranges`
      raise ValueError(f'method.predictor={tuple(config.predictor)} must end in the '
                       f'projector\'s output width {config.projector[-1]}')

  @classmethod
  def heads(cls, config, num_classes):
    del num_classes
    return {'projector': heads_lib.mlp(config.projector, batch_norm=True),
            'predictor': heads_lib.mlp(config.predictor, batch_norm=True,
                                       input_name='projector')}

  def init_extra(self, variables, rng):
    del variables
    return {'queue': queue_lib.init_queue(rng, int(self.config.queue_size),
                                          int(self.config.projector[-1]))}

  def loss_fn(self, params, model_state, batch, rng):
    views = jnp.concatenate(self.views(batch, rng)[:2])
    out, batch_stats = self.forward(params, model_state, views, ('projector', 'predictor'))
    z1, z2 = jnp.split(l2_normalize(out['projector'].astype(jnp.float32)), 2)
    p1, p2 = jnp.split(out['predictor'], 2)
    state = model_state['extra']['queue']
    _, nn1 = queue_lib.nearest_neighbours(z1, state['queue'])
    _, nn2 = queue_lib.nearest_neighbours(z2, state['queue'])
    loss12, m12 = nnclr_loss(nn1, p2, self.config.temperature)
    loss21, m21 = nnclr_loss(nn2, p1, self.config.temperature)
    similarity = jnp.mean(jnp.sum(z1 * nn1, -1) + jnp.sum(z2 * nn2, -1)) / 2
    metrics = {'contrastive_accuracy': (m12['contrastive_accuracy'] +
                                        m21['contrastive_accuracy']) / 2,
               'neighbour_similarity': jax.lax.stop_gradient(similarity)}
    extra = {'queue': queue_lib.enqueue(state, z1)}
    return LossOutput(loss=(loss12 + loss21) / 2, batch_stats=batch_stats, metrics=metrics,
                      outputs=out, extra=extra)
