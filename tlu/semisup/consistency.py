"""Targets and consistency terms of the semi-supervised methods, pure and jit-able.

Cross-entropy and MSE as USB computes them (semilearn/core/criterions), UDA's Training
Signal Annealing and sharpening, MixMatch's sharpening and MixUp, Mean Teacher's EMA
decay and the consistency ramp-ups. logits and probabilities are (N, K).
"""

import jax
import jax.numpy as jnp


def cross_entropy(logits, targets):
  """Per-example CE: targets (N,) int class indices or (N, K) probabilities -> (N,)."""
  log_p = jax.nn.log_softmax(logits, -1)
  if targets.ndim == logits.ndim:
    return -jnp.sum(targets * log_p, -1)
  return -jnp.take_along_axis(log_p, targets[:, None].astype(jnp.int32), -1)[:, 0]


def mse_probs(logits, target_probs):
  """Per-example mean over classes of (softmax(logits) - target)^2 -> (N,) (USB 'mse')."""
  return jnp.mean((jax.nn.softmax(logits, -1) - target_probs) ** 2, -1)


def masked_mean(loss, mask):
  """mean_i(loss_i mask_i) over all N examples (USB's consistency_loss: not over the mask)."""
  return jnp.mean(loss * mask)


def sharpen(probs, temperature):
  """Sharpen(p, T)_c = p_c^(1/T) / sum_k p_k^(1/T) (MixMatch, Berthelot et al. 2019, eq. 7)."""
  p = probs ** (1.0 / temperature)
  return p / jnp.sum(p, -1, keepdims=True)


def tsa_threshold(schedule, step, total_steps, num_classes):
  """Training Signal Annealing (Xie et al. 2020, UDA, section 3.2): eta_t.

  eta_t = alpha_t (1 - 1/K) + 1/K with alpha_t = t/T ('linear'), exp(5 (t/T - 1)) ('exp'),
  1 - exp(-5 t/T) ('log'); 'none': 1 (every labelled example counts). A labelled example
  counts in the supervised loss while its maximum predicted probability is <= eta_t
  (USB's rule; the paper names the probability of the true class).
  """
  if schedule == 'none':
    return jnp.float32(1.0)
  progress = jnp.asarray(step, jnp.float32) / total_steps
  alpha = {'linear': lambda t: t, 'exp': lambda t: jnp.exp((t - 1) * 5.0),
           'log': lambda t: 1 - jnp.exp(-t * 5.0)}[schedule](progress)
  return alpha * (1 - 1 / num_classes) + 1 / num_classes


TSA_SCHEDULES = ('none', 'linear', 'exp', 'log')


def mixup_lambda(key, alpha):
  """lambda' = max(lambda, 1 - lambda), lambda ~ Beta(alpha, alpha) (MixMatch eqs. 8, 9);
  alpha = 0: 1 (no mixing)."""
  if alpha <= 0:
    return jnp.float32(1.0)
  lam = jax.random.beta(key, alpha, alpha)
  return jnp.maximum(lam, 1 - lam)


def mixup(x, y, lam, permutation):
  """MixUp (MixMatch eqs. 10, 11): lam x + (1 - lam) x[perm], the same for targets y (N, K).

  x: (N, ...) inputs; permutation: (N,) a permutation of range(N). Returns (x', y').
  """
  mix = lambda a: lam * a + (1 - lam) * a[permutation]
  return mix(x), mix(y)


def linear_rampup(step, total_steps, warmup_fraction):
  """clip(t / (warmup_fraction T), 0, 1): USB's unsupervised weight warm-up; 1 if the
  fraction is 0."""
  if warmup_fraction <= 0:
    return jnp.float32(1.0)
  return jnp.clip(jnp.asarray(step, jnp.float32) / (warmup_fraction * total_steps), 0.0, 1.0)


def sigmoid_rampup(step, total_steps, warmup_fraction):
  """exp(-5 (1 - t)^2), t = clip(step / (warmup_fraction T), 0, 1) (Laine & Aila 2017,
  used by Mean Teacher, Tarvainen & Valpola 2017, appendix B); 1 if the fraction is 0."""
  if warmup_fraction <= 0:
    return jnp.float32(1.0)
  t = linear_rampup(step, total_steps, warmup_fraction)
  return jnp.exp(-5.0 * (1.0 - t) ** 2)


RAMPS = {'linear': linear_rampup, 'sigmoid': sigmoid_rampup}


def teacher_decay(step, decay):
  """Mean Teacher's EMA decay at a step: min(1 - 1/(step + 1), alpha) (the reference
  code's update_ema_variables; section 2: theta'_t = alpha theta'_{t-1} + (1 - alpha) theta_t).
  step: the number of optimizer steps taken, 1 after the first."""
  return jnp.minimum(1.0 - 1.0 / (jnp.asarray(step, jnp.float32) + 1.0), decay)
