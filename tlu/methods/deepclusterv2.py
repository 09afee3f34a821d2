"""DeepCluster v2 (Caron et al. 2020, "Unsupervised Learning of Visual Features by
Contrasting Cluster Assignments", appendix): SwAV's cross-entropy of prototype scores,
with hard cluster assignments from k-means of a memory bank of past projections instead
of Sinkhorn codes, and the prototypes set to the k-means centroids (not learnt).

Implemented as solo-learn's `DeepClusterV2` (solo/methods/deepclusterv2.py,
solo/losses/deepclusterv2.py, solo/utils/kmeans.py), the maths in
`tlu.unsupervised.deepcluster`: z_v = l2-normalised projector(f(x_v)) of the two views;
H prototype heads C_h (K_h, d) of unit rows; the loss

  loss = mean_h mean_{v, n: a_hn != -1} CE(z_vn C_h^T / tau, a_hn)

against the assignments a_h (one per example, shared by both views), rows without an
assignment ignored (solo-learn's ignore_index=-1). After the loss both views' z (constants)
are written into the memory bank (V, M, d) at the batch's example indices (the 'indexed'
layout). At the start of every epoch but the first (step % epoch_steps == 0, step > 0),
inside the jit step: for each head h, cosine k-means with K_h clusters (`kmeans_iters`
iterations, centroids initialised from K_h random rows) of the memory of view h mod 2,
over the rows written so far (each example's latest projection); the centroids become C_h
and the assignments a_h (-1 for an example never written). Memory, seen marks,
assignments and prototypes are method state (`extra`), checkpointed: resume is exact.

Deviations: the memory is indexed by example, not by position in the epoch, and keeps
every example's latest row: solo-learn clusters the rows of the past epoch only, and an
example its epoch left out (drop_last) gets no assignment; here the training stream's
epochs need not align with passes over the split (epoch_steps * batch_size rows need not
be the split), so an example left out of the past epoch keeps its older row and is
clustered with it; with epochs that cover the split both cluster the same rows. During
the first epoch no example has an assignment and the loss is 0 with zero gradient
(PyTorch's mean over no rows is NaN), so only BatchNorm statistics change then (and the
weights, by weight decay of a decoupled optimizer); the two views go through the backbone
and projector as one batch (solo-learn: one pass per view, BatchNorm statistics per view); the projector is
`tlu.models.heads.mlp` (BatchNorm between layers, none after the last: solo-learn's).
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.ops import l2_normalize
from tlu.unsupervised import deepcluster as dc

NUM_VIEWS = 2   # solo-learn's num_large_crops: the views in the memory and the loss


def head_key(h):
  return f'head_{h}'


@METHODS.register('deepclusterv2')
class DeepClusterV2(Method):
  """config: projector: MLP widths (BatchNorm between layers), e.g. (2048, 128);
  num_prototypes: K_h of each prototype head, e.g. (3000, 3000, 3000); temperature: tau
  > 0 (0.1); kmeans_iters >= 1 (10). Every K_h must be at most the rows an epoch writes
  (epoch_steps * batch_size) and the train split's size.

  batch: {'image': (N, H, W, C) uint8, 'index': (N,) example positions}. Metrics:
  assigned_fraction (the batch's rows with an assignment: 0 in the first epoch, 1 after
  when an epoch covers the split), prototypes_used (the fraction of the first head's
  prototypes that are the argmax of some row of the batch).
  """
  ranges = {'projector': checks.WIDTHS, 'num_prototypes': checks.WIDTHS,
            'temperature': checks.POSITIVE, 'kmeans_iters': checks.POSITIVE_INT}
  inputs = 'indexed'

  @classmethod
  def example_config(cls):
    return {'projector': (16, 8), 'num_prototypes': (4, 3), 'temperature': 0.1,
            'kmeans_iters': 10}


  def __init__(self, config, model, facts, augment=None):
    super().__init__(config, model, facts, augment)
    rows = min(facts.epoch_steps * facts.batch_size, facts.num_examples)
    if max(config.num_prototypes) > rows:
      raise ValueError(f'method.num_prototypes={tuple(config.num_prototypes)} must be at '
                       f'most the {rows} examples an epoch writes into the memory bank')

  @classmethod
  def heads(cls, config, num_classes):
    del num_classes
    return {'projector': heads_lib.mlp(config.projector, batch_norm=True)}

  def init_extra(self, variables, rng):
    del variables
    memory_rng, *proto_rngs = jax.random.split(rng, 1 + len(self.config.num_prototypes))
    dim, num_examples = int(self.config.projector[-1]), int(self.facts.num_examples)
    prototypes = {head_key(h): l2_normalize(jax.random.normal(key, (int(k), dim)))
                  for h, (key, k) in enumerate(zip(proto_rngs, self.config.num_prototypes))}
    return {'memory': dc.init_memory(memory_rng, NUM_VIEWS, num_examples, dim),
            'seen': jnp.zeros((num_examples,), bool),
            'assignments': -jnp.ones((len(self.config.num_prototypes), num_examples),
                                     jnp.int32),
            'prototypes': prototypes}

  def epoch_start(self, extra, rng):
    """k-means of the memory's seen rows: new assignments and prototypes."""
    assignments, centroids = dc.cluster_memory(
        rng, extra['memory'], extra['seen'], tuple(int(k) for k in self.config.num_prototypes),
        int(self.config.kmeans_iters))
    return {**extra, 'assignments': assignments,
            'prototypes': {head_key(h): c for h, c in enumerate(centroids)}}

  def loss_fn(self, params, model_state, batch, rng):
    view_rng, kmeans_rng = jax.random.split(rng)
    extra, step = model_state['extra'], jnp.asarray(model_state['step'])
    starts = (step > 0) & (step % self.facts.epoch_steps == 0)
    extra = jax.lax.cond(starts, lambda e: self.epoch_start(e, kmeans_rng), lambda e: e, extra)
    views = jnp.concatenate(self.views(batch, view_rng)[:NUM_VIEWS])
    out, batch_stats = self.forward(params, model_state, views, ('projector',))
    n, index = batch['index'].shape[0], batch['index']
    z = l2_normalize(out['projector'].astype(jnp.float32)).reshape(NUM_VIEWS, n, -1)
    prototypes = [extra['prototypes'][head_key(h)]
                  for h in range(len(self.config.num_prototypes))]
    logits = [jnp.einsum('vnd,kd->vnk', z, jax.lax.stop_gradient(c),
                         precision=jax.lax.Precision.HIGHEST) for c in prototypes]
    targets = extra['assignments'][:, index]
    loss, assigned = dc.deepclusterv2_loss(logits, targets, self.config.temperature)
    memory, seen = dc.update_memory(extra['memory'], extra['seen'], index, z)
    used = jnp.zeros(prototypes[0].shape[0]).at[jnp.argmax(logits[0], -1).reshape(-1)].set(1.0)
    metrics = {'assigned_fraction': assigned, 'prototypes_used': jnp.mean(used)}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=jax.lax.stop_gradient(metrics),
                      outputs=out, extra={**extra, 'memory': memory, 'seen': seen})
