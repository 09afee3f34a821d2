"""MCC: minimum class confusion (Jin, Wang, Long & Wang, 2020, ECCV, "Minimum Class
Confusion for Versatile Domain Adaptation").

Besides the source cross-entropy, the confusion between classes in the target
predictions is minimised: temperature-scaled probabilities Y = softmax(Z / T), examples
weighted by W_ii = 1 + exp(-H(y_i)) (normalised to sum to the batch size), the class
correlation matrix C = Y^T W Y, each column normalised to sum 1 (category
normalisation), and L_MCC = sum of the off-diagonal entries / the number of classes.

Transcribes the Transfer-Learning-Library (`tllib/self_training/mcc.py`,
MinimumClassConfusionLoss, and `examples/.../mcc.py`): temperature 2.5, trade-off 1,
the entropy weights without gradient, one joint pass over source and target.
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS, paired
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib

EPSILON = 1e-5  # TLlib's epsilon inside the entropy's log


def class_confusion(logits, temperature):
  """MCC loss of target logits (N, K) -> ()."""
  n, k = logits.shape
  p = jax.nn.softmax(logits.astype(jnp.float32) / temperature, axis=-1)
  h = jax.lax.stop_gradient(-jnp.sum(p * jnp.log(p + EPSILON), axis=-1))
  w = 1.0 + jnp.exp(-h)
  w = n * w / jnp.sum(w)
  confusion = (p * w[:, None]).T @ p                    # (K, K), symmetric
  confusion = confusion / jnp.sum(confusion, axis=1)    # column j / its sum (= row j's)
  return (jnp.sum(confusion) - jnp.trace(confusion)) / k


@METHODS.register('mcc')
class MCC(Method):
  """Loss = CE(head(f_s), y_s) + domain_weight * MCC(head(f_t) / temperature).

  config: temperature > 0 (2.5), domain_weight >= 0 (the trade-off, 1), batch_norm
  'joint' | 'per_domain' (TLlib: one joint pass).
  batch: {'image', 'label', 'target_image'} as DANN's.
  """
  ranges = {'domain_weight': checks.NON_NEGATIVE, 'temperature': checks.POSITIVE}
  inputs = 'paired'

  @classmethod
  def example_config(cls):
    return {'temperature': 2.5, 'domain_weight': 1.0, 'batch_norm': 'joint'}

  @classmethod
  def check(cls, config):
    paired.check_batch_norm(config)   # the values' ranges: `ranges`

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes)}

  def loss_fn(self, params, model_state, batch, rng):
    out_s, out_t, batch_stats = paired.forward(self, params, model_state, batch, rng)
    class_loss, source_acc = paired.source_terms(out_s['head'], batch['label'])
    confusion = class_confusion(out_t['head'], self.config.temperature)
    loss = class_loss + self.config.domain_weight * confusion
    metrics = {'source_accuracy': source_acc, 'class_loss': class_loss,
               'class_confusion': confusion}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics,
                      outputs=paired.outputs(out_s, out_t))
