"""MDD: margin disparity discrepancy (Zhang, Liu, Long & Jordan, 2019, ICML, "Bridging
Theory and Algorithm for Domain Adaptation").

An adversarial classifier f' (`adv_head`) on the features estimates the margin
disparity discrepancy between the domains, and the feature extractor minimises it:
the paper's minimax,
  min_{f, psi}  E_s CE(f(psi(x_s)), y_s) + eta * D_gamma,
  max_{f'}      D_gamma = E_t log(1 - sigma_{h_f(x_t)}(f'(psi(x_t))))
                          - gamma * E_s CE(f'(psi(x_s)), h_f(x_s)),
h_f the main classifier's predicted label and gamma the margin (the target term is
the log of 1 - the adversary's probability, the paper's modified loss). One backward pass does
both through a gradient reversal layer between the features and `adv_head`.

Transcribes the Transfer-Learning-Library (`tllib/alignment/mdd.py`,
ClassificationMarginDisparityDiscrepancy and ImageClassifier, and
`examples/.../mdd.py`): margin 4, trade-off 1, the target log shifted
(log(min(x + 1e-6, 1))), both heads Dense(width) -> ReLU -> Dense(classes) on the
features, one joint pass, the reversal coefficient rising to 0.1. Deviations: no
dropout in the heads; the coefficient follows DANN's schedule in training progress,
grl_max * (2 / (1 + exp(-gamma p)) - 1), p = step / num_steps; TLlib's is 0.1 tanh(i / 2000)
in iterations i (alpha 1 over 1000 iterations), so gamma = num_steps / 1000 gives TLlib's.
"""

import jax
import jax.numpy as jnp
import optax

from tlu import checks
from tlu.adapt.grl import dann_lambda, gradient_reversal
from tlu.methods import METHODS, paired
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib

SHIFT = 1e-6  # TLlib's shift_log offset


def margin_disparity(logits_s, adv_s, logits_t, adv_t, margin):
  """TLlib's ClassificationMarginDisparityDiscrepancy (the value the adversary maximises).

  logits_*: (B, K) of the main head (only their argmax is used), adv_*: (B, K) of the
  adversarial head. Returns mean_i(-margin CE(adv_s_i, h_s_i) + log(min(1 - p'_t_i + 1e-6, 1))),
  p'_t_i the adversary's probability of the main head's target label h_t_i.
  """
  pred_s, pred_t = jnp.argmax(logits_s, -1), jnp.argmax(logits_t, -1)
  source = optax.softmax_cross_entropy_with_integer_labels(adv_s.astype(jnp.float32), pred_s)
  p_t = jnp.take_along_axis(jax.nn.softmax(adv_t.astype(jnp.float32), -1),
                            pred_t[:, None], axis=1)[:, 0]
  target = jnp.log(jnp.minimum(1.0 - p_t + SHIFT, 1.0))
  return jnp.mean(-margin * source + target)


@METHODS.register('mdd')
class MDD(Method):
  """Loss = CE(head(f_s), y_s) - domain_weight * MDD(head, adv_head(GRL_lambda(f))).

  lambda = grl_max * dann_lambda(step / num_steps, gamma): the backbone receives
  -lambda times the adversary's gradient.
  config: margin > 0 (gamma of the paper: 4), domain_weight >= 0 (the trade-off, 1),
  width >= 1 (the hidden width of both heads; 1024 in TLlib), grl_max >= 0 (0.1),
  gamma >= 0 (the schedule's steepness), batch_norm 'joint' | 'per_domain'.
  batch: {'image', 'label', 'target_image'} as DANN's.
  """
  ranges = {'domain_weight': checks.NON_NEGATIVE, 'gamma': checks.NON_NEGATIVE,
            'grl_max': checks.NON_NEGATIVE, 'margin': checks.POSITIVE,
            'width': checks.POSITIVE_INT}
  inputs = 'paired'

  @classmethod
  def example_config(cls):
    return {'margin': 4.0, 'domain_weight': 1.0, 'width': 8, 'grl_max': 0.1, 'gamma': 10.0,
            'batch_norm': 'joint'}

  @classmethod
  def check(cls, config):
    paired.check_batch_norm(config)   # the values' ranges: `ranges`

  @classmethod
  def heads(cls, config, num_classes):
    dims = (int(config.width), int(num_classes))
    return {'head': heads_lib.mlp(dims), 'adv_head': heads_lib.mlp(dims)}

  def loss_fn(self, params, model_state, batch, rng):
    out_s, out_t, batch_stats = paired.forward(self, params, model_state, batch, rng)
    class_loss, source_acc = paired.source_terms(out_s['head'], batch['label'])
    n_s = out_s['features'].shape[0]
    lam = self.config.grl_max * dann_lambda(
        model_state['step'].astype(jnp.float32) / self.facts.num_steps, self.config.gamma)
    features = jnp.concatenate([out_s['features'], out_t['features']])
    adv = self.model.apply({'params': params}, 'adv_head', gradient_reversal(features, lam),
                           method='apply_head')
    disparity = margin_disparity(out_s['head'], adv[:n_s], out_t['head'], adv[n_s:],
                                 self.config.margin)
    loss = class_loss - self.config.domain_weight * disparity
    metrics = {'source_accuracy': source_acc, 'class_loss': class_loss,
               'disparity': disparity, 'lambda': lam,
               'adv_source_agreement': jnp.mean(jnp.argmax(adv[:n_s], -1) ==
                                                jnp.argmax(out_s['head'], -1))}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics,
                      outputs=paired.outputs(out_s, out_t))
