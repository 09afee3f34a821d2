"""SHOT: source hypothesis transfer (Liang, Hu & Feng, 2020, ICML, "Do we really need
to access the source data?"). Source-free: it starts from a trained source model and
reads unlabelled target images only.

The source classifier (the "hypothesis", `head`) is kept fixed by the config's
freezing spec `(('head/.*', None),)` and the feature extractor is adapted so that
target features land where the source classifier is confident and every class is
used:
  - information maximisation (IM, eq. 2-3): L_ent + L_div = mean_i H(p_i) - H(mean_i p_i),
  - plus beta * cross-entropy to pseudo-labels from SHOT's clustering (eq. 4-6),
    recomputed on the host before the first step and after every epoch and kept in
    the train state (`extra['pseudo_labels']`), so a resumed run trains on the same ones.
beta = 0 is SHOT-IM. The source model must have been trained with label smoothing
(0.1; eq. 1).

Deviation from the paper's network: SHOT's source model is backbone -> bottleneck
(Dense 256 + BN) -> weight-normalised linear classifier; here the frozen hypothesis is
the plain Dense `head` on the backbone features.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.ops import l2_normalize
from tlu.train import mesh as mesh_lib
from tlu.unsupervised import kmeans as kmeans_lib

EPSILON = 1e-5  # SHOT's epsilon inside the logs


def information_maximization(logits, epsilon=EPSILON):
  """SHOT's IM loss (eq. 2-3): mean per-example entropy minus the entropy of the mean.

  logits: (N, K). Returns (loss (), {'entropy': mean_i H(p_i), 'diversity': H(mean_i p_i)}).
  """
  p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  entropy = jnp.mean(-jnp.sum(p * jnp.log(p + epsilon), axis=-1))
  p_mean = jnp.mean(p, axis=0)
  diversity = -jnp.sum(p_mean * jnp.log(p_mean + epsilon))
  return entropy - diversity, {'entropy': entropy, 'diversity': diversity}


def cluster_pseudo_labels(features, logits, rounds=1):
  """SHOT's self-supervised pseudo-labels (section 3.3, eq. 4-6) by nearest centroid.

  1. Features get a constant 1 appended and are L2-normalised (as in the reference
     code), so Euclidean nearest-centroid is cosine nearest-centroid.
  2. Initial class centroids are the softmax-weighted means, c_k = sum_i p_ik x_i /
     sum_i p_ik (eq. 4).
  3. Each round is one Lloyd step of `tlu.unsupervised.kmeans` from the unit-normalised
     centroids (hard centroids, eq. 6). The labels are the cosine nearest of the last
     centroids. An empty class takes a far point (k-means' rule) where the reference
     code would leave a zero centroid.

  features: (N, F); logits: (N, K). Returns (labels (N,) int32 numpy, centroids (K, F + 1)).
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


@METHODS.register('shot')
class SHOT(Method):
  """Loss = im_weight * (L_ent + L_div) + beta * CE(head(f(x)), pseudo-label(x)).

  config: beta >= 0 (0.3 in the paper, 0.1 in its digit runs; 0: SHOT-IM), im_weight >= 0,
  cluster_rounds >= 0 (hard-centroid rounds). batch: {'image': (B, H, W, C) uint8 target
  images, 'index': (B,) their positions in the target split}.
  """
  ranges = {'beta': checks.NON_NEGATIVE, 'cluster_rounds': checks.NON_NEGATIVE_INT,
            'im_weight': checks.NON_NEGATIVE}
  inputs = 'indexed'
  from_source = True

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.host_every = self.facts.epoch_steps
    self._classify = jax.jit(lambda params, f: self.model.apply(
        {'params': params}, 'head', f, method='apply_head'))

  @classmethod
  def example_config(cls):
    return {'beta': 0.3, 'im_weight': 1.0, 'cluster_rounds': 1}

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes)}

  def init_extra(self, variables, rng):
    del variables, rng
    return {'pseudo_labels': jnp.zeros((self.facts.num_examples,), jnp.int32)}

  def host_update(self, state, host):
    """SHOT's clustered labels of every target training image from the current model.

    Their accuracy against the target train labels is logged (split 'target_train')
    as a diagnostic and used for nothing else.
    """
    features, true_labels = host.features(state, 'train')
    logits = self._classify(state.params, features)
    labels, _ = cluster_pseudo_labels(features, logits, self.config.cluster_rounds)
    labels = jax.device_put(labels.astype(np.int32), mesh_lib.replicated(host.mesh))
    accuracy = float(np.mean(np.asarray(labels) == true_labels))
    return (state.replace(extra={**state.extra, 'pseudo_labels': labels}),
            {'target_train': {'pseudo_label_accuracy': accuracy}})

  def loss_fn(self, params, model_state, batch, rng):
    out, batch_stats = self.forward(params, model_state, self.images(batch, rng), ('head',))
    logits = out['head']
    im, parts = information_maximization(logits)
    pseudo = model_state['extra']['pseudo_labels'][batch['index']]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, pseudo).mean()
    loss = self.config.im_weight * im + self.config.beta * ce
    metrics = {'im_loss': im, 'pseudo_ce': ce, **parts,
               'pseudo_agreement': jnp.mean(jnp.argmax(logits, -1) == pseudo)}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics, outputs=out)
