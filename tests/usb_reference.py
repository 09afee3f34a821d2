"""numpy transcriptions of USB's semi-supervised rules (microsoft/Semi-supervised-learning at
1ef4cbe: semilearn/algorithms/hooks/, semilearn/algorithms/<name>/, semilearn/core/criterions/,
semilearn/algorithms/utils/ops.py), kept line by line in USB's style (stateful hook objects,
Counter, boolean indexing), and of the Mean Teacher reference code's EMA and ramp-up.
"""

import math
from collections import Counter
from copy import deepcopy

import numpy as np


def softmax(z):
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def ce_loss(logits, targets):
  """semilearn/core/criterions/cross_entropy.py, reduction='none'."""
  log_pred = np.log(softmax(logits))
  if np.shape(logits) == np.shape(targets):
    return np.sum(-targets * log_pred, 1)
  return -log_pred[np.arange(len(targets)), targets]


def consistency_loss(logits, targets, name='ce', mask=None):
  """semilearn/core/criterions/consistency.py ('ce' and 'mse')."""
  if name == 'mse':
    loss = ((softmax(logits) - targets) ** 2).mean(1)
  else:
    loss = ce_loss(logits, targets)
  if mask is not None:
    loss = loss * mask
  return loss.mean()


def fixed_threshold_mask(probs, p_cutoff):
  """hooks/masking.py FixedThresholdingHook."""
  return (probs.max(-1) >= p_cutoff).astype(np.float64)


class FlexMatchThresholdingHook:
  """flexmatch/utils.py."""

  def __init__(self, ulb_dest_len, num_classes, thresh_warmup=True):
    self.ulb_dest_len, self.num_classes, self.thresh_warmup = ulb_dest_len, num_classes, thresh_warmup
    self.selected_label = np.ones((ulb_dest_len,), np.int64) * -1
    self.classwise_acc = np.zeros((num_classes,))

  def update(self):
    pseudo_counter = Counter(self.selected_label.tolist())
    if max(pseudo_counter.values()) < self.ulb_dest_len:
      if self.thresh_warmup:
        for i in range(self.num_classes):
          self.classwise_acc[i] = pseudo_counter[i] / max(pseudo_counter.values())
      else:
        wo_negative_one = deepcopy(pseudo_counter)
        if -1 in wo_negative_one.keys():
          wo_negative_one.pop(-1)
        for i in range(self.num_classes):
          self.classwise_acc[i] = pseudo_counter[i] / max(wo_negative_one.values())

  def masking(self, probs_x_ulb, idx_ulb, p_cutoff):
    max_probs, max_idx = probs_x_ulb.max(-1), probs_x_ulb.argmax(-1)
    mask = max_probs >= p_cutoff * (self.classwise_acc[max_idx] / (2. - self.classwise_acc[max_idx]))
    select = max_probs >= p_cutoff
    mask = mask.astype(np.float64)
    if idx_ulb[select].size != 0:
      self.selected_label[idx_ulb[select]] = max_idx[select]
    self.update()
    return mask


class FreeMatchThresholingHook:
  """freematch/utils.py."""

  def __init__(self, num_classes, momentum=0.999, use_quantile=False, clip_thresh=False):
    self.m, self.use_quantile, self.clip_thresh = momentum, use_quantile, clip_thresh
    self.p_model = np.ones((num_classes,)) / num_classes
    self.label_hist = np.ones((num_classes,)) / num_classes
    self.time_p = self.p_model.mean()

  def update(self, probs_x_ulb):
    max_probs, max_idx = probs_x_ulb.max(-1), probs_x_ulb.argmax(-1)
    if self.use_quantile:
      self.time_p = self.time_p * self.m + (1 - self.m) * np.quantile(max_probs, 0.8)
    else:
      self.time_p = self.time_p * self.m + (1 - self.m) * max_probs.mean()
    if self.clip_thresh:
      self.time_p = np.clip(self.time_p, 0.0, 0.95)
    self.p_model = self.p_model * self.m + (1 - self.m) * probs_x_ulb.mean(0)
    hist = np.bincount(max_idx.reshape(-1), minlength=self.p_model.shape[0]).astype(np.float64)
    self.label_hist = self.label_hist * self.m + (1 - self.m) * (hist / hist.sum())

  def masking(self, probs_x_ulb):
    self.update(probs_x_ulb)
    max_probs, max_idx = probs_x_ulb.max(-1), probs_x_ulb.argmax(-1)
    mod = self.p_model / np.max(self.p_model, -1)
    return (max_probs >= self.time_p * mod[max_idx]).astype(np.float64)


def _replace_inf_to_zero(val):
  val = np.array(val)
  val[val == float('inf')] = 0.0
  return val


def freematch_entropy_loss(mask, logits_s, prob_model, label_hist):
  """freematch/freematch.py entropy_loss (called only when mask.sum() > 0)."""
  mask = mask.astype(bool)
  logits_s = logits_s[mask]
  prob_s = softmax(logits_s)
  pred_label_s = prob_s.argmax(-1)
  hist_s = np.bincount(pred_label_s, minlength=logits_s.shape[1]).astype(np.float64)
  hist_s = hist_s / hist_s.sum()
  prob_model, label_hist = prob_model.reshape(1, -1), label_hist.reshape(1, -1)
  with np.errstate(divide='ignore'):
    prob_model_scaler = _replace_inf_to_zero(1 / label_hist)
    mean_prob_scaler_s = _replace_inf_to_zero(1 / hist_s)
  mod_prob_model = prob_model * prob_model_scaler
  mod_prob_model = mod_prob_model / mod_prob_model.sum(-1, keepdims=True)
  mod_mean_prob_s = prob_s.mean(0, keepdims=True) * mean_prob_scaler_s
  mod_mean_prob_s = mod_mean_prob_s / mod_mean_prob_s.sum(-1, keepdims=True)
  loss = (mod_prob_model * np.log(mod_mean_prob_s + 1e-12)).sum(1)
  return loss.mean()


class DistAlignEMAHook:
  """hooks/dist_align.py with p_target_type='uniform' (SoftMatch's default)."""

  def __init__(self, num_classes, momentum=0.999):
    self.m = momentum
    self.p_target = np.ones((num_classes,)) / num_classes
    self.p_model = None

  def dist_align(self, probs_x_ulb):
    if self.p_model is None:
      self.p_model = probs_x_ulb.mean(0)
    else:
      self.p_model = self.p_model * self.m + probs_x_ulb.mean(0) * (1 - self.m)
    aligned = probs_x_ulb * (self.p_target + 1e-6) / (self.p_model + 1e-6)
    return aligned / aligned.sum(-1, keepdims=True)


class SoftMatchWeightingHook:
  """softmatch/utils.py, per_class=False."""

  def __init__(self, num_classes, n_sigma=2, momentum=0.999):
    self.n_sigma, self.m = n_sigma, momentum
    self.prob_max_mu_t = 1.0 / num_classes
    self.prob_max_var_t = 1.0

  def masking(self, probs_x_ulb):
    max_probs = probs_x_ulb.max(-1)
    self.prob_max_mu_t = self.m * self.prob_max_mu_t + (1 - self.m) * np.mean(max_probs)
    self.prob_max_var_t = self.m * self.prob_max_var_t + (1 - self.m) * np.var(max_probs, ddof=1)
    mu, var = self.prob_max_mu_t, self.prob_max_var_t
    return np.exp(-((np.minimum(max_probs - mu, 0.0) ** 2) / (2 * var / (self.n_sigma ** 2))))


def uda_tsa(schedule, cur_iter, total_iter, num_classes):
  """uda/uda.py UDA.TSA."""
  training_progress = cur_iter / total_iter
  if schedule == 'linear':
    threshold = training_progress
  elif schedule == 'exp':
    threshold = math.exp((training_progress - 1) * 5)
  elif schedule == 'log':
    threshold = 1 - math.exp((-training_progress) * 5)
  elif schedule == 'none':
    return 1
  return threshold * (1 - 1 / num_classes) + 1 / num_classes


def mixup_one_target(x, y, lam, index):
  """utils/ops.py mixup_one_target with is_bias=True, the Beta draw and randperm given."""
  lam = max(lam, 1 - lam)
  return lam * x + (1 - lam) * x[index], lam * y + (1 - lam) * y[index], lam


def unsup_warmup(it, unsup_warm_up, num_train_iter):
  """mixmatch / meanteacher / pseudolabel: np.clip(it / (warm_up * T), 0, 1)."""
  return float(np.clip(it / (unsup_warm_up * num_train_iter), 0.0, 1.0))


def sigmoid_rampup(current, rampup_length):
  """Mean Teacher's ramps.sigmoid_rampup (Laine & Aila 2017)."""
  if rampup_length == 0:
    return 1.0
  current = np.clip(current, 0.0, rampup_length)
  phase = 1.0 - current / rampup_length
  return float(np.exp(-5.0 * phase * phase))


def mean_teacher_ema(ema, params, alpha, global_step):
  """Mean Teacher's update_ema_variables: alpha = min(1 - 1/(global_step + 1), alpha)."""
  alpha = min(1 - 1 / (global_step + 1), alpha)
  return alpha * ema + (1 - alpha) * params


def sharpen(p, t):
  """mixmatch/mixmatch.py: p ** (1 / T), normalised."""
  p = p ** (1 / t)
  return p / p.sum(-1, keepdims=True)
