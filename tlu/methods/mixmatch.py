"""MixMatch (Berthelot et al. 2019, "MixMatch: A Holistic Approach to Semi-Supervised
Learning"): guess each unlabelled image's label from K weak views (averaged, sharpened),
MixUp labelled and unlabelled examples together, CE on the labelled part, MSE on the rest.

Implemented (Algorithm 1, eqs. 2-5 and 7-11, USB's semilearn/algorithms/mixmatch):
q_b = Sharpen(1/K sum_k p(u_b^k), T) without gradient; W = Shuffle(X^ ++ U^), the whole
batch mixed with one lambda' = max(lambda, 1 - lambda), lambda ~ Beta(alpha, alpha)
(USB's `mixup_one_target`); loss = L_X + lambda_u r(t) L_U, L_X the mean soft CE of the
first B mixed examples, L_U the mean (1/K) ||q' - p||^2 of the others, r(t) the linear ramp
over ramp_fraction of the run (USB: 1/64). The views are K weak views. BatchNorm
statistics move on the first B mixed examples only (USB freezes them on the guesses and
the other chunks). Keys: jax.random.split(rng, K + 3) = (labelled, K views, lambda,
permutation).
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.semisup import consistency
from tlu.semisup.method import DEFAULTS, SemiSupervised


@METHODS.register('mixmatch')
class MixMatch(SemiSupervised):
  """config: views K >= 1 (2), temperature T > 0 (0.5), mixup_alpha >= 0 (0.5),
  ramp_fraction in [0, 1] (1/64), unsup_weight (lambda_u: 100 in USB), mu, weak."""
  ranges = {**SemiSupervised.ranges, 'mixup_alpha': checks.NON_NEGATIVE,
            'ramp_fraction': checks.UNIT, 'temperature': checks.POSITIVE,
            'views': checks.POSITIVE_INT}
  defaults = {**DEFAULTS, 'views': 2, 'temperature': 0.5, 'mixup_alpha': 0.5,
              'ramp_fraction': 1 / 64, 'unsup_weight': 100.0}

  @classmethod
  def example_config(cls):
    return {**super().example_config(), 'unsup_weight': 100.0, 'ramp_fraction': 0.5}


  def mix_inputs(self, params, model_state, batch, rng):
    """(mixed images (B + K mu B, ...), mixed targets (.., K classes), lambda', B)."""
    k = int(self.setting('views'))
    keys = jax.random.split(rng, k + 3)
    to_float = lambda key: batch[key].astype(jnp.float32) / 255.0
    x = self.weak(keys[0], to_float('image'))
    views = [self.weak(key, to_float('unlabelled_image')) for key in keys[1:k + 1]]
    probs = [jax.nn.softmax(self.classify(params, model_state, v)[0], -1) for v in views]
    guess = jax.lax.stop_gradient(
        consistency.sharpen(sum(probs) / k, self.setting('temperature')))
    onehot = jax.nn.one_hot(batch['label'], guess.shape[-1])
    inputs = jnp.concatenate([x, *views])
    targets = jnp.concatenate([onehot] + [guess] * k)
    lam = consistency.mixup_lambda(keys[k + 1], self.setting('mixup_alpha'))
    permutation = jax.random.permutation(keys[k + 2], inputs.shape[0])
    mixed_x, mixed_y = consistency.mixup(inputs, targets, lam, permutation)
    return mixed_x, mixed_y, lam, x.shape[0]

  def loss_fn(self, params, model_state, batch, rng):
    mixed_x, mixed_y, lam, b = self.mix_inputs(params, model_state, batch, rng)
    logits_x, features, stats = self.classify(params, model_state, mixed_x[:b])
    logits_u, _, _ = self.classify(params, model_state, mixed_x[b:])   # statistics frozen
    sup = jnp.mean(consistency.cross_entropy(logits_x, mixed_y[:b]))
    unsup = jnp.mean(consistency.mse_probs(logits_u, mixed_y[b:]))
    ramp = consistency.linear_rampup(model_state['step'], self.facts.num_steps,
                                     self.setting('ramp_fraction'))
    out = self.output(sup_loss=sup, unsup_loss=unsup, unsup_scale=ramp, batch_stats=stats,
                      logits_lb=logits_x, features_lb=features, batch=batch,
                      metrics={'ramp': ramp, 'mixup_lambda': lam})
    return out
