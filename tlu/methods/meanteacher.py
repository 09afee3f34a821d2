"""Mean Teacher (Tarvainen & Valpola 2017, "Mean teachers are better role models"): the
student's prediction on one view of an unlabelled image is pulled to the prediction of a
teacher, the exponential moving average of the student, on another view.

Implemented (section 2, USB's semilearn/algorithms/meanteacher): loss = l_s + lambda_u r(t)
l_u, l_u = mean_b (1/K) ||softmax(f_theta(A(u_b))) - softmax(f_theta'(a(u_b)))||^2 (MSE),
teacher on the weak view a (no gradient), student on the strong view A; r(t) the linear
ramp (USB) or the sigmoid exp(-5 (1 - t)^2) (the paper's appendix B) over ramp_fraction
of the run; after every step theta' <- alpha_t theta' + (1 - alpha_t) theta with
alpha_t = min(1 - 1/(t + 1), alpha) (the reference code). The student's BatchNorm
statistics move on the labelled pass only (USB freezes them on the unlabelled passes);
the teacher runs in training mode on the student's statistics, which it does not change.
(USB's file scores the teacher's logits as the student's, so its l_u has no gradient;
this is the paper's loss.) Method state (`extra['teacher']`): the teacher's params.
"""

import jax

from tlu import checks
from tlu.methods import METHODS
from tlu.semisup import consistency
from tlu.semisup.method import DEFAULTS, SemiSupervised, setting
from tlu.unsupervised.momentum import ema_update


@METHODS.register('meanteacher')
class MeanTeacher(SemiSupervised):
  """config: teacher_momentum alpha in [0, 1] (0.999), ramp in ('linear', 'sigmoid')
  ('linear'), ramp_fraction in [0, 1] (0.4), mu, unsup_weight, weak, strong."""
  ranges = {**SemiSupervised.ranges, 'ramp_fraction': checks.UNIT,
            'teacher_momentum': checks.UNIT}
  defaults = {**DEFAULTS, 'teacher_momentum': 0.999, 'ramp': 'linear', 'ramp_fraction': 0.4}

  @classmethod
  def example_config(cls):
    return {**super().example_config(), 'teacher_momentum': 0.9, 'ramp': 'sigmoid'}

  @classmethod
  def check(cls, config):
    super().check(config)   # the values' ranges: `ranges`
    if setting(config, 'ramp', cls.defaults) not in consistency.RAMPS:
      raise ValueError(f'method.ramp={config.ramp!r} must be one of {tuple(consistency.RAMPS)}')

  def init_extra(self, variables, rng):
    del rng   # the teacher starts as a copy of the student
    return {'teacher': variables['params']}

  def teacher_logits(self, model_state, images):
    """The teacher's logits (N, K), training-mode BatchNorm, no gradient."""
    out, _ = self.model.apply(
        {'params': model_state['extra']['teacher'], 'batch_stats': model_state['batch_stats']},
        images, train=self.mode, heads=('head',), mutable=['batch_stats'])
    return jax.lax.stop_gradient(out['head'])

  def loss_fn(self, params, model_state, batch, rng):
    x, u_w, u_s = self.weak_strong(batch, rng)
    logits_lb, features, stats = self.classify(params, model_state, x)
    logits_s, _, _ = self.classify(params, model_state, u_s)   # statistics kept frozen
    targets = jax.nn.softmax(self.teacher_logits(model_state, u_w), -1)
    unsup = consistency.mse_probs(logits_s, targets).mean()
    ramp = consistency.RAMPS[self.setting('ramp')](model_state['step'], self.facts.num_steps,
                                                   self.setting('ramp_fraction'))
    return self.output(sup_loss=self.supervised_loss(logits_lb, batch), unsup_loss=unsup,
                       unsup_scale=ramp, batch_stats=stats, logits_lb=logits_lb,
                       features_lb=features, batch=batch, metrics={'ramp': ramp})

  def after_update(self, state):
    """The teacher follows the updated student (alpha of the step just taken)."""
    alpha = consistency.teacher_decay(state.step, self.setting('teacher_momentum'))
    teacher = ema_update(state.extra['teacher'], state.params, alpha)
    return state.replace(extra={**state.extra, 'teacher': teacher})
