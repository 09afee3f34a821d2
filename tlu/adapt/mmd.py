"""Kernel two-sample statistics of DAN and JAN, as the Transfer-Learning-Library computes them.

- Gaussian kernels whose bandwidth follows the batch: sigma^2 = alpha * mean_ij
  ||x_i - x_j||^2 over the concatenated source + target batch (no gradient through
  sigma), k(x_i, x_j) = exp(-||x_i - x_j||^2 / (2 sigma^2)); a layer's kernel is the
  sum over its alphas (MK-MMD with equal kernel weights beta_u); a kernel with
  a fixed `sigma` instead (JAN's softmax layer).
- MK-MMD (Long et al. 2015, DAN) and JMMD (Long et al. 2017, JAN):
  sum(K * W) + 2 / (B - 1) with K the (2B, 2B) kernel matrix (the product over
  layers for JMMD) and W the estimator's weights (`index_matrix`): the unbiased
  quadratic estimate (diagonals left out) or DAN's linear-time unbiased estimate
  over the pairs (i, i+1). The constant 2 / (B - 1) makes up for the missing
  diagonal of the quadratic estimate so the loss is >= 0; it has no gradient.
"""

import jax
import jax.numpy as jnp
import numpy as np

DAN_ALPHAS = (0.125, 0.25, 0.5, 1.0, 2.0)   # 2^k, k = -3..1 (TLlib's DAN and JAN scripts)
JAN_SOFTMAX_SIGMA = 0.92                      # JAN's fixed kernel on the softmax outputs


def squared_distances(x):
  """(N, F) -> (N, N) ||x_i - x_j||^2 (exact zeros on the diagonal)."""
  x = x.astype(jnp.float32)
  return jnp.sum(jnp.square(x[None, :, :] - x[:, None, :]), axis=-1)


def gaussian_kernels(x, alphas=DAN_ALPHAS, sigma=None):
  """Sum of Gaussian kernel matrices of the rows of x (N, F) -> (N, N).

  alphas: bandwidths relative to the batch's mean squared distance (sigma^2 = alpha *
  mean d^2, without gradient); sigma: one fixed bandwidth instead (alphas ignored).
  """
  d2 = squared_distances(x)
  if sigma is not None:
    return jnp.exp(-d2 / (2.0 * sigma * sigma))
  mean = jax.lax.stop_gradient(jnp.mean(d2))
  return sum(jnp.exp(-d2 / (2.0 * a * mean)) for a in alphas)


def index_matrix(batch_size, linear):
  """The (2B, 2B) weights W of the MMD estimate (rows/columns: B source, then B target).

  Quadratic: 1 / (B (B - 1)) within a domain off the diagonal, -1 / B^2 across.
  Linear: 1 / B on (s_i, s_i+1) and (t_i, t_i+1), -1 / B on (s_i, t_i+1) and (s_i+1, t_i),
  indices modulo B.
  """
  b = batch_size
  w = np.zeros((2 * b, 2 * b), np.float32)
  if linear:
    i = np.arange(b)
    j = (i + 1) % b
    w[i, j] = w[i + b, j + b] = 1.0 / b
    w[i, j + b] = w[j, i + b] = -1.0 / b
  else:
    off = 1.0 - np.eye(b, dtype=np.float32)
    w[:b, :b] = w[b:, b:] = off / (b * (b - 1))
    w[:b, b:] = w[b:, :b] = -1.0 / (b * b)
  return w


def _estimate(kernel_matrix, batch_size, linear):
  if batch_size < 2:
    raise ValueError(f'MMD needs a batch of at least 2 per domain, got {batch_size}')
  w = jnp.asarray(index_matrix(batch_size, linear))
  return jnp.sum(kernel_matrix * w) + 2.0 / (batch_size - 1)


def mk_mmd(z_s, z_t, alphas=DAN_ALPHAS, linear=False):
  """DAN's multi-kernel MMD of source z_s and target z_t activations, both (B, F) -> ()."""
  k = gaussian_kernels(jnp.concatenate([z_s, z_t]), alphas)
  return _estimate(k, z_s.shape[0], linear)


def jmmd(layers_s, layers_t, kernels, linear=False):
  """JAN's joint MMD: the kernel matrix is the product over layers of each layer's kernel.

  layers_s, layers_t: sequences of (B, F_l) activations; kernels: one (alphas, sigma)
  pair per layer, as `gaussian_kernels` takes them. Returns ().
  """
  k = 1.0
  for z_s, z_t, (alphas, sigma) in zip(layers_s, layers_t, kernels):
    k = k * gaussian_kernels(jnp.concatenate([z_s, z_t]), alphas, sigma)
  return _estimate(k, layers_s[0].shape[0], linear)
