"""Small array functions that jit-compiled code in several packages shares."""

import jax
import jax.numpy as jnp

_NORM_EPS = 1e-12


def l2_normalize(x):
  """Rows of `x` (last axis) scaled to unit L2 norm; zero rows stay zero (no NaN, finite grads)."""
  sq_norm = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq_norm, _NORM_EPS**2))
