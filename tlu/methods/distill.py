"""SimCLRv2's distillation (Chen, Kornblith, Swersky, Norouzi & Hinton 2020, "Big
Self-Supervised Models are Strong Semi-Supervised Learners", section 2, eq. 2): a student
learns the teacher's predictions on unlabelled images.

  L_distill = - sum_i sum_y P^T(y | x_i; tau) log P^S(y | x_i; tau),
  P(y | x; tau) = softmax(f(x) / tau),

P^T of the teacher's frozen parameters (no gradient reaches them), over unlabelled images
x_i. Here: the mean over the mu B unlabelled images of a batch (eq. 2 sums; the mean keeps
lr and batch apart), no tau^2 factor (eq. 2 has none), and
  loss = label_weight * mean_b CE(y_b, f_S(x_b)) + unsup_weight * L_distill,
the paper's "weighted combination" with the labelled examples (label_weight 0: eq. 2 alone,
its setting for the distillation results). Teacher and student see the same weak view of
each unlabelled image (the paper: the same augmented image); the student's BatchNorm
statistics move on one pass over [labelled; unlabelled] (USB's use_cat), the teacher runs
in inference mode on its own running statistics.

The teacher (`teacher`: a run directory, `teacher_step`: its checkpoint step, default the
latest) is opened as a stage's `source` / `source_step` is (`tlu.transfer.pretrained`):
its config.json's `model` builds it, any architecture (a bigger one than the student's),
with a classifier head `head` of the task's K classes. `teacher=''` distils from the
student's own starting model (after the stage's `source` transplant): SimCLRv2's
self-distillation, student and teacher of one architecture. Method state:
`extra['teacher']` = the teacher's {'params', 'batch_stats'} (backbone and head),
checkpointed, so resume is exact.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from tlu import checks
from tlu.methods import METHODS
from tlu.models import build_model, heads as heads_lib
from tlu.semisup import consistency
from tlu.semisup.method import DEFAULTS, SemiSupervised, setting
from tlu.train.checkpoint import CheckpointError
from tlu.transfer.pretrained import PretrainedError, load_pretrained, source_config

KEPT = ('backbone', 'head')   # the teacher's subtrees a prediction reads


def distillation_loss(student_logits, teacher_logits, temperature=1.0):
  """Eq. 2 over N images: mean_i - sum_y softmax(t_i / tau)_y log softmax(s_i / tau)_y.

  student_logits, teacher_logits: (N, K); the teacher's side gets no gradient. Returns ().
  """
  targets = jax.nn.softmax(jax.lax.stop_gradient(teacher_logits) / temperature, -1)
  return jnp.mean(consistency.cross_entropy(student_logits / temperature, targets))


@functools.lru_cache(maxsize=2)
def open_teacher(directory, step):
  """(variables {'params', 'batch_stats'} of `KEPT` as host arrays, teacher Model, step) of
  the run in `directory`; PretrainedError naming what is missing or damaged."""
  variables, model_cfg, step = load_pretrained(directory, step)
  params = variables['params']
  kernel = [x for x in jax.tree.leaves(params.get('head', {})) if np.ndim(x) == 2]
  if 'backbone' not in params or not kernel:
    raise PretrainedError(f'{directory} has no classifier head "head" on a backbone')
  method = source_config(directory).get('method') or {}
  model = build_model(model_cfg, {'head': heads_lib.classifier(
      kernel[0].shape[-1], method.get('head_l2_scale', 0.0))})
  keep = lambda tree: {k: v for k, v in tree.items() if k in KEPT}
  return ({'params': keep(params), 'batch_stats': keep(variables['batch_stats'])}, model,
          step)


@METHODS.register('distill')
class Distill(SemiSupervised):
  """config: teacher (a run directory, '' : the student's starting model), teacher_step
  (None: the latest), temperature tau > 0 (1.0, the paper's best), label_weight >= 0 (0),
  mu, unsup_weight, weak (the view both models see), strong (unread)."""
  ranges = {**SemiSupervised.ranges, 'label_weight': checks.NON_NEGATIVE,
            'temperature': checks.POSITIVE, 'teacher_step': checks.NON_NEGATIVE_INT}
  defaults = {**DEFAULTS, 'teacher': '', 'teacher_step': None, 'temperature': 1.0,
              'label_weight': 0.0}

  @classmethod
  def example_config(cls):
    return {**super().example_config(), 'temperature': 2.0, 'label_weight': 0.5}

  @classmethod
  def check(cls, config):
    super().check(config)   # the values' ranges: `ranges`
    teacher = setting(config, 'teacher', cls.defaults)
    if not isinstance(teacher, str):
      raise ValueError(f'method.teacher={teacher!r} must be a run directory')
    if teacher:
      try:
        open_teacher(teacher, setting(config, 'teacher_step', cls.defaults))
      except PretrainedError as e:
        raise ValueError(f'teacher run {teacher}: {e}') from None

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.temperature = float(self.setting('temperature'))
    self.label_weight = float(self.setting('label_weight'))
    self.teacher_dir = self.setting('teacher')
    self.teacher_model = (open_teacher(self.teacher_dir, self.setting('teacher_step'))[1]
                          if self.teacher_dir else self.model)

  def init_extra(self, variables, rng):
    """extra['teacher']: the teacher run's variables, or a copy of the starting student's."""
    del rng
    if not self.teacher_dir:
      keep = lambda tree: {k: v for k, v in tree.items() if k in KEPT}
      return {'teacher': {'params': keep(variables['params']),
                          'batch_stats': keep(variables.get('batch_stats', {}))}}
    teacher, _, _ = open_teacher(self.teacher_dir, self.setting('teacher_step'))
    self.check_fit(teacher)
    return {'teacher': jax.tree.map(jnp.asarray, teacher)}

  def check_fit(self, teacher):
    """CheckpointError unless the teacher takes the task's images and predicts its K classes."""
    image = jax.ShapeDtypeStruct((1,) + tuple(self.facts.image_shape), jnp.float32)
    try:
      out = jax.eval_shape(lambda v, x: self.teacher_model.apply(v, x, heads=('head',)),
                           teacher, image)
    except Exception as e:  # pylint: disable=broad-except  (flax raises many kinds)
      raise CheckpointError(f'teacher run {self.teacher_dir} does not take images of shape '
                            f'{tuple(self.facts.image_shape)} ({str(e).splitlines()[0][:120]})'
                            ) from None
    classes = out['head'].shape[-1]
    if self.facts.num_classes and classes != self.facts.num_classes:
      raise CheckpointError(f'teacher run {self.teacher_dir} predicts {classes} classes; the '
                            f'task has {self.facts.num_classes}')

  def teacher_logits(self, model_state, images):
    """The frozen teacher's logits (N, K): inference mode, its own statistics, no gradient."""
    out = self.teacher_model.apply(model_state['extra']['teacher'], images, heads=('head',))
    return jax.lax.stop_gradient(out['head'])

  def loss_fn(self, params, model_state, batch, rng):
    k_lb, k_u = jax.random.split(rng)
    x = self.weak(k_lb, batch['image'].astype(jnp.float32) / 255.0)
    u_w = self.weak(k_u, batch['unlabelled_image'].astype(jnp.float32) / 255.0)
    logits, features, stats = self.classify(params, model_state, jnp.concatenate([x, u_w]))
    b = x.shape[0]
    logits_lb, logits_u = logits[:b], logits[b:]
    teacher = self.teacher_logits(model_state, u_w)
    distill = distillation_loss(logits_u, teacher, self.temperature)
    sup = self.supervised_loss(logits_lb, batch)
    agreement = jnp.mean((jnp.argmax(logits_u, -1) == jnp.argmax(teacher, -1))
                         .astype(jnp.float32))
    out = self.output(sup_loss=sup, unsup_loss=distill, batch_stats=stats,
                      logits_lb=logits_lb, features_lb=features[:b], batch=batch,
                      metrics={'teacher_agreement': agreement})
    return out.replace(loss=self.label_weight * sup + self.unsup_weight * distill)
