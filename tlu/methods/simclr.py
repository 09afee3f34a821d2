"""SimCLR (Chen et al., 2020, "A Simple Framework for Contrastive Learning of Visual
Representations"): NT-Xent (eq. 1) between the projections of two augmented views.

Two views of every image go through the backbone and the `projector` MLP in one
(2N, H, W, C) forward pass, so BatchNorm normalises over both views of the global
batch (the paper's global BN, Section 3); NT-Xent pulls the two projections of an
image together and pushes the other 2N - 2 of the global batch away. Labels are
never read.
"""

from jax import numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.unsupervised.contrastive import nt_xent


@METHODS.register('simclr')
class SimCLR(Method):
  """config: temperature > 0; projector: widths of the projector MLP, e.g. (512, 128).

  batch: {'image': (N, H, W, C) uint8}; metrics: nt_xent's contrastive_accuracy,
  positive_similarity, negative_similarity.
  """
  ranges = {'projector': checks.WIDTHS, 'temperature': checks.POSITIVE}
  inputs = 'images'

  @classmethod
  def example_config(cls):
    return {'temperature': 0.5, 'projector': (16, 8)}

  @classmethod
  def heads(cls, config, num_classes):
    del num_classes
    return {'projector': heads_lib.mlp(config.projector)}

  def loss_fn(self, params, model_state, batch, rng):
    view1, view2 = self.views(batch, rng)[:2]
    out, batch_stats = self.forward(params, model_state, jnp.concatenate([view1, view2]),
                                    ('projector',))
    z1, z2 = jnp.split(out['projector'], 2)
    loss, metrics = nt_xent(z1, z2, self.config.temperature)
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics, outputs=out)
