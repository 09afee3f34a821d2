"""MoCo v3 (Chen, Xie & He 2021, "An Empirical Study of Training Self-Supervised Vision
Transformers", Algorithm 1): a query encoder (backbone, projector, predictor) learns to
match a momentum key encoder (EMA of backbone and projector) by a symmetrised InfoNCE
over the global batch; the keys of the other images of the batch are the negatives.
"""

import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.momentum_target import MomentumTarget
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.unsupervised.contrastive import info_nce

TARGET = MomentumTarget(('backbone', 'projector'))   # everything but the predictor


@METHODS.register('mocov3')
class MoCoV3(Method):
  """loss = ctr(q1, k2) + ctr(q2, k1), q = predictor(projector(f(x))) online, k the same
  without predictor from the momentum encoder (no gradient), ctr = `info_nce`.

  config: temperature > 0 (0.2 for ResNets in the paper); momentum in [0, 1] (the base of
  the cosine schedule to 1: 0.99); projector / predictor: MLP widths (BatchNorm between
  layers, as the paper's 3- and 2-layer heads). Method state (`extra['target']`): the
  momentum encoder's params and BatchNorm statistics, updated after every step.
  batch: {'image': (N, H, W, C) uint8}.
  """
  ranges = {'momentum': checks.UNIT, 'predictor': checks.WIDTHS, 'projector': checks.WIDTHS,
            'temperature': checks.POSITIVE}
  inputs = 'images'

  @classmethod
  def example_config(cls):
    return {'temperature': 0.2, 'momentum': 0.99, 'projector': (16, 8), 'predictor': (16, 8)}

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
    del rng
    return {'target': TARGET.init(variables)}

  def loss_fn(self, params, model_state, batch, rng):
    views = jnp.concatenate(self.views(batch, rng)[:2])
    out, batch_stats = self.forward(params, model_state, views, ('projector', 'predictor'))
    keys, target = TARGET.forward(self, model_state['extra']['target'], views, ('projector',))
    k1, k2 = jnp.split(keys['projector'], 2)
    q1, q2 = jnp.split(out['predictor'], 2)
    loss12, m12 = info_nce(q1, k2, self.config.temperature)
    loss21, m21 = info_nce(q2, k1, self.config.temperature)
    extra = {'target': target}
    metrics = {'contrastive_accuracy': (m12['contrastive_accuracy'] +
                                        m21['contrastive_accuracy']) / 2}
    return LossOutput(loss=loss12 + loss21, batch_stats=batch_stats, extra=extra, metrics=metrics,
                      outputs=out)

  def after_update(self, state):
    """The momentum encoder follows the updated online encoder (momentum after this step)."""
    return TARGET.after_update(self, state)
