"""FlexMatch (Zhang et al. 2021, "FlexMatch: Boosting Semi-Supervised Learning with
Curriculum Pseudo Labeling"): FixMatch with per-class thresholds that follow each class's
learning effect (how many unlabelled examples it has confidently claimed).

Implemented (eqs. 6, 7, 11; USB's semilearn/algorithms/flexmatch): FixMatch's loss with
the mask 1[max q_b >= M(beta_c) tau], M(x) = x / (2 - x), c = argmax q_b, beta from the
per-example record of confident predictions (`tlu.semisup.thresholds.flexmatch_mask`,
with threshold warm-up by default). Method state (`extra`): selected_label (U,) int32
(-1: not yet claimed), classwise_acc (K,), U = the unlabelled examples.
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.fixmatch import FixMatch
from tlu.semisup import consistency, thresholds


@METHODS.register('flexmatch')
class FlexMatch(FixMatch):
  """config: FixMatch's, and thresh_warmup (bool, True: eq. 11's warm-up)."""
  ranges = {**FixMatch.ranges, 'thresh_warmup': checks.FLAG}
  defaults = {**FixMatch.defaults, 'thresh_warmup': True}


  def init_extra(self, variables, rng):
    del rng
    return thresholds.init_flexmatch(self.num_unlabelled, self.num_classes(variables))

  def loss_fn(self, params, model_state, batch, rng):
    logits_lb, logits_w, logits_s, features, stats = self.logits_lb_w_s(
        params, model_state, batch, rng)
    probs = jax.nn.softmax(logits_w, -1)
    extra, mask = thresholds.flexmatch_mask(model_state['extra'], probs,
                                            batch['unlabelled_index'],
                                            self.setting('threshold'),
                                            self.setting('thresh_warmup'))
    unsup = consistency.masked_mean(
        consistency.cross_entropy(logits_s, jnp.argmax(probs, -1)), mask)
    return self.output(sup_loss=self.supervised_loss(logits_lb, batch), unsup_loss=unsup,
                       batch_stats=stats, logits_lb=logits_lb, features_lb=features,
                       batch=batch, mask=mask, extra=extra)
