"""W-MSE (Ermolov et al. 2021, "Whitening for Self-Supervised Representation Learning"):
the projections of the views are whitened (Cholesky, over random sub-batches of w_size
rows) and the whitened, l2-normalised views of an image pulled together by MSE. The
whitening scatters the batch (identity covariance), so no negatives are needed.

Implemented as solo-learn's `WMSE`, `Whitening2d` and `wmse_loss_func`
(`tlu.unsupervised.whitening`): for each of w_iter random permutations of the global
batch, each view's rows of each sub-batch of w_size are whitened together, and the loss
is the mean over view pairs i < j and iterations of 2 - 2 cos(z_i, stopgrad(z_j))
(solo-learn's default; the stop-gradient is solo-learn's, see `wmse_loss`). The
projector is Linear-BN-ReLU-Linear (solo-learn's); the views are the augmentation's
global ones (two for a plain augmentation, W-MSE 4 with four).
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.data.augment import num_global_views
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.unsupervised.whitening import wmse_objective


@METHODS.register('wmse')
class WMSE(Method):
  """config: projector: MLP widths (BatchNorm between layers; solo-learn (1024, 64) on
  CIFAR); w_size: rows whitened together (128), > the projection width when w_eps = 0
  (a full-rank covariance), dividing the global batch; w_iter >= 1 sub-batchings per step
  (1); w_eps in [0, 1): the covariance's shrinkage to the identity (0).

  batch: {'image': (N, H, W, C) uint8}. Metrics: view_cosine (the mean cosine of the
  whitened view pairs, 1 - loss / 2).
  """
  ranges = {'projector': checks.WIDTHS, 'w_eps': checks.BELOW_ONE,
            'w_iter': checks.POSITIVE_INT,
            'w_size': checks.Range(lambda v: v >= 2, 'an integer >= 2', 'integer')}
  inputs = 'images'

  @classmethod
  def example_config(cls):
    return {'projector': (16, 4), 'w_size': 8, 'w_iter': 2, 'w_eps': 0.0}

  @classmethod
  def check(cls, config):
    if config.w_eps == 0 and not config.w_size > config.projector[-1]:   # ranges: `ranges`
      raise ValueError(f'method.w_size={config.w_size} must exceed the projection width '
                       f'{config.projector[-1]} with w_eps=0 (a singular covariance)')

  @classmethod
  def check_batch(cls, config, batch_size):
    if batch_size % config.w_size:
      raise ValueError(f'method.w_size={config.w_size} must divide batch_size={batch_size}')

  @classmethod
  def heads(cls, config, num_classes):
    del num_classes
    return {'projector': heads_lib.mlp(config.projector, batch_norm=True)}

  def loss_fn(self, params, model_state, batch, rng):
    view_rng, perm_rng = jax.random.split(rng)
    views = self.views(batch, view_rng)[:num_global_views(self.augment)]
    out, batch_stats = self.forward(params, model_state, jnp.concatenate(views), ('projector',))
    z = out['projector'].reshape(len(views), views[0].shape[0], -1)
    loss = wmse_objective(z, perm_rng, int(self.config.w_size), int(self.config.w_iter),
                          self.config.w_eps)
    metrics = {'view_cosine': jax.lax.stop_gradient(1.0 - loss / 2.0)}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics, outputs=out)
