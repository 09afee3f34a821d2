"""SCAN's losses (Van Gansbeke et al. 2020, "SCAN: Learning to classify images without
labels"; reference code wvangansbeke/Unsupervised-Classification, losses/losses.py).

Clustering step (Section 3.2, eq. 2), `SCANLoss`: for anchors X and one mined neighbour
k of each, with soft assignments Phi(X) = softmax(logits) (N, C),
  L = -1/N sum_i log <Phi(x_i), Phi(k_i)>  +  lambda sum_c p'_c log p'_c,
  p'_c = 1/N sum_i Phi_c(x_i)  (the batch's mean assignment),
i.e. consistency minus lambda times the entropy H(p') of the mean assignment (lambda =
`entropy_weight`; the reference's default 2.0, its CIFAR / STL / ImageNet configs 5.0).
As in the reference, log <.,.> is clamped at -100 (torch's BCELoss) and p' at 1e-8.

Self-labelling (Section 3.3), `ConfidenceBasedCE`: the weakly augmented anchor's
prediction y_i = argmax Phi(x_i) is a pseudo-label where max Phi(x_i) > threshold (0.99);
the loss is the class-weighted cross-entropy of the strongly augmented anchor's logits,
  L = sum_{i in M} w_{y_i} CE(z_i^strong, y_i) / sum_{i in M} w_{y_i},
with w_c = |M| / #{i in M: y_i = c} for the classes present among the confident M and
1 for the others (`apply_class_balancing`; torch's weighted-mean cross-entropy). Where
the reference raises on an empty M, this returns 0.
"""

import jax
import jax.numpy as jnp
import optax

EPS = 1e-8
LOG_FLOOR = -100.0   # torch.nn.BCELoss clamps its logs here


def scan_loss(anchor_logits, neighbour_logits, entropy_weight=5.0):
  """SCAN's clustering loss. Logits (N, C) each, row i of one the neighbour of row i of
  the other. Returns (total (), consistency (), entropy ()); total = consistency -
  entropy_weight * entropy."""
  anchors = jax.nn.softmax(anchor_logits.astype(jnp.float32), axis=-1)
  positives = jax.nn.softmax(neighbour_logits.astype(jnp.float32), axis=-1)
  similarity = jnp.sum(anchors * positives, axis=-1)
  consistency = -jnp.mean(jnp.maximum(jnp.log(similarity), LOG_FLOOR))
  mean = jnp.maximum(jnp.mean(anchors, axis=0), EPS)
  entropy = -jnp.sum(mean * jnp.log(mean))
  return consistency - entropy_weight * entropy, consistency, entropy


def confidence_ce(weak_logits, strong_logits, threshold=0.99, class_balancing=True):
  """SCAN's self-labelling loss. weak_logits (N, C) give the pseudo-labels (no gradient
  is taken through them here: pass stop_gradient'ed logits), strong_logits (N, C) are
  trained. Returns (loss (), confident fraction (), pseudo-labels (N,) int32)."""
  weak = jax.nn.softmax(weak_logits.astype(jnp.float32), axis=-1)
  confidence = jnp.max(weak, axis=-1)
  target = jnp.argmax(weak, axis=-1).astype(jnp.int32)
  mask = (confidence > threshold).astype(jnp.float32)
  num_classes = weak.shape[-1]
  if class_balancing:
    counts = jnp.zeros((num_classes,), jnp.float32).at[target].add(mask)
    n = jnp.sum(mask)
    weight = jnp.where(counts > 0, n / jnp.maximum(counts, 1.0), 1.0)
  else:
    weight = jnp.ones((num_classes,), jnp.float32)
  ce = optax.softmax_cross_entropy_with_integer_labels(strong_logits.astype(jnp.float32),
                                                       target)
  w = mask * weight[target]
  loss = jnp.sum(w * ce) / jnp.maximum(jnp.sum(w), 1e-12)
  return loss, jnp.mean(mask), target
