"""FreeMatch (Wang et al. 2023, "FreeMatch: Self-adaptive Thresholding for Semi-supervised
Learning"): FixMatch with a global threshold that tracks the model's mean confidence,
modulated per class by the EMA class probabilities, plus a fairness term.

Implemented (eqs. 5-8 and 11, USB's semilearn/algorithms/freematch): loss = l_s +
lambda_u l_u + w_f L_f, l_u FixMatch's with the self-adaptive mask
(`tlu.semisup.thresholds.freematch_mask`, state after the batch), L_f
`freematch_fairness` on the masked strong-view predictions. Method state (`extra`):
p_model (K,), label_hist (K,), time_p ().
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.semisup import consistency, thresholds
from tlu.semisup.method import DEFAULTS, SemiSupervised


@METHODS.register('freematch')
class FreeMatch(SemiSupervised):
  """config: ema_momentum in [0, 1] (0.999), fairness_weight >= 0 (w_f, 0.01),
  use_quantile / clip_thresh (bool, False: USB's options), mu, unsup_weight, weak, strong."""
  ranges = {**SemiSupervised.ranges, 'clip_thresh': checks.FLAG,
            'ema_momentum': checks.UNIT, 'fairness_weight': checks.NON_NEGATIVE,
            'use_quantile': checks.FLAG}
  defaults = {**DEFAULTS, 'ema_momentum': 0.999, 'fairness_weight': 0.01,
              'use_quantile': False, 'clip_thresh': False}

  @classmethod
  def example_config(cls):
    return {**super().example_config(), 'ema_momentum': 0.9, 'fairness_weight': 0.01}


  def init_extra(self, variables, rng):
    del rng
    return thresholds.init_freematch(self.num_classes(variables))

  def loss_fn(self, params, model_state, batch, rng):
    logits_lb, logits_w, logits_s, features, stats = self.logits_lb_w_s(
        params, model_state, batch, rng)
    probs = jax.nn.softmax(logits_w, -1)
    extra, mask = thresholds.freematch_mask(
        model_state['extra'], probs, self.setting('ema_momentum'),
        self.setting('use_quantile'), self.setting('clip_thresh'))
    unsup = consistency.masked_mean(
        consistency.cross_entropy(logits_s, jnp.argmax(probs, -1)), mask)
    fairness = thresholds.freematch_fairness(mask, logits_s, extra['p_model'],
                                             extra['label_hist'])
    return self.output(sup_loss=self.supervised_loss(logits_lb, batch), unsup_loss=unsup,
                       batch_stats=stats, logits_lb=logits_lb, features_lb=features,
                       batch=batch, mask=mask, extra=extra,
                       terms={'fairness_loss': self.setting('fairness_weight') * fairness},
                       metrics={'time_p': extra['time_p']})
