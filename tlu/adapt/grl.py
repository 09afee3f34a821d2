"""Gradient reversal and the DANN adaptation-factor schedule (Ganin & Lempitsky, 2015).

The gradient reversal layer (GRL) lets one backward pass train the domain
classifier to *separate* the domains while the feature extractor below it is
trained to make them *indistinguishable* (the saddle point of DANN's eq. 9-10):
the forward pass is the identity, the backward pass multiplies the incoming
gradient by -lambda (section 3.2 of the paper, eq. 13).
"""

import jax
import jax.numpy as jnp


@jax.custom_vjp
def _reverse(x, scale):
  del scale
  return x


def _reverse_fwd(x, scale):
  return x, scale


def _reverse_bwd(scale, g):
  # `scale` is a schedule value, not something to learn: its cotangent is zero.
  return -scale.astype(g.dtype) * g, jnp.zeros_like(scale)


_reverse.defvjp(_reverse_fwd, _reverse_bwd)


def gradient_reversal(x, scale=1.0):
  """Identity forward; the gradient w.r.t. x is -scale times the incoming gradient.

  Args:
    x: array of any shape (e.g. (N, F) features).
    scale: scalar lambda >= 0, may be traced (a schedule inside jit); no
      gradient flows into it.

  Returns:
    x, unchanged.
  """
  return _reverse(x, jnp.asarray(scale, jnp.float32))


def dann_lambda(progress, gamma=10.0):
  """DANN's adaptation factor lambda_p = 2 / (1 + exp(-gamma p)) - 1 (the paper's schedule).

  Grows from 0 at progress p = 0 to ~1 at p = 1, so the domain classifier's
  noisy early gradients do not disturb the feature extractor.

  Args:
    progress: training progress in [0, 1] (step / total steps), scalar or array.
    gamma: steepness; 10 in the paper.

  Returns:
    float32 lambda_p, same shape as `progress`.
  """
  p = jnp.asarray(progress, jnp.float32)
  return 2.0 / (1.0 + jnp.exp(-gamma * p)) - 1.0
