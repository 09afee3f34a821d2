"""Supervised cross-entropy on labelled images (optionally label-smoothed, Szegedy et al. 2016).

Also every transfer strategy's objective: scratch, linear probe, fine-tuning and
LP-FT differ only in the freezing spec and the initial weights (`tlu.transfer`).
"""

import jax.numpy as jnp
import optax

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib


@METHODS.register('supervised')
class Supervised(Method):
  """loss = CE(head(f(x)), y) with targets (1 - eps) onehot + eps / K (eps = label_smoothing).

  config: label_smoothing in [0, 1); head_l2_scale >= 0 (s > 0: the head sees s * f / ||f||,
  a cosine classifier; 0: a plain Dense head). batch: {'image': (B, H, W, C) uint8,
  'label': (B,) int}.
  """
  ranges = {'alpha': checks.NON_NEGATIVE, 'beta': checks.NON_NEGATIVE,
            'head_l2_scale': checks.NON_NEGATIVE, 'label_smoothing': checks.BELOW_ONE}

  @classmethod
  def example_config(cls):
    return {'label_smoothing': 0.1, 'head_l2_scale': 0.0}

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes, config.get('head_l2_scale', 0.0))}

  def loss_fn(self, params, model_state, batch, rng):
    out, batch_stats = self.forward(params, model_state, self.images(batch, rng), ('head',))
    logits = out['head']
    smoothing = self.config.get('label_smoothing', 0.0)
    if smoothing:
      targets = optax.smooth_labels(jnp.eye(logits.shape[-1])[batch['label']], smoothing)
      loss = optax.softmax_cross_entropy(logits, targets).mean()
    else:
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
    acc = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics={'accuracy': acc}, outputs=out)
