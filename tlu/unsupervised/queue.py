"""A first-in first-out queue of feature rows kept in a method's state (NNCLR's support set,
ReSSL's and MoCo's memory of past keys): pure functions of the (queue, pointer) arrays.

The queue is a (Q, d) array and a () int32 pointer to the oldest row; a batch of N rows
overwrites rows ptr, ptr + 1, ... (mod Q) and the pointer moves by N. With N dividing Q
this is solo-learn's `dequeue_and_enqueue` (which asserts it); a batch larger than the
queue keeps its last Q rows.
"""

import jax
import jax.numpy as jnp

from tlu.ops import l2_normalize


def init_queue(rng, size, dim):
  """(size, dim) random unit rows (solo-learn: F.normalize(torch.randn(Q, d))), pointer 0."""
  return {'queue': l2_normalize(jax.random.normal(rng, (size, dim), jnp.float32)),
          'ptr': jnp.zeros((), jnp.int32)}


def enqueue(state, rows):
  """{'queue' (Q, d), 'ptr' ()} with `rows` (N, d) written at the pointer (stop-gradient)."""
  queue, ptr = state['queue'], state['ptr']
  size = queue.shape[0]
  rows = jax.lax.stop_gradient(rows[-size:]).astype(queue.dtype)
  index = (ptr + jnp.arange(rows.shape[0])) % size
  return {'queue': queue.at[index].set(rows), 'ptr': ((ptr + rows.shape[0]) % size).astype(jnp.int32)}


def nearest_neighbours(z, queue):
  """NNCLR's support-set lookup (Dwibedi et al. 2021, Section 3.1: NN(z, Q) = argmin_q ||z - q||
  over unit vectors, i.e. the largest z . q): (index (N,) int32, queue[index] (N, d)), no gradient.

  z: (N, d) l2-normalised projections; queue: (Q, d) l2-normalised rows.
  """
  scores = jnp.matmul(z, queue.T, precision=jax.lax.Precision.HIGHEST)
  index = jnp.argmax(scores, axis=1)
  return index, jax.lax.stop_gradient(queue[index])
