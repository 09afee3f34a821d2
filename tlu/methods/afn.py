"""Stepwise AFN: adaptive feature norm (Xu, Li, Yang & Lin, 2019, ICCV, "Larger Norm
More Transferable: An Adaptive Feature Norm Approach for Unsupervised Domain Adaptation").

Target features with small norms carry less information for the task, so the norms
of source and target features are enlarged progressively: with h(x; theta_0) the
feature of the current parameters without gradient, each step pulls ||h(x; theta)||
towards ||h(x; theta_0)|| + delta_r (Stepwise AFN):
  L = CE(x_s, y_s)
      + lambda / (n_s + n_t) sum_{x in D_s u D_t} (||h(x; theta_0)|| + delta_r - ||h(x; theta)||)^2,
implemented as the mean over each domain's batch, summed over the two domains.
The value is delta_r^2 per domain; the gradient is -2 delta_r d||h|| per example.
Paper and Transfer-Learning-Library (`tllib/normalization/afn.py`, AdaptiveFeatureNorm,
and `examples/.../afn.py`): delta_r = 1, lambda = 0.05; TLlib's digit runs use delta_r
0.3 (MNIST -> USPS) and an entropy term on the target predictions weighted 0.03
(`entropy_weight`, 0 by default). TLlib passes each domain separately (per_domain).
The norm is that of the backbone features (TLlib's: its bottleneck block's output).
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS, paired
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib

EPSILON = 1e-5  # TLlib's epsilon inside the entropy's log


def feature_norm(features):
  """(N, F) -> (N,) L2 norms; an all-zero row (dead ReLU features) gets gradient 0, not NaN."""
  sq = jnp.sum(jnp.square(features.astype(jnp.float32)), axis=-1)
  return jnp.sqrt(jnp.maximum(sq, 1e-24))


def adaptive_feature_norm(features, delta):
  """Stepwise AFN term of one domain: (N, F) -> mean_i (||f_i|| - sg(||f_i||) - delta)^2."""
  norm = feature_norm(features)
  return jnp.mean(jnp.square(norm - (jax.lax.stop_gradient(norm) + delta)))


def mean_entropy(logits):
  p = jax.nn.softmax(logits.astype(jnp.float32), -1)
  return jnp.mean(-jnp.sum(p * jnp.log(p + EPSILON), axis=-1))


@METHODS.register('afn')
class AFN(Method):
  """Loss = CE(head(f_s), y_s) + domain_weight * (AFN(f_s) + AFN(f_t)) + entropy_weight * H(p_t).

  config: domain_weight >= 0 (lambda, 0.05), delta >= 0 (delta_r, 1), entropy_weight >= 0
  (TLlib's optional target entropy), batch_norm 'joint' | 'per_domain'.
  batch: {'image', 'label', 'target_image'} as DANN's.
  """
  ranges = {'delta': checks.NON_NEGATIVE, 'domain_weight': checks.NON_NEGATIVE,
            'entropy_weight': checks.NON_NEGATIVE}
  inputs = 'paired'

  @classmethod
  def example_config(cls):
    return {'domain_weight': 0.05, 'delta': 1.0, 'entropy_weight': 0.0,
            'batch_norm': 'per_domain'}

  @classmethod
  def check(cls, config):
    paired.check_batch_norm(config)   # the values' ranges: `ranges`

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes)}

  def loss_fn(self, params, model_state, batch, rng):
    out_s, out_t, batch_stats = paired.forward(self, params, model_state, batch, rng)
    class_loss, source_acc = paired.source_terms(out_s['head'], batch['label'])
    norm_loss = (adaptive_feature_norm(out_s['features'], self.config.delta) +
                 adaptive_feature_norm(out_t['features'], self.config.delta))
    target_entropy = mean_entropy(out_t['head'])
    loss = (class_loss + self.config.domain_weight * norm_loss +
            self.config.entropy_weight * target_entropy)
    norms = lambda f: jnp.mean(feature_norm(f))
    metrics = {'source_accuracy': source_acc, 'class_loss': class_loss, 'norm_loss': norm_loss,
               'target_entropy': target_entropy, 'source_feature_norm': norms(out_s['features']),
               'target_feature_norm': norms(out_t['features'])}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics,
                      outputs=paired.outputs(out_s, out_t))
