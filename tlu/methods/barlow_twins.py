"""Barlow Twins (Zbontar, Jing, Misra, LeCun & Deny 2021, "Barlow Twins: Self-Supervised
Learning via Redundancy Reduction"): the cross-correlation matrix between the two views'
batch-normalised projections is driven to the identity; no negatives, no target network.

Implemented: eq. 1, L = sum_i (1 - C_ii)^2 + lambda sum_i sum_{j != i} C_ij^2, with C the
cross-correlation of eq. 2 computed as in Algorithm 1 (each view normalised along the
batch, C = z1^T z2 / N) over the GLOBAL batch: the batch is sharded on the mesh and the
loss is written over the whole (N, d) arrays, so GSPMD reduces across devices
(`tlu.unsupervised.ssl_losses.barlow_twins`).
"""

import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.unsupervised.ssl_losses import barlow_twins


@METHODS.register('barlow_twins')
class BarlowTwins(Method):
  """loss = `barlow_twins`(z1, z2, lambda), z = projector(f(x)) of the two views.

  config: off_diagonal_weight: lambda >= 0, the weight of the redundancy-reduction term
  (the paper: 5e-3); projector: MLP widths (the paper: (8192, 8192, 8192), BatchNorm and
  ReLU between layers, a linear output). batch: {'image': (N, H, W, C) uint8}; metrics:
  the loss's two terms (`on_diagonal`, `off_diagonal`, the latter unweighted).
  """
  ranges = {'off_diagonal_weight': checks.NON_NEGATIVE, 'projector': checks.WIDTHS}
  inputs = 'images'

  @classmethod
  def example_config(cls):
    return {'off_diagonal_weight': 5e-3, 'projector': (16, 8)}

  @classmethod
  def heads(cls, config, num_classes):
    del num_classes
    return {'projector': heads_lib.mlp(config.projector, batch_norm=True)}

  def loss_fn(self, params, model_state, batch, rng):
    views = jnp.concatenate(self.views(batch, rng)[:2])
    out, batch_stats = self.forward(params, model_state, views, ('projector',))
    z1, z2 = jnp.split(out['projector'], 2)
    loss, metrics = barlow_twins(z1, z2, self.config.off_diagonal_weight)
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics, outputs=out)
