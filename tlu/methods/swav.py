"""SwAV (Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting
Cluster Assignments", Section 3.1, eq. 1-3, and Algorithm 1): swapped prediction of
cluster codes. Each view's projection z (l2-normalised) is scored against K learnable
prototypes C (unit vectors); the codes q of a global view come from Sinkhorn-Knopp on
the scores of the global batch (equipartition, eps = 0.05, 3 iterations; no gradient),
and every other view predicts them:

  p_v = softmax(z_v^T C / tau),  l(z_v, q_g) = -sum_k q_gk log p_vk,
  loss = mean_g [ sum_{v != g} mean_n l(z_vn, q_gn) / (V - 1) ]

over the global views g (SwAV's `crops_for_assign`) and all V views v, as the reference
code's loop; with two views, eq. 1's l(z_t, q_s) + l(z_s, q_t), halved.

The prototypes are unit vectors: SwAV renormalises them before every forward pass, outside
autograd. Here `after_update` renormalises them after every optimizer step and the forward
pass uses their unit-norm values with the gradient passed straight through (the same
gradient as the reference, also at step 0). `freeze_prototypes_steps` holds them fixed
for the first steps (the reference code freezes them for the first epoch); weight decay of
a decoupled optimizer still applies there. The queue of the paper's small-batch runs is
not implemented.

Multi-crop (Section 3.2): an augmentation spec with `views` and `local_crops`
(`tlu.data.augment.MultiView`), with a backbone that pools globally (`model.pool='global'`
for the small CNN); codes are computed for the global views only. A plain augmentation
gives two views.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from tlu import checks
from tlu.data.augment import num_global_views
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.ops import l2_normalize
from tlu.unsupervised.multicrop import forward_views
from tlu.unsupervised.sinkhorn import sinkhorn

HEADS = ('projector', 'prototypes')


def unit_columns(kernel):
  """(d, K) -> each column scaled to unit L2 norm."""
  return kernel / jnp.maximum(jnp.linalg.norm(kernel, axis=0, keepdims=True), 1e-12)


class Prototypes(nn.Module):
  """SwAV's prototype layer: (N, d) -> (N, K) scores z_n . c_k of the l2-normalised input
  with unit prototypes c_k (the columns of `kernel` (d, K), normalised in the forward pass
  with a straight-through gradient; `SwAV.after_update` keeps the stored ones unit)."""
  num_prototypes: int

  @nn.compact
  def __call__(self, x, train=False):
    del train
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (x.shape[-1], self.num_prototypes))
    kernel = kernel + jax.lax.stop_gradient(unit_columns(kernel) - kernel)
    return l2_normalize(x) @ kernel


def swav_loss(scores, num_global, temperature, epsilon=0.05, num_iters=3):
  """SwAV's swapped prediction over V views (the reference code's loop).

  Args:
    scores: (V, N, K) prototype scores z^T C of V views of N images (the global batch).
    num_global: the first num_global views get codes (1 <= num_global <= V, V >= 2).
    temperature: tau > 0 (0.1); epsilon, num_iters: `sinkhorn`'s (0.05, 3).

  Returns:
    (loss () float32, codes (num_global, N, K)).
  """
  num_views = scores.shape[0]
  if num_views < 2 or not 1 <= num_global <= num_views:
    raise ValueError(f'swav_loss needs >= 2 views and 1..{num_views} with codes; got '
                     f'{num_views} views, {num_global} with codes')
  scores = scores.astype(jnp.float32)
  log_p = jax.nn.log_softmax(scores / temperature, axis=-1)    # (V, N, K)
  codes = jnp.stack([sinkhorn(scores[g], epsilon, num_iters) for g in range(num_global)])
  ce = -jnp.einsum('gnk,vnk->gv', codes, log_p,
                   precision=jax.lax.Precision.HIGHEST) / scores.shape[1]   # (G, V)
  others = jnp.arange(num_global)[:, None] != jnp.arange(num_views)[None, :]
  loss = jnp.mean(jnp.sum(jnp.where(others, ce, 0.0), axis=1) / (num_views - 1))
  return loss, codes


@METHODS.register('swav')
class SwAV(Method):
  """config: projector: widths of the projection MLP (BatchNorm between layers), e.g.
  (2048, 128); num_prototypes: K (3000); temperature: tau > 0 (0.1); epsilon > 0 (0.05);
  sinkhorn_iterations >= 1 (3); freeze_prototypes_steps >= 0 (0: never frozen).

  batch: {'image': (N, H, W, C) uint8}. Metrics: code_entropy (mean entropy of a code, 0
  for hard assignments), prototypes_used (the fraction of prototypes that are the argmax
  of some global view's code: equipartition keeps it high).
  """
  ranges = {'epsilon': checks.POSITIVE, 'freeze_prototypes_steps': checks.NON_NEGATIVE_INT,
            'num_prototypes': checks.POSITIVE_INT, 'projector': checks.WIDTHS,
            'sinkhorn_iterations': checks.POSITIVE_INT, 'temperature': checks.POSITIVE}
  inputs = 'images'

  @classmethod
  def example_config(cls):
    return {'projector': (16, 8), 'num_prototypes': 12, 'temperature': 0.1, 'epsilon': 0.05,
            'sinkhorn_iterations': 3, 'freeze_prototypes_steps': 1}

  @classmethod
  def heads(cls, config, num_classes):
    del num_classes
    return {'projector': heads_lib.mlp(config.projector, batch_norm=True),
            'prototypes': heads_lib.Head.of(Prototypes, input='projector',
                                            num_prototypes=int(config.num_prototypes))}

  def loss_fn(self, params, model_state, batch, rng):
    views = self.views(batch, rng)
    num_global, n = num_global_views(self.augment), views[0].shape[0]
    if self.config.get('freeze_prototypes_steps', 0):
      frozen = model_state['step'] < self.config.freeze_prototypes_steps
      params = {**params, 'prototypes': jax.tree.map(
          lambda w: jnp.where(frozen, jax.lax.stop_gradient(w), w), params['prototypes'])}
    out, batch_stats = forward_views(self.model, params, model_state['batch_stats'], views,
                                     HEADS, self.mode)
    scores = out['prototypes'].reshape(len(views), n, -1)
    loss, codes = swav_loss(scores, num_global, self.config.temperature,
                            self.config.epsilon, self.config.sinkhorn_iterations)
    entropy = -jnp.sum(codes * jnp.log(jnp.maximum(codes, 1e-12)), axis=-1)
    used = jnp.zeros(codes.shape[-1]).at[jnp.argmax(codes, -1).reshape(-1)].set(1.0)
    metrics = {'code_entropy': jnp.mean(entropy), 'prototypes_used': jnp.mean(used)}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=jax.lax.stop_gradient(metrics),
                      outputs={'features': out['features'][:num_global * n]})

  def after_update(self, state):
    """The prototypes back on the unit sphere after the optimizer step."""
    params = {**state.params, 'prototypes': {
        **state.params['prototypes'],
        'kernel': unit_columns(state.params['prototypes']['kernel'])}}
    return state.replace(params=params)
