"""Sinkhorn-Knopp: equipartitioned soft assignments of a batch to prototypes.

SwAV (Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting
Cluster Assignments", Section 3.1, eq. 3-5) computes the codes Q of a batch by
solving  max_Q Tr(Q^T C^T Z) + eps H(Q)  over the transportation polytope (every
prototype gets B/K of the batch, every sample one unit): Q = Diag(u) exp(C^T Z / eps)
Diag(v), with u, v from a few Sinkhorn-Knopp iterations (Cuturi 2013).

It is written over the global batch: inside a `jax.jit` whose inputs are sharded on
the `data` mesh axis, the sums over samples are reduced across devices by GSPMD, as
the reference code's `distributed_sinkhorn` all-reduces them.
"""

import jax
import jax.numpy as jnp


def sinkhorn(scores, epsilon=0.05, num_iters=3):
  """SwAV's codes for (B, K) prototype scores z_b . c_k: (B, K), each row sums to 1.

  The reference code's `distributed_sinkhorn`: Q = exp(scores / eps)^T / sum (K, B);
  `num_iters` times, rows (prototypes) scaled to sum 1/K, then columns (samples) to
  1/B; finally times B, so every sample's code sums to 1 and, as the iterations
  converge, every prototype receives B/K of the batch. Computed in float32, with the
  largest score subtracted first (a common factor, which the normalisation removes).
  No gradient flows through the codes.

  Args:
    scores: (B, K) similarities of B samples to K prototypes (SwAV: cosines in [-1, 1]).
    epsilon: the entropy weight eps > 0 (SwAV: 0.05).
    num_iters: Sinkhorn-Knopp iterations >= 1 (SwAV: 3).

  Returns:
    (B, K) float32 codes q_b (rows sum to 1; columns to about B/K).
  """
  scores = jax.lax.stop_gradient(scores.astype(jnp.float32))
  batch, num_prototypes = scores.shape
  q = jnp.exp((scores - jnp.max(scores)) / epsilon).T   # (K, B)
  q = q / jnp.sum(q)
  for _ in range(num_iters):
    q = q / jnp.sum(q, axis=1, keepdims=True) / num_prototypes
    q = q / jnp.sum(q, axis=0, keepdims=True) / batch
  return (q * batch).T
