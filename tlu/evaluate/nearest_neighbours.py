"""k-nearest-neighbour classification on features with cosine similarity.

Why: kNN accuracy needs no training and no hyperparameter search beyond k, so it is
the cheap companion of the linear probe for judging a representation (Wu et al. 2018,
"Unsupervised feature learning via non-parametric instance discrimination", sec. 3.4;
the weighted kNN monitor of solo-learn, DINO and others).

Votes of the k most similar training rows (cosine similarity s):
- 'uniform': weight 1 (majority vote),
- 'distance': weight 1 / (1 - s), scikit-learn's `weights='distance'` with
  `metric='cosine'`; if some neighbours are at distance 0 only they vote,
- 'temperature': weight exp(s / T) (Wu et al. 2018, eq. 8; T = 0.07 as in their paper
  and solo-learn).
Ties are broken deterministically: among equally similar training rows the lower
index is the nearer neighbour (`lax.top_k` is stable), and among classes with equal
votes the smallest label wins (`argmax` takes the first maximum).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

HIGHEST = lax.Precision.HIGHEST
WEIGHTINGS = ('uniform', 'distance', 'temperature')
# Cosine distances at or below this count as an exact match for 'distance' weighting:
# float32 rounding leaves ~1e-7 where float64 would give 0.
_ZERO_DISTANCE = 1e-6


def _normalise(x):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _weights(sims, weighting, temperature):
  """(b, k) similarities of the neighbours -> (b, k) vote weights."""
  if weighting == 'uniform':
    return jnp.ones_like(sims)
  if weighting == 'temperature':
    # Shift by the row maximum (1/T at most) so exp cannot overflow; the argmax of the
    # votes does not change.
    return jnp.exp((sims - sims[:, :1]) / temperature)
  dist = jnp.maximum(1.0 - sims, 0.0)
  exact = dist <= _ZERO_DISTANCE
  return jnp.where(jnp.any(exact, axis=1, keepdims=True), exact.astype(sims.dtype),
                   1.0 / jnp.maximum(dist, _ZERO_DISTANCE))


@functools.partial(jax.jit, static_argnames=('k', 'num_classes', 'weighting', 'chunk'))
def _knn_votes(train, train_labels, test, temperature, k, num_classes, weighting, chunk):
  train, test = _normalise(train), _normalise(test)
  m = test.shape[0]
  n_chunks = -(-m // chunk)
  test = jnp.pad(test, ((0, n_chunks * chunk - m), (0, 0)))  # one tile shape: one compile

  def votes(q):  # (chunk, d) -> (chunk, C); memory O(chunk * n)
    sims, idx = lax.top_k(jnp.dot(q, train.T, precision=HIGHEST), k)
    w = _weights(sims, weighting, temperature)
    return jnp.sum(w[..., None] * jax.nn.one_hot(train_labels[idx], num_classes), axis=1)

  out = lax.map(votes, test.reshape(n_chunks, chunk, -1)).reshape(n_chunks * chunk, num_classes)
  return out[:m]


def knn_votes(train_feats, train_labels, test_feats, k, num_classes, *, weighting='uniform',
              temperature=0.07, chunk_size=None):
  """Per-class vote totals of each test row's k nearest training rows (cosine).

  Args:
    train_feats: (N, D) features.
    train_labels: (N,) int labels in [0, num_classes).
    test_feats: (M, D) features to classify.
    k: number of neighbours, 1 <= k <= N.
    num_classes: C.
    weighting: 'uniform', 'distance' or 'temperature' (module docstring).
    temperature: T of the 'temperature' weighting.
    chunk_size: test rows per tile; memory is O(chunk_size * N). Default keeps the
      similarity tile near 4M floats.

  Returns:
    (M, C) float32 numpy vote totals.
  """
  if weighting not in WEIGHTINGS:
    raise ValueError(f'weighting must be one of {WEIGHTINGS}, got {weighting!r}')
  train = jnp.asarray(train_feats, jnp.float32)
  test = jnp.asarray(test_feats, jnp.float32)
  labels = jnp.asarray(train_labels, jnp.int32).reshape(-1)
  n, m = train.shape[0], test.shape[0]
  if labels.shape[0] != n or test.shape[1:] != train.shape[1:]:
    raise ValueError(f'shapes do not fit: train {train.shape}, labels {labels.shape}, '
                     f'test {test.shape}')
  if not 1 <= k <= n:
    raise ValueError(f'k must be in [1, {n}], got {k}')
  chunk = max(1, min(chunk_size or (1 << 22) // n, m))
  return np.asarray(_knn_votes(train, labels, test, jnp.float32(temperature), k=int(k),
                               num_classes=int(num_classes), weighting=weighting, chunk=chunk))


def knn_classify(train_feats, train_labels, test_feats, k, num_classes, *, weighting='uniform',
                 temperature=0.07, chunk_size=None):
  """(M,) int predictions: the class with the most (weighted) votes; args as `knn_votes`."""
  votes = knn_votes(train_feats, train_labels, test_feats, k, num_classes, weighting=weighting,
                    temperature=temperature, chunk_size=chunk_size)
  return np.argmax(votes, axis=1)


def knn_accuracy(train_feats, train_labels, test_feats, test_labels, k, num_classes, *,
                 weighting='uniform', temperature=0.07, chunk_size=None):
  """Fraction of test rows whose kNN prediction equals test_labels (M,)."""
  pred = knn_classify(train_feats, train_labels, test_feats, k, num_classes,
                      weighting=weighting, temperature=temperature, chunk_size=chunk_size)
  return float(np.mean(pred == np.asarray(test_labels).reshape(-1)))
