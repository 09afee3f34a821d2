"""VICReg (Bardes, Ponce & LeCun 2022, "VICReg: Variance-Invariance-Covariance
Regularization for Self-Supervised Learning"): the two views' embeddings are pulled
together (invariance) while each view's embedding dimensions keep a standard deviation
of at least gamma over the batch (variance) and are decorrelated (covariance); no
negatives, no target network, no normalisation of the embeddings.

Implemented: eq. 1-6 as in Algorithm 1 (`tlu.unsupervised.ssl_losses.vicreg`),
loss = lambda s(Z, Z') + mu [v(Z) + v(Z')] + nu [c(Z) + c(Z')], over the GLOBAL batch: the
batch is sharded on the mesh and the statistics are written over the whole (N, d) arrays,
so GSPMD reduces across devices.
"""

import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.unsupervised.ssl_losses import vicreg


@METHODS.register('vicreg')
class VICReg(Method):
  """loss = `vicreg`(z1, z2, ...), z = projector(f(x)) (the paper's "expander").

  config: invariance_weight lambda, variance_weight mu, covariance_weight nu, all >= 0 (the
  paper: 25, 25, 1); gamma > 0, the target standard deviation (1); eps > 0, the variance's
  stabiliser (1e-4); projector: MLP widths (the paper: (8192, 8192, 8192), BatchNorm and
  ReLU between layers, a linear output). batch: {'image': (N, H, W, C) uint8}; metrics:
  the three unweighted terms `invariance`, `variance`, `covariance`.
  """
  ranges = {'covariance_weight': checks.NON_NEGATIVE, 'eps': checks.POSITIVE,
            'gamma': checks.POSITIVE, 'invariance_weight': checks.NON_NEGATIVE,
            'projector': checks.WIDTHS, 'variance_weight': checks.NON_NEGATIVE}
  inputs = 'images'

  @classmethod
  def example_config(cls):
    # The paper's 25 : 25 : 1 divided by 25: a loss of order 1, so the plain SGD of the
    # house's tests takes small steps (with 25 the state moves ~100x per step).
    return {'invariance_weight': 1.0, 'variance_weight': 1.0, 'covariance_weight': 0.04,
            'gamma': 1.0, 'eps': 1e-4, 'projector': (16, 8)}

  @classmethod
  def heads(cls, config, num_classes):
    del num_classes
    return {'projector': heads_lib.mlp(config.projector, batch_norm=True)}

  def loss_fn(self, params, model_state, batch, rng):
    views = jnp.concatenate(self.views(batch, rng)[:2])
    out, batch_stats = self.forward(params, model_state, views, ('projector',))
    z1, z2 = jnp.split(out['projector'], 2)
    c = self.config
    loss, metrics = vicreg(z1, z2, c.invariance_weight, c.variance_weight,
                           c.covariance_weight, gamma=c.gamma, eps=c.eps)
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics, outputs=out)
