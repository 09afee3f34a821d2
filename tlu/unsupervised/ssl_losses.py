"""Non-contrastive self-supervised losses: BYOL, SimSiam, Barlow Twins, VICReg.

Every function takes the two views' embeddings of one batch, (N, d) each, row n of
both being the same image, and returns a scalar float32 (computed in float32 whatever
the input dtype). Stop-gradients and target networks are the caller's (the methods
in `tlu/methods/`).

Barlow Twins and VICReg use statistics over the batch dimension (means, standard
deviations, cross-correlations). They are written over the global batch: inside a
`jax.jit` whose inputs are sharded on the `data` mesh axis, GSPMD reduces across
devices, so the statistics are those of the whole batch, as the papers' implementations
gather them across accelerators (Barlow Twins' all-reduce of the cross-correlation,
VICReg's all-gather of the embeddings).
"""

import jax
import jax.numpy as jnp

from tlu.ops import l2_normalize

# BatchNorm1d(affine=False)'s epsilon in the Barlow Twins reference implementation.
BARLOW_TWINS_EPS = 1e-5


def _check_pair(z1, z2, name):
  if z1.shape != z2.shape or z1.ndim != 2:
    raise ValueError(f'{name} expects two (N, d) arrays of the same shape, got '
                     f'{z1.shape} and {z2.shape}.')


def _matmul(a, b):
  # HIGHEST: exact f32 products on accelerators whose default f32 matmul rounds inputs.
  return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def normalized_mse(q, z):
  """BYOL's loss for one view pair (Grill et al. 2020, eq. 2).

  L = mean_n || q_n / ||q_n|| - z_n / ||z_n|| ||^2 = mean_n (2 - 2 cos(q_n, z_n)).

  Args:
    q: (N, d) online predictions; z: (N, d) target projections (the caller stops
      their gradient).

  Returns:
    () float32.
  """
  _check_pair(q, z, 'normalized_mse')
  q = l2_normalize(q.astype(jnp.float32))
  z = l2_normalize(z.astype(jnp.float32))
  return jnp.mean(jnp.sum(jnp.square(q - z), axis=-1))


def negative_cosine(p, z):
  """SimSiam's D(p, z) (Chen & He 2021, eq. 1 and Algorithm 1): -mean_n cos(p_n, z_n).

  Args:
    p: (N, d) predictor outputs; z: (N, d) projections (the caller applies stop-gradient).

  Returns:
    () float32 in [-1, 1].
  """
  _check_pair(p, z, 'negative_cosine')
  p = l2_normalize(p.astype(jnp.float32))
  z = l2_normalize(z.astype(jnp.float32))
  return -jnp.mean(jnp.sum(p * z, axis=-1))


def cross_correlation(z1, z2, eps=BARLOW_TWINS_EPS):
  """Barlow Twins' cross-correlation matrix (Zbontar et al. 2021, eq. 2), (d, d) float32.

  Each view's embeddings are normalised along the batch, z <- (z - mean) / sqrt(var + eps)
  with the biased variance (BatchNorm without affine, as the reference implementation),
  and C = z1^T z2 / N: the Pearson correlation of dimension i of view 1 with dimension j
  of view 2 over the batch (eq. 2; eps guards a constant dimension).
  """
  _check_pair(z1, z2, 'cross_correlation')
  n = z1.shape[0]

  def batch_normalise(z):
    z = z.astype(jnp.float32)
    z = z - jnp.mean(z, axis=0)
    return z * jax.lax.rsqrt(jnp.mean(jnp.square(z), axis=0) + eps)

  return _matmul(batch_normalise(z1).T, batch_normalise(z2)) / n


def barlow_twins(z1, z2, off_diagonal_weight, eps=BARLOW_TWINS_EPS):
  """Barlow Twins' loss (Zbontar et al. 2021, eq. 1 and Algorithm 1).

  L = sum_i (1 - C_ii)^2 + lambda sum_i sum_{j != i} C_ij^2, C = `cross_correlation`.

  Args:
    z1, z2: (N, d) projector outputs of the two views (global batch).
    off_diagonal_weight: lambda >= 0 (the paper: 5e-3).

  Returns:
    (loss () float32, {'on_diagonal': sum (1 - C_ii)^2, 'off_diagonal': sum_{i != j} C_ij^2}).
  """
  c = cross_correlation(z1, z2, eps)
  on_diagonal = jnp.sum(jnp.square(1.0 - jnp.diagonal(c)))
  off_diagonal = jnp.sum(jnp.square(c)) - jnp.sum(jnp.square(jnp.diagonal(c)))
  loss = on_diagonal + off_diagonal_weight * off_diagonal
  return loss, jax.lax.stop_gradient({'on_diagonal': on_diagonal, 'off_diagonal': off_diagonal})


def vicreg(z1, z2, invariance_weight, variance_weight, covariance_weight, gamma=1.0, eps=1e-4):
  """VICReg's loss (Bardes, Ponce & LeCun 2022, eq. 1-6 and Algorithm 1).

  With n the batch size and d the embedding width:
    invariance  s(Z, Z') = mean over n and d of (z - z')^2   (eq. 5 as Algorithm 1's mse_loss)
    variance    v(Z) = 1/d sum_j max(0, gamma - sqrt(Var(z^j) + eps))   (eq. 1-2, Var unbiased)
    covariance  c(Z) = 1/d sum_{i != j} C(Z)_ij^2, C(Z) = 1/(n-1) sum_b (z_b - zbar)(z_b - zbar)^T
                                                                          (eq. 3-4)
    loss = lambda s(Z, Z') + mu [v(Z) + v(Z')] + nu [c(Z) + c(Z')]     (eq. 6)

  Args:
    z1, z2: (N, d) expander (projector) outputs of the two views (global batch), N >= 2.
    invariance_weight, variance_weight, covariance_weight: lambda, mu, nu (paper: 25, 25, 1).
    gamma: the target standard deviation (1); eps: the variance's stabiliser (1e-4).

  Returns:
    (loss () float32, {'invariance': s, 'variance': v(Z) + v(Z'), 'covariance': c(Z) + c(Z')}).
  """
  _check_pair(z1, z2, 'vicreg')
  n, d = z1.shape
  z1, z2 = z1.astype(jnp.float32), z2.astype(jnp.float32)
  invariance = jnp.mean(jnp.square(z1 - z2))

  def variance_and_covariance(z):
    z = z - jnp.mean(z, axis=0)
    cov = _matmul(z.T, z) / (n - 1)                       # (d, d), diagonal = Var(z^j)
    std = jnp.sqrt(jnp.diagonal(cov) + eps)
    variance = jnp.mean(jax.nn.relu(gamma - std))
    covariance = (jnp.sum(jnp.square(cov)) - jnp.sum(jnp.square(jnp.diagonal(cov)))) / d
    return variance, covariance

  v1, c1 = variance_and_covariance(z1)
  v2, c2 = variance_and_covariance(z2)
  loss = (invariance_weight * invariance + variance_weight * (v1 + v2) +
          covariance_weight * (c1 + c2))
  return loss, jax.lax.stop_gradient({'invariance': invariance, 'variance': v1 + v2,
                                      'covariance': c1 + c2})
