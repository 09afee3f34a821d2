"""MCD: maximum classifier discrepancy (Saito, Watanabe, Ushiku & Harada, 2018, CVPR,
"Maximum Classifier Discrepancy for Unsupervised Domain Adaptation").

Two classifiers F1 (`head`) and F2 (`head2`) on one feature generator G (`backbone`)
play a minimax game over the discrepancy of their target predictions (section 3.2),
d(p1, p2) = 1/K sum_k |p1k - p2k| (eq. 1), averaged over the target batch. Each step
has three update phases (`tlu.methods.phases`), each on a fresh forward pass at the
parameters the one before left:
  A  'source'    G, F1, F2:  min CE(F1) + CE(F2) + entropy_weight (H(p1) + H(p2))       (eq. 2)
  B  'maximise'  F1, F2:     min CE(F1) + CE(F2) + entropy_weight (H(p1) + H(p2))
                                 - domain_weight d(p1, p2)                              (eq. 3)
  C  'minimise'  G:          min domain_weight d(p1, p2), num_k times                  (eq. 4)
CE on the labelled source batch, p1, p2 the softmax of F1, F2 on the target batch, and H
TLlib's class-balance entropy -1/K sum_k log(mean_i p_ik + 1e-6) of the target batch
(`entropy` in `tllib/alignment/mcd.py`, not the per-example entropy).

Transcribes the Transfer-Learning-Library (`tllib/alignment/mcd.py`: classifier_discrepancy,
entropy, ImageClassifierHead; `examples/.../mcd.py`: the three steps, one joint pass on the
concatenated source + target batch, num_k = 4, trade-offs 0.3 / 0.03 on digits). Deviations:
the heads are Dense(width) -> BN -> ReLU -> Dense(width) -> BN -> ReLU -> Dense(classes)
without TLlib's two Dropout(0.5); every phase has its own optimizer state from the run's
optimizer (TLlib: SGD without momentum for G, shared by steps A and C, SGD momentum 0.9 for
F1 and F2), and each of the num_k generator updates is its own phase ('minimise',
'minimise2', ...), so each keeps its own state and the schedule runs over train steps;
an augmentation is drawn afresh per phase (TLlib augments once per iteration). The model
is evaluated with F1 (`head`).
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS, paired
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.methods.phases import Phase
from tlu.models import heads as heads_lib

HEADS = ('head', 'head2')   # F1 (the one evaluated) and F2
EPSILON = 1e-6   # TLlib's, inside the class-balance entropy's log


def classifier_discrepancy(p1, p2):
  """Eq. 1 averaged over the batch: mean |p1 - p2| over (N, K) probabilities -> ()."""
  return jnp.mean(jnp.abs(p1 - p2))


def class_entropy(p):
  """TLlib's MCD entropy of (N, K) probabilities: -mean_k log(mean_i p_ik + 1e-6) -> ()."""
  return -jnp.mean(jnp.log(jnp.mean(p, axis=0) + EPSILON))


def source_objective(logits1_s, logits2_s, labels, p1_t, p2_t, entropy_weight):
  """Step A's loss: CE(F1) + CE(F2) on the source + entropy_weight (H(p1_t) + H(p2_t))."""
  ce1, _ = paired.source_terms(logits1_s, labels)
  ce2, _ = paired.source_terms(logits2_s, labels)
  return ce1 + ce2 + entropy_weight * (class_entropy(p1_t) + class_entropy(p2_t))


@METHODS.register('mcd')
class MCD(Method):
  """Phases A, B, C (module docstring); the logged 'loss' is step A's.

  config: width >= 1 (hidden width of both heads; TLlib's bottleneck_dim 1024),
  domain_weight >= 0 (TLlib's trade_off), entropy_weight >= 0 (trade_off_entropy),
  num_k >= 1 (generator updates per step), batch_norm 'joint' (TLlib) | 'per_domain'.
  batch: {'image': (B, H, W, C) uint8 source, 'label': (B,), 'target_image': (B, H, W, C)}.
  """
  ranges = {'domain_weight': checks.NON_NEGATIVE, 'entropy_weight': checks.NON_NEGATIVE,
            'num_k': checks.POSITIVE_INT, 'width': checks.POSITIVE_INT}
  inputs = 'paired'

  @classmethod
  def example_config(cls):
    return {'width': 8, 'domain_weight': 1.0, 'entropy_weight': 0.01, 'num_k': 2,
            'batch_norm': 'joint'}

  @classmethod
  def check(cls, config):
    paired.check_batch_norm(config)   # the values' ranges: `ranges`

  @classmethod
  def heads(cls, config, num_classes):
    dims = (int(config.width), int(config.width), int(num_classes))
    return {name: heads_lib.mlp(dims, batch_norm=True) for name in HEADS}

  @classmethod
  def update_phases(cls, config):
    minimise = tuple(Phase('minimise' if k == 0 else f'minimise{k + 1}', ('backbone',),
                           'minimise_loss') for k in range(config.num_k))
    return (Phase('source', ('backbone',) + HEADS, 'source_loss'),
            Phase('maximise', HEADS, 'maximise_loss')) + minimise

  def _terms(self, params, model_state, batch, rng):
    """(source objective, discrepancy, metrics, batch_stats, outputs) of one forward pass."""
    out_s, out_t, batch_stats = paired.forward(self, params, model_state, batch, rng, HEADS)
    p1, p2 = (jax.nn.softmax(out_t[h].astype(jnp.float32), -1) for h in HEADS)
    source = source_objective(out_s['head'], out_s['head2'], batch['label'], p1, p2,
                              self.config.entropy_weight)
    discrepancy = classifier_discrepancy(p1, p2)
    metrics = {'source_accuracy': paired.source_terms(out_s['head'], batch['label'])[1],
               'source_accuracy2': paired.source_terms(out_s['head2'], batch['label'])[1],
               'discrepancy': discrepancy}
    return source, discrepancy, metrics, batch_stats, paired.outputs(out_s, out_t)

  def _output(self, loss, terms):
    _, _, metrics, batch_stats, outputs = terms
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics, outputs=outputs)

  def source_loss(self, params, model_state, batch, rng):
    terms = self._terms(params, model_state, batch, rng)
    return self._output(terms[0], terms)

  def maximise_loss(self, params, model_state, batch, rng):
    terms = self._terms(params, model_state, batch, rng)
    return self._output(terms[0] - self.config.domain_weight * terms[1], terms)

  def minimise_loss(self, params, model_state, batch, rng):
    terms = self._terms(params, model_state, batch, rng)
    return self._output(self.config.domain_weight * terms[1], terms)
