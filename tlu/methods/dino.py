"""DINO (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers",
Algorithm 1 and eq. 3): self-distillation with no labels. A student (backbone, projector,
prototypes) learns to predict, from every view, the output distribution of a momentum
teacher (EMA of the student) on the other global views:

  P_s(x) = softmax(g_s(x) / tau_s),  P_t(x) = softmax((g_t(x) - C) / tau_t),
  loss = sum_{x in global views} sum_{x' in views, x' != x} H(P_t(x), P_s(x')) / #pairs,
  H(a, b) = -sum_k a_k log b_k  (eq. 3; divided by the number of pairs, as Algorithm 1's
  H(t1, s2)/2 + H(t2, s1)/2 and the reference code's mean over loss terms).

Collapse is avoided by centring and sharpening the teacher: C is an EMA of the
teacher's batch mean over the global views, C <- m C + (1 - m) mean(g_t) (Algorithm 1,
m = 0.9), and tau_t = 0.04 < tau_s = 0.1. The teacher follows the student,
theta_t <- l theta_t + (1 - l) theta_s, with l raised from 0.996 to 1 by a cosine schedule.

Multi-crop (Section 3.1): the teacher sees the global views only, the student every
view; an augmentation spec with `views` and `local_crops` (`tlu.data.augment.MultiView`)
gives them, with a backbone that pools globally (`model.pool='global'` for the small
CNN) so the local crops fit. A plain augmentation gives two global views (Algorithm 1).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from tlu import checks
from tlu.data.augment import num_global_views
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.momentum_target import MomentumTarget
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.models.norm import BatchNorm
from tlu.ops import l2_normalize
from tlu.unsupervised.multicrop import forward_views

HEADS = ('projector', 'prototypes')
TARGET = MomentumTarget()   # the teacher follows the whole student


class GeluMLP(nn.Module):
  """DINO's projection MLP: Dense -> [BatchNorm] -> GELU ... -> Dense (the bottleneck).

  (N, F) -> (N, dims[-1]); layers dense{i} (and bn{i}: the reference code's
  `use_bn_in_head`).
  """
  dims: tuple
  batch_norm: bool = False

  @nn.compact
  def __call__(self, x, train=False):
    for i, d in enumerate(self.dims):
      x = nn.Dense(d, name=f'dense{i}')(x)
      if i < len(self.dims) - 1:
        if self.batch_norm:
          x = BatchNorm(momentum=0.9, name=f'bn{i}')(x, train)
        x = nn.gelu(x, approximate=False)
    return x


class WeightNormPrototypes(nn.Module):
  """DINO's last layer: l2-normalised input times weight-normalised columns (g fixed to 1).

  (N, d) -> (N, K): out_nk = x_n . v_k / (||x_n|| ||v_k||), a cosine to each of K
  directions; the gradient flows through both normalisations (torch's `weight_norm`
  with `weight_g` frozen at 1, the reference code's `norm_last_layer=True`).
  Parameter `kernel` (d, K).
  """
  num_prototypes: int

  @nn.compact
  def __call__(self, x, train=False):
    del train
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (x.shape[-1], self.num_prototypes))
    kernel = kernel / jnp.linalg.norm(kernel, axis=0, keepdims=True)
    return l2_normalize(x) @ kernel


def teacher_probabilities(teacher, center, temperature):
  """P_t = softmax((g_t - C) / tau_t) over the last axis: centring and sharpening."""
  return jax.nn.softmax((teacher - center) / temperature, axis=-1)


def dino_loss(student, teacher, center, student_temperature, teacher_temperature):
  """DINO's cross-entropy over pairs of different views (eq. 3 / Algorithm 1's H).

  Args:
    student: (V, N, K) student outputs g_s of V views of N images.
    teacher: (G, N, K) teacher outputs g_t of the first G <= V views (the global ones);
      treated as constants.
    center: (K,) the centre C.
    student_temperature, teacher_temperature: tau_s, tau_t > 0.

  Returns:
    () float32: the mean over the pairs (g, v), g < G, v < V, v != g, of
    mean_n H(P_t(teacher[g, n]), P_s(student[v, n])).
  """
  num_views, num_global = student.shape[0], teacher.shape[0]
  if num_views < 2 or not 1 <= num_global <= num_views:
    raise ValueError(f'dino_loss needs >= 2 views and 1..{num_views} global ones; got '
                     f'{num_views} views, {num_global} global')
  log_p = jax.nn.log_softmax(student.astype(jnp.float32) / student_temperature, axis=-1)
  p_t = jax.lax.stop_gradient(teacher_probabilities(teacher.astype(jnp.float32), center,
                                                    teacher_temperature))
  ce = -jnp.einsum('gnk,vnk->gv', p_t, log_p,
                   precision=jax.lax.Precision.HIGHEST) / student.shape[1]   # (G, V)
  pairs = jnp.arange(num_global)[:, None] != jnp.arange(num_views)[None, :]
  return jnp.sum(jnp.where(pairs, ce, 0.0)) / jnp.sum(pairs)


def update_center(center, teacher, momentum):
  """C <- m C + (1 - m) mean of the teacher outputs (G, N, K) over views and the global batch."""
  batch_center = jnp.mean(teacher.reshape(-1, teacher.shape[-1]).astype(jnp.float32), axis=0)
  return momentum * center + (1.0 - momentum) * batch_center


@METHODS.register('dino')
class DINO(Method):
  """config: projector: widths of the GELU MLP ending in the bottleneck, e.g. (2048, 2048, 256);
  batch_norm: BatchNorm between its layers (optional, default False: the reference code's
  `use_bn_in_head`, which keeps a small CNN's similar features apart enough for the
  sharpened teacher; without it the digits run falls to the uniform collapse);
  num_prototypes: K, the output dimension (65536 in the paper); student_temperature
  (0.1), teacher_temperature (0.04) > 0; center_momentum in [0, 1) (0.9); momentum in
  [0, 1], the base of the teacher's cosine schedule (0.996).

  Method state (`extra`): 'target', the teacher's params and BatchNorm statistics;
  'center' (K,). batch: {'image': (N, H, W, C) uint8}. Metrics: teacher_entropy (mean
  entropy of P_t per image: log K when the teacher is uniform) and teacher_batch_entropy
  (entropy of the batch mean of P_t: near 0 when one dimension dominates), the two
  collapses that centring and sharpening balance.
  """
  ranges = {'center_momentum': checks.BELOW_ONE, 'momentum': checks.UNIT,
            'num_prototypes': checks.POSITIVE_INT, 'projector': checks.WIDTHS,
            'student_temperature': checks.POSITIVE, 'teacher_temperature': checks.POSITIVE}
  inputs = 'images'

  @classmethod
  def example_config(cls):
    return {'projector': (16, 8), 'batch_norm': True, 'num_prototypes': 32,
            'student_temperature': 0.1, 'teacher_temperature': 0.04, 'center_momentum': 0.9,
            'momentum': 0.99}

  @classmethod
  def heads(cls, config, num_classes):
    del num_classes
    return {'projector': heads_lib.Head.of(GeluMLP, dims=tuple(int(d) for d in config.projector),
                                           batch_norm=bool(config.get('batch_norm', False))),
            'prototypes': heads_lib.Head.of(WeightNormPrototypes, input='projector',
                                            num_prototypes=int(config.num_prototypes))}

  def init_extra(self, variables, rng):
    """The teacher starts as the student (Algorithm 1: gt.params = gs.params); C = 0."""
    del rng
    return {'target': TARGET.init(variables),
            'center': jnp.zeros((self.config.num_prototypes,), jnp.float32)}

  def loss_fn(self, params, model_state, batch, rng):
    views = self.views(batch, rng)
    num_global, n = num_global_views(self.augment), views[0].shape[0]
    out, batch_stats = forward_views(self.model, params, model_state['batch_stats'], views,
                                     HEADS, self.mode)
    center = model_state['extra']['center']
    teacher, target = TARGET.forward(self, model_state['extra']['target'],
                                     jnp.concatenate(views[:num_global]), HEADS)
    student = out['prototypes'].reshape(len(views), n, -1)
    teacher = teacher['prototypes'].reshape(num_global, n, -1)
    loss = dino_loss(student, teacher, center, self.config.student_temperature,
                     self.config.teacher_temperature)
    p_t = teacher_probabilities(teacher, center, self.config.teacher_temperature)
    entropy = lambda p: -jnp.sum(p * jnp.log(jnp.maximum(p, 1e-12)), axis=-1)
    metrics = {'teacher_entropy': jnp.mean(entropy(p_t)),
               'teacher_batch_entropy': entropy(jnp.mean(p_t.reshape(-1, p_t.shape[-1]), 0))}
    extra = {'target': target,
             'center': update_center(center, teacher, self.config.center_momentum)}
    outputs = {'features': out['features'][:num_global * n]}
    return LossOutput(loss=loss, batch_stats=batch_stats, extra=extra,
                      metrics=jax.lax.stop_gradient(metrics), outputs=outputs)

  def after_update(self, state):
    """The teacher follows the updated student (momentum after this step)."""
    return TARGET.after_update(self, state)
