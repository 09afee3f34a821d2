"""Pseudo-Label (Lee 2013, "Pseudo-Label: The Simple and Efficient Semi-Supervised
Learning Method for Deep Neural Networks"; USB's variant): the model's own confident
argmax on a weakly augmented unlabelled image is that image's label, with a weight that
ramps up.

Implemented (Lee's eq. 15 with USB's semilearn/algorithms/pseudolabel): loss = l_s +
lambda_u r(t) l_u, l_u = 1/(mu B) sum_b 1[max p_b >= tau] H(argmax p_b, p_b), p_b the
prediction on the weak view (the label without gradient, the prediction with), r(t) =
clip(t / (ramp_fraction T), 0, 1). The labelled pass updates the BatchNorm statistics,
the unlabelled one does not (USB freezes them there).
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.semisup import consistency, thresholds
from tlu.semisup.method import DEFAULTS, SemiSupervised


@METHODS.register('pseudolabel')
class PseudoLabel(SemiSupervised):
  """config: threshold tau in [0, 1] (0.95), ramp_fraction in [0, 1] (0.4: USB's
  unsup_warm_up), mu, unsup_weight, weak. `strong` is not used."""
  ranges = {**SemiSupervised.ranges, 'ramp_fraction': checks.UNIT,
            'threshold': checks.UNIT}
  defaults = {**DEFAULTS, 'threshold': 0.95, 'ramp_fraction': 0.4}

  @classmethod
  def example_config(cls):
    return {**super().example_config(), 'threshold': 0.5}


  def loss_fn(self, params, model_state, batch, rng):
    x, u_w, _ = self.weak_strong(batch, rng)
    logits_lb, features, stats = self.classify(params, model_state, x)
    logits_u, _, _ = self.classify(params, model_state, u_w)   # statistics kept frozen
    probs = jax.lax.stop_gradient(jax.nn.softmax(logits_u, -1))
    mask = thresholds.fixed_mask(probs, self.setting('threshold'))
    unsup = consistency.masked_mean(
        consistency.cross_entropy(logits_u, jnp.argmax(probs, -1)), mask)
    ramp = consistency.linear_rampup(model_state['step'], self.facts.num_steps,
                                     self.setting('ramp_fraction'))
    return self.output(sup_loss=self.supervised_loss(logits_lb, batch), unsup_loss=unsup,
                       unsup_scale=ramp, batch_stats=stats, logits_lb=logits_lb,
                       features_lb=features, batch=batch, mask=mask, metrics={'ramp': ramp})
