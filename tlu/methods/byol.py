"""BYOL (Grill et al. 2020, "Bootstrap Your Own Latent: A New Approach to Self-Supervised
Learning"): an online network (backbone, projector, predictor) predicts the projection of
the other view by a target network, an exponential moving average of the online backbone
and projector (eq. 1, section 3.2's cosine schedule of the momentum tau). No negatives.

Implemented: eq. 2, L = ||q̄ - z̄'||^2 = 2 - 2 cos(q, z') averaged over the batch, and its
symmetrisation L + L~ (the views swapped, section 3.1); the target receives no gradient and
follows xi <- tau xi + (1 - tau) theta after every step, tau = 1 - (1 - tau_base)
(cos(pi k / K) + 1) / 2 (section 3.2; `tlu.unsupervised.momentum`).
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.momentum_target import MomentumTarget
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.unsupervised.ssl_losses import normalized_mse

TARGET = MomentumTarget(('backbone', 'projector'))   # everything but the predictor


@METHODS.register('byol')
class BYOL(Method):
  """loss = L(q1, z'2) + L(q2, z'1), q = predictor(projector(f(x))) online, z' =
  projector(f(x)) of the target network (no gradient), L = `normalized_mse` (eq. 2).

  config: momentum in [0, 1] (tau_base of the cosine schedule to 1; the paper 0.996, 0.99
  for short runs); projector / predictor: MLP widths (Linear-BN-ReLU-Linear in the paper:
  (4096, 256) both), the predictor ending in the projector's width. Method state
  (`extra['target']`): the target network's params and BatchNorm statistics.
  batch: {'image': (N, H, W, C) uint8}.
  """
  ranges = {'momentum': checks.UNIT, 'predictor': checks.WIDTHS, 'projector': checks.WIDTHS}
  inputs = 'images'

  @classmethod
  def example_config(cls):
    return {'momentum': 0.99, 'projector': (16, 8), 'predictor': (16, 8)}

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
    del rng   # the paper initialises the target as a copy of the online network
    return {'target': TARGET.init(variables)}

  def loss_fn(self, params, model_state, batch, rng):
    views = jnp.concatenate(self.views(batch, rng)[:2])
    out, batch_stats = self.forward(params, model_state, views, ('projector', 'predictor'))
    target_out, target = TARGET.forward(self, model_state['extra']['target'], views,
                                        ('projector',))
    z1, z2 = jnp.split(target_out['projector'], 2)
    q1, q2 = jnp.split(out['predictor'], 2)
    loss12, loss21 = normalized_mse(q1, z2), normalized_mse(q2, z1)
    extra = {'target': target}
    # 2 - 2 cos: the mean cosine between predictions and targets, for logging.
    metrics = {'prediction_cosine': jax.lax.stop_gradient(1.0 - (loss12 + loss21) / 4.0)}
    return LossOutput(loss=loss12 + loss21, batch_stats=batch_stats, extra=extra, metrics=metrics,
                      outputs=out)

  def after_update(self, state):
    """The target follows the updated online network (tau of the step just taken)."""
    return TARGET.after_update(self, state)
