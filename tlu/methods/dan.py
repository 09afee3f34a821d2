"""DAN: deep adaptation networks (Long, Cao, Wang & Jordan, 2015, ICML, "Learning
Transferable Features with Deep Adaptation Networks").

The source classifier is trained while the multi-kernel MMD between the source and
target activations of the adapted layers is minimised, the MK-MMD
d_k^2(p, q) = ||E_p phi(x_s) - E_q phi(x_t)||^2 in the RKHS of k, k a sum of Gaussian
kernels with bandwidths 2^k times the batch's mean squared distance, k = -3..1, equal
kernel weights (`tlu.adapt.mmd`).

Transcribes the Transfer-Learning-Library (`tllib/alignment/dan.py`,
MultipleKernelMaximumMeanDiscrepancy, and its training script `examples/.../dan.py`):
MK-MMD on the features (TLlib's bottleneck output; here the backbone features), the
linear-time unbiased estimate (the paper's) by default as the script's
(`--non-linear` gives the quadratic one), trade-off 1. The paper adapts fc6-fc8 of
AlexNet; `logits: true` adds the MK-MMD of the classifier's logits (the last of those
layers), as a sum.
"""

from tlu import checks
from tlu.adapt import mmd
from tlu.methods import METHODS, paired
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib


@METHODS.register('dan')
class DAN(Method):
  """Loss = CE(head(f_s), y_s) + domain_weight * MK-MMD(f_s, f_t) [+ MK-MMD(logits_s, logits_t)].

  config: domain_weight >= 0 (TLlib's trade-off 1), kernel_alphas: bandwidth factors
  (sigma^2 = alpha * mean squared distance; 2^-3..2^1), linear: the linear-time estimate
  (true) or the quadratic one, logits: also align the logits, batch_norm 'joint' |
  'per_domain' (TLlib's script passes each domain separately).
  batch: {'image': (B, H, W, C) uint8 source, 'label': (B,), 'target_image': (B, H, W, C)}.
  """
  ranges = {'domain_weight': checks.NON_NEGATIVE, 'kernel_alphas': checks.BANDWIDTHS,
            'linear': checks.FLAG, 'logits': checks.FLAG}
  inputs = 'paired'

  @classmethod
  def example_config(cls):
    return {'domain_weight': 1.0, 'kernel_alphas': mmd.DAN_ALPHAS, 'linear': True,
            'logits': False, 'batch_norm': 'per_domain'}

  @classmethod
  def check(cls, config):
    paired.check_batch_norm(config)   # the values' ranges: `ranges`

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes)}

  def loss_fn(self, params, model_state, batch, rng):
    out_s, out_t, batch_stats = paired.forward(self, params, model_state, batch, rng)
    class_loss, source_acc = paired.source_terms(out_s['head'], batch['label'])
    alphas, linear = tuple(self.config.kernel_alphas), self.config.linear
    transfer = mmd.mk_mmd(out_s['features'], out_t['features'], alphas, linear)
    if self.config.logits:
      transfer = transfer + mmd.mk_mmd(out_s['head'], out_t['head'], alphas, linear)
    loss = class_loss + self.config.domain_weight * transfer
    metrics = {'source_accuracy': source_acc, 'class_loss': class_loss, 'mmd': transfer}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics,
                      outputs=paired.outputs(out_s, out_t))
