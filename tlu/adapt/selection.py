"""Which step each validator picks, and how well its scores rank the checkpoints.

A cell's evaluations are the metrics.jsonl rows of split 'test': the target test
'accuracy' and each validator's '<name>_score' (`tlu.evaluators.validator`). A validator
picks the evaluation with its highest score (the latest on ties; a non-finite score never
wins); over all checkpoints of a sweep, `weighted_spearman` says how well its scores order
the target accuracies (Musgrave, Belongie & Lim 2022).
"""

import numpy as np
from scipy.stats import rankdata


def metric(name):
  """The metrics.jsonl name of validator `name`'s score."""
  return f'{name}_score'


def pick(rows, key):
  """The row of `rows` with the highest finite `key` (latest step on ties); None if none."""
  rows = [r for r in rows if key in r and np.isfinite(r[key])]
  return max(rows, key=lambda r: (r[key], r['step'])) if rows else None


def cell_picks(rows, names):
  """{'<name>_selected_step', '<name>_selected_target_test_accuracy'} for each validator of
  `names` that scored some row of `rows` (test-split evaluations)."""
  out = {}
  for name in names:
    best = pick(rows, metric(name))
    if best is not None:
      out[f'{name}_selected_step'] = int(best['step'])
      out[f'{name}_selected_target_test_accuracy'] = float(best['accuracy'])
  return out


def weighted_rank(x, w):
  """Ranks of x (N,) under weights w (N,), ties sharing their group's mean (the WeightedCorr
  package's `_wrank`, which Musgrave et al.'s code calls): a tie group g with n_g members and
  mean weight m_g, after groups of total weight W_<g, has rank W_<g + (n_g + 1) / 2 * m_g."""
  x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
  values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
  del values
  group_w = np.bincount(inverse, weights=w)
  before = np.cumsum(group_w) - group_w
  return (before + (counts + 1) / 2 * group_w / counts)[inverse]


def _weighted_pearson(x, y, w):
  mx, my = np.sum(w * x) / np.sum(w), np.sum(w * y) / np.sum(w)
  cov = lambda a, ma, b, mb: np.sum(w * (a - ma) * (b - mb)) / np.sum(w)
  denominator = np.sqrt(cov(x, mx, x, mx) * cov(y, my, y, my))
  return float(cov(x, mx, y, my) / denominator) if denominator > 0 else float('nan')


def weighted_spearman(scores, accuracies, power=2.0):
  """Weighted Spearman correlation of validator scores (N,) with target accuracies (N,)
  (Musgrave et al. 2022; KevinMusgrave/powerful-benchmarker validator_tests/utils/
  weighted_spearman.py): dense ranks of each, divided by their maximum; each checkpoint
  weighted by max(score rank, accuracy rank) ** power; then the weighted Pearson correlation
  of the weighted ranks (`weighted_rank`). Non-finite scores are set to the lowest finite
  one, as theirs. NaN when either side is constant or there are fewer than 2 checkpoints."""
  s, a = np.array(scores, np.float64), np.asarray(accuracies, np.float64)
  if len(s) < 2 or not np.isfinite(s).any():
    return float('nan')
  s[~np.isfinite(s)] = np.min(s[np.isfinite(s)])
  rs, ra = (rankdata(v, method='dense').astype(np.float64) for v in (s, a))
  w = np.maximum(rs / rs.max(), ra / ra.max()) ** power
  return _weighted_pearson(weighted_rank(s, w), weighted_rank(a, w), w)


def sweep_correlations(rows, names):
  """{'<name>/weighted_spearman'} over `rows`: every checkpoint evaluation of the sweep's
  trained cells that carries both the target accuracy and that validator's score."""
  out = {}
  for name in names:
    pairs = [(r[metric(name)], r['accuracy']) for r in rows
             if metric(name) in r and 'accuracy' in r]
    if len(pairs) >= 2:
      s, a = zip(*pairs)
      out[f'{name}/weighted_spearman'] = weighted_spearman(s, a)
  return out
