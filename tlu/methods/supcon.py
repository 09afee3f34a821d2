"""Supervised contrastive learning (Khosla et al. 2020, "Supervised Contrastive Learning",
eq. 2, L^sup_out): the contrastive loss of SimCLR with every other view of the same class
as a positive. Over the 2N views I of a batch (two augmented views per image, the
projections z l2-normalised),

  L = mean_{i in I} -1/|P(i)| sum_{p in P(i)} log( exp(z_i . z_p / tau)
                                                   / sum_{a in A(i)} exp(z_i . z_a / tau) ),

A(i) = I \\ {i}, P(i) = {p in A(i): label_p = label_i} (never empty: the other view of
image i). Eq. 2 sums over the anchors; the mean (the reference code's) keeps the scale
independent of the batch size. With all labels distinct it is NT-Xent (SimCLR eq. 1).
Written over the global batch (GSPMD gathers the projections across devices).
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.ops import l2_normalize


def supcon_loss(z, labels, temperature):
  """L^sup_out (eq. 2, mean over anchors) of M views z (M, d) with labels (M,) int.

  Every anchor needs a positive (another view with its label). Returns (loss () float32,
  {'contrastive_accuracy': fraction of anchors whose most similar other view has their
  label}).
  """
  z = l2_normalize(z.astype(jnp.float32))
  m = z.shape[0]
  logits = jnp.matmul(z, z.T, precision=jax.lax.Precision.HIGHEST) / temperature
  others = ~jnp.eye(m, dtype=bool)
  logits = jnp.where(others, logits, -jnp.inf)
  log_prob = logits - jax.nn.logsumexp(logits, axis=1, keepdims=True)
  positives = (labels[:, None] == labels[None, :]) & others
  mean_log_prob_pos = (jnp.sum(jnp.where(positives, log_prob, 0.0), axis=1) /
                       jnp.maximum(jnp.sum(positives, axis=1), 1))
  nearest = jnp.argmax(logits, axis=1)
  accuracy = jnp.mean((labels[nearest] == labels).astype(jnp.float32))
  return -jnp.mean(mean_log_prob_pos), {'contrastive_accuracy': jax.lax.stop_gradient(accuracy)}


@METHODS.register('supcon')
class SupCon(Method):
  """config: temperature > 0 (0.1 in the paper); projector: widths of the projection MLP,
  e.g. (2048, 128). batch: {'image': (N, H, W, C) uint8, 'label': (N,) int}: the labels
  choose the positives. Two views of the method's augmentation.
  """
  ranges = {'projector': checks.WIDTHS, 'temperature': checks.POSITIVE}
  inputs = 'labelled'

  @classmethod
  def example_config(cls):
    return {'temperature': 0.1, 'projector': (16, 8)}

  @classmethod
  def heads(cls, config, num_classes):
    del num_classes
    return {'projector': heads_lib.mlp(config.projector)}

  def loss_fn(self, params, model_state, batch, rng):
    view1, view2 = self.views(batch, rng)[:2]
    out, batch_stats = self.forward(params, model_state, jnp.concatenate([view1, view2]),
                                    ('projector',))
    labels = jnp.concatenate([batch['label'], batch['label']])
    loss, metrics = supcon_loss(out['projector'], labels, self.config.temperature)
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics, outputs=out)
