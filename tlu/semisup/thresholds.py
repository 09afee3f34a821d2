"""Which unlabelled examples a pseudo-label counts for: the FixMatch family's masks and weights.

Every rule is a pure, jit-able function. A stateful one takes its state (a dict of arrays,
kept in the method state `extra` so resume is exact) and the batch's class probabilities
and returns `(new_state, mask)`; `init_*` gives the state before the first step. The
update order is USB's (microsoft/Semi-supervised-learning, semilearn/algorithms/<name>/
utils.py): FlexMatch masks with the state *before* the batch, FreeMatch and SoftMatch
with the state *after* it. probs: (N, K) class probabilities of the weakly augmented
unlabelled images (no gradient); a mask is (N,) float32 in [0, 1].
"""

import jax
import jax.numpy as jnp


def fixed_mask(probs, threshold):
  """FixMatch (Sohn et al. 2020, eq. 4): 1[max_c p_c >= tau], (N, K) -> (N,) float32."""
  return (jnp.max(probs, -1) >= threshold).astype(jnp.float32)


# ------------------------------------------------------------------ FlexMatch


def init_flexmatch(num_unlabelled, num_classes):
  """selected_label (U,) int32, -1 = not yet predicted above tau; classwise_acc (K,) = 0."""
  return {'selected_label': jnp.full((num_unlabelled,), -1, jnp.int32),
          'classwise_acc': jnp.zeros((num_classes,), jnp.float32)}


def flexmatch_mask(state, probs, index, threshold, warmup=True):
  """Curriculum pseudo-labelling (Zhang et al. 2021, FlexMatch, eqs. 6, 7, 11).

  The learning effect of class c is sigma_c = #{u: selected_label[u] = c}, normalised
  by max_c sigma_c (warmup=False) or by max(max_c sigma_c, #unused) (warmup=True, eq. 11:
  the unused examples count as a class); the mask is p_max >= M(beta_c) tau with the
  convex M(x) = x / (2 - x) (eq. 7), beta of the state before this batch. Afterwards the
  examples with p_max >= tau record their argmax, and beta is recomputed unless every
  example is still unused (or all carry one class). With beta = 0 at the start every
  example passes (USB's behaviour).

  index: (N,) int positions of the batch's unlabelled examples; distinct within a batch.
  Returns (state, mask (N,)).
  """
  acc = state['classwise_acc']
  max_probs, max_idx = jnp.max(probs, -1), jnp.argmax(probs, -1).astype(jnp.int32)
  beta = acc[max_idx]
  mask = (max_probs >= threshold * (beta / (2.0 - beta))).astype(jnp.float32)
  selected = state['selected_label']
  selected = selected.at[index].set(jnp.where(max_probs >= threshold, max_idx,
                                              selected[index]))
  counts = jnp.bincount(selected + 1, length=acc.shape[0] + 1).astype(jnp.float32)
  top = jnp.max(counts) if warmup else jnp.max(counts[1:])
  new_acc = counts[1:] / jnp.maximum(top, 1.0)
  acc = jnp.where(jnp.max(counts) < selected.shape[0], new_acc, acc)
  return {'selected_label': selected, 'classwise_acc': acc}, mask


# ------------------------------------------------------------------ FreeMatch


def init_freematch(num_classes):
  """p_model (K,) = 1/K, label_hist (K,) = 1/K, time_p () = 1/K (USB's start)."""
  uniform = jnp.full((num_classes,), 1.0 / num_classes, jnp.float32)
  return {'p_model': uniform, 'label_hist': uniform, 'time_p': jnp.float32(1.0 / num_classes)}


def freematch_mask(state, probs, momentum, use_quantile=False, clip_thresh=False):
  """Self-adaptive thresholds (Wang et al. 2023, FreeMatch, eqs. 5-8).

  Global: tau_t = m tau_{t-1} + (1 - m) mean(p_max) (eq. 5; the 0.8-quantile with
  use_quantile, clipped to [0, 0.95] with clip_thresh, as USB offers); local:
  p~_t = m p~_{t-1} + (1 - m) mean(p) (eq. 6); also the EMA histogram of argmax labels
  (for the fairness term). Mask: p_max >= MaxNorm(p~_t)[argmax] tau_t (eqs. 7, 8), with
  the state after this batch. Returns (state, mask (N,)).
  """
  m = momentum
  max_probs, max_idx = jnp.max(probs, -1), jnp.argmax(probs, -1)
  stat = jnp.quantile(max_probs, 0.8) if use_quantile else jnp.mean(max_probs)
  time_p = m * state['time_p'] + (1 - m) * stat
  if clip_thresh:
    time_p = jnp.clip(time_p, 0.0, 0.95)
  p_model = m * state['p_model'] + (1 - m) * jnp.mean(probs, 0)
  hist = jnp.bincount(max_idx, length=probs.shape[-1]).astype(jnp.float32)
  label_hist = m * state['label_hist'] + (1 - m) * hist / jnp.sum(hist)
  mod = p_model / jnp.max(p_model)
  mask = (max_probs >= time_p * mod[max_idx]).astype(jnp.float32)
  return {'p_model': p_model, 'label_hist': label_hist, 'time_p': time_p}, mask


def _inverse_or_zero(x):
  return jnp.where(x > 0, 1.0 / jnp.where(x > 0, x, 1.0), 0.0)


def freematch_fairness(mask, logits_strong, p_model, label_hist):
  """Self-adaptive fairness L_f (FreeMatch eq. 11) on the masked strong-view predictions.

  L_f = sum_c SumNorm(p~ / h~)_c log SumNorm(p̄ / h̄)_c over the examples with mask 1,
  p̄ their mean softmax, h̄ the histogram of their argmax (normalised), p~ and h~ the
  EMA class probabilities and label histogram of `freematch_mask`; 1/0 counts as 0.
  As in USB the term is added to the loss as written (the paper's -H(.,.)); only
  p̄ carries gradient. 0 when no example is masked in.
  logits_strong: (N, K); mask: (N,) in {0, 1}. Returns ().
  """
  w = mask.astype(jnp.float32)
  n = jnp.sum(w)
  prob_s = jax.nn.softmax(logits_strong, -1)
  k = logits_strong.shape[-1]
  hist_s = jnp.bincount(jnp.argmax(prob_s, -1), weights=w, length=k) / jnp.maximum(n, 1.0)
  model = jax.lax.stop_gradient(p_model * _inverse_or_zero(label_hist))
  model = model / jnp.sum(model)
  mean_s = jnp.sum(w[:, None] * prob_s, 0) / jnp.maximum(n, 1.0)
  mean_s = mean_s * jax.lax.stop_gradient(_inverse_or_zero(hist_s))
  mean_s = mean_s / jnp.maximum(jnp.sum(mean_s), 1e-30)
  loss = jnp.sum(model * jnp.log(mean_s + 1e-12))
  return jnp.where(n > 0, loss, 0.0)


# ------------------------------------------------------------------ SoftMatch


def init_softmatch(num_classes):
  """p_model (K,) (set from the first batch), seen () int32, mu () = 1/K, var () = 1."""
  return {'p_model': jnp.full((num_classes,), 1.0 / num_classes, jnp.float32),
          'seen': jnp.int32(0), 'mu': jnp.float32(1.0 / num_classes), 'var': jnp.float32(1.0)}


def uniform_alignment(state, probs, momentum):
  """Uniform alignment (Chen et al. 2023, SoftMatch, eq. 10; USB's DistAlignEMAHook).

  p_model = mean(p) on the first batch, then m p_model + (1 - m) mean(p);
  aligned = Normalize(p * (1/K + 1e-6) / (p_model + 1e-6)). Returns (state, (N, K)).
  """
  mean = jnp.mean(probs, 0)
  p_model = jnp.where(state['seen'] > 0, momentum * state['p_model'] + (1 - momentum) * mean,
                      mean)
  target = 1.0 / probs.shape[-1]
  aligned = probs * (target + 1e-6) / (p_model + 1e-6)
  aligned = aligned / jnp.sum(aligned, -1, keepdims=True)
  return {**state, 'p_model': p_model, 'seen': state['seen'] + 1}, aligned


def softmatch_weights(state, probs, momentum, n_sigma=2.0):
  """Truncated Gaussian weights (SoftMatch eqs. 7, 8; USB's SoftMatchWeightingHook).

  mu_t = m mu_{t-1} + (1 - m) mean(p_max), var_t = m var_{t-1} + (1 - m) Var(p_max)
  (unbiased); lambda(p) = exp(-(min(p_max - mu_t, 0))^2 / (2 var_t / n_sigma^2)): 1 above
  the mean, a Gaussian tail below. probs: (N, K), N >= 2. Returns (state, weights (N,)).
  """
  m = momentum
  max_probs = jnp.max(probs, -1)
  mu = m * state['mu'] + (1 - m) * jnp.mean(max_probs)
  var = m * state['var'] + (1 - m) * jnp.var(max_probs, ddof=1)
  weights = jnp.exp(-jnp.minimum(max_probs - mu, 0.0) ** 2 / (2 * var / n_sigma ** 2))
  return {**state, 'mu': mu, 'var': var}, weights
