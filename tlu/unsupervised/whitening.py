"""W-MSE's hard whitening and loss (Ermolov et al. 2021, "Whitening for Self-Supervised
Representation Learning", Section 3; solo-learn's Whitening2d and wmse_loss_func).

Whitening by Cholesky: for a sub-batch x (n, d), centred x_c = x - mean, covariance
C = x_c^T x_c / (n - 1) shrunk to (1 - eps) C + eps I = L L^T, the whitened rows are
x_c W^T with W = L^{-1}, so their covariance is the identity. W depends on the
batch and is differentiated through (as the paper's and solo-learn's). The sub-batches
of the W-MSE step are drawn by a random permutation of the batch, the same rows of every
view in one sub-batch (solo-learn's training_step), each view whitened on its own.
"""

import jax
import jax.numpy as jnp

from tlu.ops import l2_normalize


def _matmul(a, b):
  return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def whiten(x, eps=0.0):
  """Cholesky whitening of the rows of x (n, d) -> (n, d) float32 (n > d for eps = 0)."""
  x = x.astype(jnp.float32)
  n, d = x.shape
  xc = x - jnp.mean(x, axis=0)
  cov = _matmul(xc.T, xc) / (n - 1)
  cov = (1.0 - eps) * cov + eps * jnp.eye(d, dtype=cov.dtype)
  chol = jnp.linalg.cholesky(cov)
  return jax.scipy.linalg.solve_triangular(chol, xc.T, lower=True).T


def whiten_sub_batches(views, perm, w_size, eps=0.0):
  """views (V, N, d) -> (V, N, d): rows perm[i w:(i + 1) w] of each view whitened together.

  perm: (N,) a permutation of range(N); w_size divides N.
  """
  groups = perm.reshape(-1, w_size)                                   # (N / w, w)
  white = jax.vmap(jax.vmap(lambda x: whiten(x, eps)))(views[:, groups])   # (V, N / w, w, d)
  return jnp.zeros(views.shape, jnp.float32).at[:, groups].set(white)


def wmse_loss(z1, z2):
  """solo-learn's wmse_loss_func (its default, simplified=True): the MSE of l2-normalised
  whitened vectors, 2 - 2 mean_n cos(z1_n, stopgrad(z2_n)). The stop-gradient on z2 is
  solo-learn's (its other branch, and the paper's loss, have none: the same value, not the
  same gradient). z1, z2: (N, d). Returns () float32."""
  z1 = l2_normalize(z1.astype(jnp.float32))
  z2 = l2_normalize(jax.lax.stop_gradient(z2).astype(jnp.float32))
  return 2.0 - 2.0 * jnp.mean(jnp.sum(z1 * z2, axis=-1))


def wmse_objective(views, rng, w_size, w_iter, eps=0.0):
  """The W-MSE step's loss: over w_iter random sub-batchings, the mean over view pairs
  i < j of `wmse_loss` of the whitened views (solo-learn's training_step).

  views: (V, N, d) projections of V >= 2 views; rng: the permutations' key.
  """
  num_views = views.shape[0]
  pairs = [(i, j) for i in range(num_views) for j in range(i + 1, num_views)]
  total = 0.0
  for key in jax.random.split(rng, w_iter):
    z = whiten_sub_batches(views, jax.random.permutation(key, views.shape[1]), w_size, eps)
    total += sum(wmse_loss(z[i], z[j]) for i, j in pairs)
  return total / (w_iter * len(pairs))
