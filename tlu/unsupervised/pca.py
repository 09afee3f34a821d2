"""Principal component analysis as two jit-compiled pure functions.

Why eigh of the covariance rather than an SVD of the data: the (d, d) covariance is
one matmul over the rows (cheap for n >> d, and an all-reduce when rows are
sharded), after which the decomposition costs O(d^3) regardless of n. Features are
centred first, so float32 is accurate enough for the leading components.
"""

import functools

import flax.struct
import jax
import jax.numpy as jnp
from jax import lax


@flax.struct.dataclass
class PCAState:
  """A fitted PCA.

  mean: (d,) feature mean.
  components: (n_components, d) orthonormal principal axes, by decreasing variance.
  explained_variance: (n_components,) variance along each axis (divisor n - 1, as
    scikit-learn).
  explained_variance_ratio: (n_components,) fraction of the total variance.
  whiten: if True, `pca_transform` scales each projection to unit variance.
  """
  mean: jax.Array
  components: jax.Array
  explained_variance: jax.Array
  explained_variance_ratio: jax.Array
  whiten: bool = flax.struct.field(pytree_node=False, default=False)


@functools.partial(jax.jit, static_argnames=('n_components', 'whiten'))
def pca_fit(x, n_components, whiten=False):
  """Fits PCA to x: (n, d) -> PCAState with n_components <= d axes.

  Sign convention (deterministic, scikit-learn's `svd_flip(u_based_decision=False)`):
  in each component the entry of largest absolute value is positive.
  """
  x = jnp.asarray(x, jnp.float32)
  n, d = x.shape
  if not 0 < n_components <= d:
    raise ValueError(f'n_components must be in [1, {d}], got {n_components}.')
  mean = jnp.mean(x, axis=0)
  xc = x - mean
  cov = jnp.dot(xc.T, xc, precision=lax.Precision.HIGHEST) / (n - 1)
  eigvals, eigvecs = jnp.linalg.eigh(cov)  # ascending
  order = jnp.argsort(-eigvals)[:n_components]
  components = eigvecs[:, order].T  # (n_components, d)
  variance = jnp.maximum(eigvals[order], 0.0)
  biggest = jnp.argmax(jnp.abs(components), axis=1)
  signs = jnp.sign(components[jnp.arange(n_components), biggest])
  components = components * jnp.where(signs == 0, 1.0, signs)[:, None]
  total = jnp.trace(cov)
  return PCAState(mean=mean, components=components, explained_variance=variance,
                  explained_variance_ratio=variance / total, whiten=whiten)


@jax.jit
def pca_transform(state, x):
  """Projects x (n, d) onto the principal axes: -> (n, n_components).

  With `state.whiten` each output column has unit variance on the fitting data.
  """
  z = jnp.dot(jnp.asarray(x, jnp.float32) - state.mean, state.components.T,
              precision=lax.Precision.HIGHEST)
  if state.whiten:
    z = z / jnp.sqrt(jnp.maximum(state.explained_variance, 1e-12))
  return z


def pca_inverse_transform(state, z):
  """Maps projections z (n, n_components) back to feature space: -> (n, d)."""
  if state.whiten:
    z = z * jnp.sqrt(jnp.maximum(state.explained_variance, 1e-12))
  return jnp.dot(z, state.components, precision=lax.Precision.HIGHEST) + state.mean
