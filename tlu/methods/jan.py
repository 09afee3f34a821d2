"""JAN: joint adaptation networks (Long, Zhu, Wang & Jordan, 2017, ICML, "Deep Transfer
Learning with Joint Adaptation Networks").

The source classifier is trained while the joint MMD of the activations of several
layers is minimised (JMMD: the squared distance of the kernel embeddings of the
joint distributions): the kernel on (features, softmax outputs) is the product of a
kernel per layer, so the joint distribution of representation and prediction is
aligned, not each marginal.

Transcribes the Transfer-Learning-Library (`tllib/alignment/jan.py`,
JointMultipleKernelMaximumMeanDiscrepancy, and its script `examples/.../jan.py`):
layers (features, softmax(logits)) of the concatenated batch, the features' kernel
the sum of Gaussians with bandwidths 2^k times the mean squared distance (k = -3..1),
the softmax kernel one Gaussian with fixed sigma 0.92, the quadratic estimate by
default (`--linear` gives the linear-time one), trade-off 1. The gradient flows
through both layers (the softmax is not detached). Not included: JAN-A's adversarial
Theta layers (`--adversarial`).
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.adapt import mmd
from tlu.methods import METHODS, paired
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib


@METHODS.register('jan')
class JAN(Method):
  """Loss = CE(head(f_s), y_s) + domain_weight * JMMD((f_s, p_s), (f_t, p_t)), p = softmax(logits).

  config: domain_weight >= 0, kernel_alphas (the features' bandwidth factors),
  softmax_sigma > 0 (the softmax kernel's fixed bandwidth, 0.92), linear (false: the
  quadratic estimate), batch_norm 'joint' | 'per_domain' (TLlib: one joint pass).
  batch: {'image', 'label', 'target_image'} as DANN's.
  """
  ranges = {'domain_weight': checks.NON_NEGATIVE, 'kernel_alphas': checks.BANDWIDTHS,
            'linear': checks.FLAG, 'softmax_sigma': checks.POSITIVE}
  inputs = 'paired'

  @classmethod
  def example_config(cls):
    return {'domain_weight': 1.0, 'kernel_alphas': mmd.DAN_ALPHAS,
            'softmax_sigma': mmd.JAN_SOFTMAX_SIGMA, 'linear': False, 'batch_norm': 'joint'}

  @classmethod
  def check(cls, config):
    paired.check_batch_norm(config)   # the values' ranges: `ranges`

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes)}

  def loss_fn(self, params, model_state, batch, rng):
    out_s, out_t, batch_stats = paired.forward(self, params, model_state, batch, rng)
    class_loss, source_acc = paired.source_terms(out_s['head'], batch['label'])
    p_s, p_t = (jax.nn.softmax(o['head'].astype(jnp.float32), -1) for o in (out_s, out_t))
    kernels = ((tuple(self.config.kernel_alphas), None), ((), self.config.softmax_sigma))
    transfer = mmd.jmmd((out_s['features'], p_s), (out_t['features'], p_t), kernels,
                        self.config.linear)
    loss = class_loss + self.config.domain_weight * transfer
    metrics = {'source_accuracy': source_acc, 'class_loss': class_loss, 'jmmd': transfer}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics,
                      outputs=paired.outputs(out_s, out_t))
