"""SHOT: source hypothesis transfer (Liang, Hu & Feng, 2020, ICML, "Do we really need
to access the source data?"), as an objective plus its self-supervised pseudo-labels.

The source model's classifier (the "hypothesis") is kept fixed and only the
feature extractor is adapted on unlabelled target images, so that target features
land where the source classifier is confident and every class is used:
  - information maximisation (IM, eq. 2-3): L_ent + L_div = mean_i H(p_i) - H(mean_i p_i),
  - plus beta * cross-entropy to pseudo-labels from SHOT's clustering (eq. 4-6).
No source data is needed: the source model must only have been trained with label
smoothing (0.1; eq. 1), which the source stage does with `label_smoothing`.

The frozen head is a `tlu.transfer.freeze.masked_optimizer` mask,
`(('head/.*', None),)`, the same object as a linear probe's frozen backbone.

Deviation from the paper's network: SHOT's source model is backbone -> bottleneck
(Dense 256 + BN) -> weight-normalised linear classifier; with `tlu.models.Model`
the frozen hypothesis is the plain Dense `head` on the backbone's 512-d features
(whose last layer, fc + ReLU, plays the bottleneck's part and is adapted).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tlu.ops import l2_normalize
from tlu.unsupervised import kmeans as kmeans_lib

EPSILON = 1e-5  # SHOT's epsilon inside the logs


def information_maximization(logits, epsilon=EPSILON):
  """SHOT's IM loss (eq. 2-3): mean per-example entropy minus the entropy of the mean.

  Minimising the first term makes each prediction confident; maximising the
  entropy of the batch-mean prediction keeps the predictions diverse (no
  collapse onto one class).

  Args:
    logits: (N, K).
    epsilon: added inside the logs, as in the reference code.

  Returns:
    (loss (), {'entropy': mean_i H(p_i) (), 'diversity': H(mean_i p_i) ()}).
  """
  p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  entropy = jnp.mean(-jnp.sum(p * jnp.log(p + epsilon), axis=-1))
  p_mean = jnp.mean(p, axis=0)
  diversity = -jnp.sum(p_mean * jnp.log(p_mean + epsilon))
  return entropy - diversity, {'entropy': entropy, 'diversity': diversity}


def shot(model, beta=0.3, im_weight=1.0, epsilon=EPSILON, augment=None):
  """The SHOT target objective: im_weight * (L_ent + L_div) + beta * CE(pseudo-labels).

  The head must be frozen by the optimizer (see module docstring); the backbone
  runs in train mode, so its BatchNorm statistics move to the target domain.

  Args:
    model: a `tlu.models.Model` with a `head` (the source hypothesis).
    beta: weight of the pseudo-label cross-entropy (0.3 in the paper; 0 = IM only).
    im_weight: weight of the IM loss (1 in the paper).
    epsilon: see `information_maximization`.
    augment: optional on-device `augment(key, images)`.

  Returns:
    loss_fn(params, model_state, batch, rng) -> (loss, aux) with batch
    {'image': (B, H, W, C) uint8 target images, 'pseudo_label': (B,) int}.
  """

  def loss_fn(params, model_state, batch, rng):
    images = batch['image'].astype(jnp.float32) / 255.0
    if augment is not None:
      images = augment(rng, images)
    variables = {'params': params, 'batch_stats': model_state['batch_stats']}
    out, updates = model.apply(variables, images, train=True, mutable=['batch_stats'])
    logits = out['logits']
    im, parts = information_maximization(logits, epsilon)
    pseudo = batch['pseudo_label']
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, pseudo).mean()
    loss = im_weight * im + beta * ce
    metrics = {'im_loss': im, 'pseudo_ce': ce, **parts,
               'pseudo_agreement': jnp.mean(jnp.argmax(logits, -1) == pseudo)}
    return loss, {'batch_stats': updates.get('batch_stats', {}), 'metrics': metrics}

  return loss_fn


def cluster_pseudo_labels(features, logits, rounds=1):
  """SHOT's self-supervised pseudo-labels (section 3.3, eq. 4-6) by nearest centroid.

  1. Features get a constant 1 appended and are L2-normalised (as in the
     reference code), so Euclidean nearest-centroid is cosine nearest-centroid.
  2. Initial class centroids are the softmax-weighted means of those features,
     c_k = sum_i p_ik x_i / sum_i p_ik (eq. 4).
  3. Each round is one Lloyd step of `tlu.unsupervised.kmeans` started from the
     unit-normalised centroids: label every point by its (cosine) nearest
     centroid, move each centroid to the mean of its points (hard centroids,
     eq. 6). The final labels are the cosine nearest of the last centroids.
  A class with no point after an assignment takes a far point (k-means'
  empty-cluster rule) where the reference code would leave a zero centroid.

  Args:
    features: (N, F) backbone features of all target training images.
    logits: (N, K) the model's logits for them.
    rounds: refinement rounds with hard centroids (1 in the paper).

  Returns:
    (labels (N,) int32 numpy, centroids (K, F + 1) unit-norm numpy).
  """
  x = jnp.asarray(features, jnp.float32)
  x = l2_normalize(jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1))
  p = jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1)
  centroids = l2_normalize(p.T @ x / (jnp.sum(p, axis=0)[:, None] + 1e-8))
  k = centroids.shape[0]
  for _ in range(rounds):
    # Only the init array is used: no k-means++ draw, so the key is irrelevant.
    step = kmeans_lib.kmeans(jax.random.key(0), x, k, init=centroids, max_iter=1)
    centroids = l2_normalize(step.centroids)
  labels, _ = kmeans_lib.assign(x, centroids)
  return np.asarray(labels), np.asarray(centroids)
