"""Contrastive objectives for unsupervised pretraining.

`nt_xent` is SimCLR's normalised temperature-scaled cross entropy (Chen et al.,
2020, "A Simple Framework for Contrastive Learning of Visual Representations",
eq. 1). It is written over the global batch: inside a `jax.jit` whose inputs
are sharded on the `data` mesh axis, GSPMD gathers the embeddings, so every
anchor sees the negatives of all devices, as the paper's large-batch training
aggregates them across accelerators (its Section 2.2).
"""

import jax
import jax.numpy as jnp

from tlu.ops import l2_normalize


def nt_xent(z1, z2, temperature):
  """SimCLR NT-Xent loss over the 2N views of a batch (Chen et al., 2020, eq. 1).

  With z = [z1; z2] L2-normalised and s_ij = z_i . z_j / temperature, anchor i's
  positive is the other view of the same example, p(i) = (i + N) mod 2N, and

    l_i = -s_{i,p(i)} + log sum_{k != i} exp(s_ik),    loss = mean_i l_i

  over all 2N anchors (the paper's L = 1/(2N) sum_k [l(2k-1, 2k) + l(2k, 2k-1)]).
  Computed in float32 whatever the input dtype, with logsumexp for stability.

  Args:
    z1: (N, d) projections of the first view (any float dtype).
    z2: (N, d) projections of the second view; row n is the same example as z1[n].
    temperature: scalar tau > 0 (SimCLR: 0.5 for CIFAR-10, 0.1 for large batches).

  Returns:
    loss: () float32, mean over the 2N anchors.
    aux: dict of () float32 metrics for logging:
      `contrastive_accuracy`: fraction of anchors whose positive has the highest
        similarity among the 2N - 1 candidates;
      `positive_similarity`: mean cosine similarity of positive pairs;
      `negative_similarity`: mean cosine similarity over all negative pairs.
  """
  if z1.shape != z2.shape or z1.ndim != 2:
    raise ValueError(f'nt_xent expects two (N, d) arrays of the same shape, got '
                     f'{z1.shape} and {z2.shape}.')
  n = z1.shape[0]
  z = l2_normalize(jnp.concatenate([z1, z2], axis=0).astype(jnp.float32))
  # HIGHEST: keep the f32 similarities exact on accelerators whose default f32
  # matmul rounds inputs (TF32 / bf16 passes); the (2N, 2N) product is cheap.
  cosine = jnp.matmul(z, z.T, precision=jax.lax.Precision.HIGHEST)  # (2N, 2N)
  logits = cosine / jnp.asarray(temperature, jnp.float32)

  self_mask = jnp.eye(2 * n, dtype=bool)
  logits = jnp.where(self_mask, -jnp.inf, logits)
  positive = (jnp.arange(2 * n) + n) % (2 * n)  # (2N,)
  positive_logits = jnp.take_along_axis(logits, positive[:, None], axis=1)[:, 0]
  loss = jnp.mean(jax.nn.logsumexp(logits, axis=1) - positive_logits)

  positive_mask = jax.nn.one_hot(positive, 2 * n, dtype=bool)
  negative_mask = ~(self_mask | positive_mask)
  aux = {
      'contrastive_accuracy': jnp.mean(
          (jnp.argmax(logits, axis=1) == positive).astype(jnp.float32)),
      'positive_similarity': jnp.mean(
          jnp.take_along_axis(cosine, positive[:, None], axis=1)),
      'negative_similarity': (jnp.sum(jnp.where(negative_mask, cosine, 0.0)) /
                              jnp.maximum(jnp.sum(negative_mask), 1)),
  }
  return loss, jax.lax.stop_gradient(aux)


def info_nce(q, k, temperature):
  """MoCo v3's contrastive loss (Chen, Xie & He 2021, Algorithm 1, `ctr`).

  q, k L2-normalised; logits = q k^T / tau over the global batch (N, N); the positive
  of query n is key n:  loss = 2 tau * CE(logits, arange(N)). The 2 tau factor is the
  paper's (it makes the gradient scale independent of tau).

  Args:
    q: (N, d) queries (online predictor outputs); k: (N, d) keys (momentum encoder
      outputs, treated as constants by the caller); temperature: tau > 0.

  Returns:
    (loss () float32, {'contrastive_accuracy': fraction of queries whose key ranks first}).
  """
  q = l2_normalize(q.astype(jnp.float32))
  k = l2_normalize(k.astype(jnp.float32))
  logits = jnp.matmul(q, k.T, precision=jax.lax.Precision.HIGHEST) / temperature
  labels = jnp.arange(q.shape[0])
  loss = jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[labels, labels])
  accuracy = jnp.mean((jnp.argmax(logits, axis=1) == labels).astype(jnp.float32))
  return 2.0 * temperature * loss, {'contrastive_accuracy': jax.lax.stop_gradient(accuracy)}


def nnclr_loss(nn, p, temperature):
  """NNCLR's contrastive term (Dwibedi et al. 2021, Section 3.1; solo-learn's nnclr_loss_func).

  Both l2-normalised; logits = nn p^T / tau (N, N) over the global batch; the positive of
  neighbour n is prediction n:  loss = CE(logits, arange(N)), mean over n.

  Args:
    nn: (N, d) nearest neighbours of one view's projections in the support queue (constants);
    p: (N, d) predictor outputs of the other view; temperature: tau > 0 (0.2).

  Returns:
    (loss () float32, {'contrastive_accuracy': fraction of rows whose own prediction ranks first}).
  """
  nn = l2_normalize(nn.astype(jnp.float32))
  p = l2_normalize(p.astype(jnp.float32))
  logits = jnp.matmul(nn, p.T, precision=jax.lax.Precision.HIGHEST) / temperature
  labels = jnp.arange(nn.shape[0])
  loss = jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[labels, labels])
  accuracy = jnp.mean((jnp.argmax(logits, axis=1) == labels).astype(jnp.float32))
  return loss, {'contrastive_accuracy': jax.lax.stop_gradient(accuracy)}


def ressl_loss(q, k, queue, temperature_q, temperature_k):
  """ReSSL's relational loss (Zheng et al. 2021, Section 3; solo-learn's ressl_loss_func).

  The student's and the teacher's similarity distributions over the queue,
    p_i = softmax(q_i . queue^T / tau_q),  t_i = softmax(k_i . queue^T / tau_k) (constant),
  loss = mean_i KL(t_i || p_i) up to the teacher's entropy = mean_i -sum_j t_ij log p_ij.
  q, k are taken as given (the caller l2-normalises them, as solo-learn's forward passes).

  Args:
    q: (N, d) student (online) projections of one view; k: (N, d) teacher (momentum)
      projections of the other view; queue: (Q, d) past teacher projections;
    temperature_q, temperature_k: tau_q > tau_k > 0 (0.1, 0.04: the teacher sharper).

  Returns:
    () float32.
  """
  queue = jax.lax.stop_gradient(queue.astype(jnp.float32))
  logits_q = jnp.matmul(q.astype(jnp.float32), queue.T, precision=jax.lax.Precision.HIGHEST)
  logits_k = jnp.matmul(jax.lax.stop_gradient(k.astype(jnp.float32)), queue.T,
                        precision=jax.lax.Precision.HIGHEST)
  teacher = jax.nn.softmax(logits_k / temperature_k, axis=1)
  return -jnp.mean(jnp.sum(teacher * jax.nn.log_softmax(logits_q / temperature_q, axis=1), 1))
