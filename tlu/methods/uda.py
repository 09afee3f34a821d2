"""UDA (Xie et al. 2020, "Unsupervised Data Augmentation for Consistency Training"): the
strong view's prediction is pulled to the sharpened weak one where the weak confidence
passes a threshold; Training Signal Annealing drops labelled examples the model is already
sure of.

Implemented (eq. 1, sections 3.2 and 3.3; USB's semilearn/algorithms/uda): loss = l_s +
lambda_u l_u, l_s = 1/B sum_b 1[max p(x_b) <= eta_t] H(y_b, p(x_b)) (TSA, `tsa_threshold`),
l_u = 1/(mu B) sum_b 1[max q_b >= beta] H(softmax(z_b / T), p(A(u_b))), z_b the weak logits
(no gradient). The sharpening with T follows the paper; USB passes the unsharpened
probabilities (its softmax=False skips T). CE instead of KL: the same gradient.
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.semisup import consistency, thresholds
from tlu.semisup.method import DEFAULTS, SemiSupervised, setting


@METHODS.register('uda')
class UDA(SemiSupervised):
  """config: threshold beta in [0, 1] (0.8), temperature T > 0 (0.4), tsa in
  ('none', 'linear', 'exp', 'log') ('none'), mu, unsup_weight, weak, strong."""
  ranges = {**SemiSupervised.ranges, 'temperature': checks.POSITIVE,
            'threshold': checks.UNIT}
  defaults = {**DEFAULTS, 'threshold': 0.8, 'temperature': 0.4, 'tsa': 'none'}

  @classmethod
  def example_config(cls):
    return {**super().example_config(), 'threshold': 0.5, 'tsa': 'linear'}

  @classmethod
  def check(cls, config):
    super().check(config)   # the values' ranges: `ranges`
    tsa = setting(config, 'tsa', cls.defaults)
    if tsa not in consistency.TSA_SCHEDULES:
      raise ValueError(f'method.tsa={tsa!r} must be one of {consistency.TSA_SCHEDULES}')

  def loss_fn(self, params, model_state, batch, rng):
    logits_lb, logits_w, logits_s, features, stats = self.logits_lb_w_s(
        params, model_state, batch, rng)
    eta = consistency.tsa_threshold(self.setting('tsa'), model_state['step'], self.facts.num_steps,
                                    logits_lb.shape[-1])
    sup_mask = jax.lax.stop_gradient(
        (jnp.max(jax.nn.softmax(logits_lb, -1), -1) <= eta).astype(jnp.float32))
    sup = jnp.mean(consistency.cross_entropy(logits_lb, batch['label']) * sup_mask)
    mask = thresholds.fixed_mask(jax.nn.softmax(logits_w, -1), self.setting('threshold'))
    targets = jax.nn.softmax(logits_w / self.setting('temperature'), -1)
    unsup = consistency.masked_mean(consistency.cross_entropy(logits_s, targets), mask)
    return self.output(sup_loss=sup, unsup_loss=unsup, batch_stats=stats,
                       logits_lb=logits_lb, features_lb=features, batch=batch, mask=mask,
                       metrics={'tsa_threshold': eta, 'tsa_ratio': jnp.mean(sup_mask)})
