"""SimSiam (Chen & He 2021, "Exploring Simple Siamese Representation Learning"): one
encoder (backbone and projector) and a predictor; each view's prediction matches the other
view's projection, which is held constant (stop-gradient). No target network, no
negatives, no momentum.

Implemented: Algorithm 1, L = D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2 (eq. 3-4)
with D(p, z) = -cos(p, z) averaged over the batch (eq. 1). The projector has BatchNorm on
every layer including its output (section 3, "Projection MLP"; the output BatchNorm
without affine parameters, as the reference implementation), the predictor on its
hidden layer only.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.models.norm import BatchNorm
from tlu.train.step import feature_std
from tlu.unsupervised.ssl_losses import negative_cosine


class Projector(nn.Module):
  """Dense -> BN -> ReLU ... -> Dense -> BN (no ReLU, no affine on the last BN).

  (N, F) -> (N, dims[-1]); layers dense{i} and bn{i}, as `tlu.models.heads.MLP`.
  """
  dims: tuple

  @nn.compact
  def __call__(self, x, train=False):
    for i, d in enumerate(self.dims):
      last = i == len(self.dims) - 1
      x = nn.Dense(d, name=f'dense{i}')(x)
      x = BatchNorm(momentum=0.9, use_scale=not last, use_bias=not last, name=f'bn{i}')(x, train)
      if not last:
        x = nn.relu(x)
    return x


@METHODS.register('simsiam')
class SimSiam(Method):
  """loss = D(p1, z2) / 2 + D(p2, z1) / 2, z = projector(f(x)) under stop-gradient,
  p = predictor(z), D = `negative_cosine`; in [-1, 1], -1 when predictions match.

  config: projector: widths of the projection MLP (the paper: (2048, 2048, 2048) on
  ImageNet, two layers on CIFAR); predictor: widths of the prediction MLP, ending in the
  projector's width (the paper: (512, 2048), a bottleneck of a quarter).
  batch: {'image': (N, H, W, C) uint8}; metrics: `projection_std` (mean over dimensions of
  the batch std of the L2-normalised projections z: about 1/sqrt(d) without collapse, 0
  with it; the paper's Figure 2 middle).
  """
  ranges = {'predictor': checks.WIDTHS, 'projector': checks.WIDTHS}
  inputs = 'images'

  @classmethod
  def example_config(cls):
    return {'projector': (16, 8), 'predictor': (4, 8)}

  @classmethod
  def check(cls, config):
    if config.projector[-1] != config.predictor[-1]:   # the values' ranges: `ranges`
      raise ValueError(f'method.predictor={tuple(config.predictor)} must end in the '
                       f'projector\'s output width {config.projector[-1]}')

  @classmethod
  def heads(cls, config, num_classes):
    del num_classes
    return {'projector': heads_lib.Head.of(Projector, dims=tuple(int(d) for d in config.projector)),
            'predictor': heads_lib.mlp(config.predictor, batch_norm=True,
                                       input_name='projector')}

  def loss_fn(self, params, model_state, batch, rng):
    views = jnp.concatenate(self.views(batch, rng)[:2])
    out, batch_stats = self.forward(params, model_state, views, ('projector', 'predictor'))
    z1, z2 = jnp.split(jax.lax.stop_gradient(out['projector']), 2)
    p1, p2 = jnp.split(out['predictor'], 2)
    loss = negative_cosine(p1, z2) / 2 + negative_cosine(p2, z1) / 2
    metrics = {'projection_std': feature_std(out['projector'])}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics, outputs=out)
