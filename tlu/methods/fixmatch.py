"""FixMatch (Sohn et al. 2020, "FixMatch: Simplifying Semi-Supervised Learning with
Consistency and Confidence"): the argmax of the weak view's prediction is the hard
pseudo-label of the strong view, kept where the weak confidence reaches tau.

Implemented (eqs. 2-4, USB's semilearn/algorithms/fixmatch): loss = l_s + lambda_u l_u,
l_s = mean_b H(y_b, p(x_b)), l_u = 1/(mu B) sum_b 1[max q_b >= tau] H(argmax q_b,
p(A(u_b))), q_b = softmax of the weak view (no gradient). Weak / strong views: see
`tlu.semisup.views` (the strong view is RandAugment + Cutout once
tlu/data/augment/randaugment.py exists, `strong='randaugment'`).
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.semisup import consistency, thresholds
from tlu.semisup.method import DEFAULTS, SemiSupervised


@METHODS.register('fixmatch')
class FixMatch(SemiSupervised):
  """config: threshold tau in [0, 1] (0.95), mu, unsup_weight (lambda_u), weak, strong."""
  ranges = {**SemiSupervised.ranges, 'threshold': checks.UNIT}
  defaults = {**DEFAULTS, 'threshold': 0.95}

  @classmethod
  def example_config(cls):
    return {**super().example_config(), 'threshold': 0.6}


  def loss_fn(self, params, model_state, batch, rng):
    logits_lb, logits_w, logits_s, features, stats = self.logits_lb_w_s(
        params, model_state, batch, rng)
    probs = jax.nn.softmax(logits_w, -1)
    mask = thresholds.fixed_mask(probs, self.setting('threshold'))
    unsup = consistency.masked_mean(
        consistency.cross_entropy(logits_s, jnp.argmax(probs, -1)), mask)
    return self.output(sup_loss=self.supervised_loss(logits_lb, batch), unsup_loss=unsup,
                       batch_stats=stats, logits_lb=logits_lb, features_lb=features,
                       batch=batch, mask=mask)
