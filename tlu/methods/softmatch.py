"""SoftMatch (Chen et al. 2023, "SoftMatch: Addressing the Quantity-Quality Trade-off in
Semi-supervised Learning"): every pseudo-label counts, weighted by a truncated Gaussian of
its confidence whose mean and variance follow the model (EMA), after uniform alignment.

Implemented (eqs. 7, 8, 10; USB's semilearn/algorithms/softmatch with its defaults:
dist_align on a uniform target, one global Gaussian): l_u = 1/(mu B) sum_b lambda(p_b)
H(argmax q_b, p(A(u_b))), q_b the weak softmax, p_b = UA(q_b) (`uniform_alignment`),
lambda `softmatch_weights` (state after the batch); the hard pseudo-label is the argmax
of q_b, as USB. Method state (`extra`): p_model (K,), seen (), mu (), var ().
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.semisup import consistency, thresholds
from tlu.semisup.method import DEFAULTS, SemiSupervised


@METHODS.register('softmatch')
class SoftMatch(SemiSupervised):
  """config: ema_momentum in [0, 1] (0.999), n_sigma > 0 (2), dist_align (bool, True),
  mu, unsup_weight, weak, strong."""
  ranges = {**SemiSupervised.ranges, 'dist_align': checks.FLAG,
            'ema_momentum': checks.UNIT, 'n_sigma': checks.POSITIVE}
  defaults = {**DEFAULTS, 'ema_momentum': 0.999, 'n_sigma': 2.0, 'dist_align': True}

  @classmethod
  def example_config(cls):
    return {**super().example_config(), 'ema_momentum': 0.9}


  def init_extra(self, variables, rng):
    del rng
    return thresholds.init_softmatch(self.num_classes(variables))

  def loss_fn(self, params, model_state, batch, rng):
    logits_lb, logits_w, logits_s, features, stats = self.logits_lb_w_s(
        params, model_state, batch, rng)
    probs = jax.nn.softmax(logits_w, -1)
    m = self.setting('ema_momentum')
    extra, aligned = model_state['extra'], probs
    if self.setting('dist_align'):
      extra, aligned = thresholds.uniform_alignment(extra, probs, m)
    extra, weights = thresholds.softmatch_weights(extra, aligned, m, self.setting('n_sigma'))
    unsup = consistency.masked_mean(
        consistency.cross_entropy(logits_s, jnp.argmax(probs, -1)), weights)
    return self.output(sup_loss=self.supervised_loss(logits_lb, batch), unsup_loss=unsup,
                       batch_stats=stats, logits_lb=logits_lb, features_lb=features,
                       batch=batch, mask=weights, extra=extra)
