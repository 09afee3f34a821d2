"""Unsupervised validators: score a checkpoint without target labels, higher is better.

Each is a pure numpy function of a checkpoint's outputs on the unlabelled target train split
(logits (N, C), features (N, F)) and, for the ones that need labels, on the labelled *source*
splits. They pick the adaptation step when no labelled target data exists (pytorch-adapt's
`validators`, skada's `scorer`; Musgrave, Belongie & Lim 2022 compare them over a million
checkpoints). `SPLITS` names what each reads, in order:

  source_accuracy  accuracy on the labelled source validation split
  entropy          -mean_i H(p_i)                                   (confident predictions)
  im               H(mean_i p_i) - mean_i H(p_i)   (information maximisation: confident, diverse)
  bnm              ||P||_* / N, P the (N, C) softmax matrix (batch nuclear-norm, Cui et al. 2020)
  snd              soft neighbourhood density (Saito et al. 2021)
  dev / devn       -(importance-weighted source validation risk), You et al. 2019 / Musgrave 2022
  class_ami        AMI(k-means clusters of target features, predictions) (Musgrave et al. 2022)
"""

import numpy as np
from scipy.special import logsumexp, softmax

SPLITS = {
    'source_accuracy': ('source_validation',),
    'entropy': ('target_train',),
    'im': ('target_train',),
    'bnm': ('target_train',),
    'snd': ('target_train',),
    'dev': ('target_train', 'source_validation', 'source_train'),
    'devn': ('target_train', 'source_validation', 'source_train'),
    'class_ami': ('target_train',),
}
NAMES = tuple(SPLITS)
LABELLED = tuple(n for n, s in SPLITS.items() if 'source_validation' in s)


def _probs(logits):
  return softmax(np.asarray(logits, np.float64), axis=1)


def _entropies(p):
  """(N,) Shannon entropy (nats) of each row of p (N, C); 0 log 0 = 0."""
  return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)


def source_accuracy(logits, labels):
  """Argmax accuracy of source validation logits (N, C) against labels (N,): the 'simple
  baseline' that Musgrave et al. 2022 find at the state of the art in many settings."""
  return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels)))


def entropy(logits):
  """-1/N sum_i H(softmax(logits_i)) of target logits (N, C)."""
  return float(-np.mean(_entropies(_probs(logits))))


def information_maximization(logits):
  """IM = H(1/N sum_i p_i) - 1/N sum_i H(p_i) of target logits (N, C): diversity minus
  conditional entropy (SHOT's objective, Liang et al. 2020; pytorch-adapt's IMValidator =
  EntropyValidator + DiversityValidator)."""
  p = _probs(logits)
  return float(_entropies(p.mean(axis=0, keepdims=True))[0] - np.mean(_entropies(p)))


def bnm(logits):
  """||softmax(logits)||_* / N: the nuclear norm (sum of singular values) of the (N, C)
  prediction matrix over N (Cui et al. 2020; pytorch-adapt's BNMValidator = -BNMLoss)."""
  p = _probs(logits)
  return float(np.sum(np.linalg.svd(p, compute_uv=False)) / len(p))


def snd(logits, temperature=0.05, chunk=1024):
  """Soft neighbourhood density (Saito et al. 2021, ICCV), as the authors' code computes it
  (VisionLearningGroup/SND, `neighbor_density`):

    q_i = softmax(logits_i) / ||softmax(logits_i)||_2,   S_ij = q_i . q_j / T (T = 0.05),
    S_ii = -1 / T,   P_i = softmax_j(S_ij),   SND = 1/N sum_i -sum_j P_ij log(P_ij + 1e-5).

  The authors keep the checkpoint with the HIGHEST mean entropy of this neighbourhood
  distribution (a dense neighbourhood spreads P_i over many neighbours), so the score is the
  entropy itself, not its negation. The diagonal is kept at -1 / T, as theirs; pytorch-adapt's
  SNDValidator instead drops the diagonal entry from each row (N - 1 columns).
  Rows are processed `chunk` at a time (memory chunk x N).
  """
  q = _probs(logits)
  q = (q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)).astype(np.float32)
  total = 0.0
  for start in range(0, len(q), chunk):   # float32 rows, as the authors' torch code
    s = q[start:start + chunk] @ q.T / np.float32(temperature)
    rows = np.arange(len(s))
    s[rows, start + rows] = -1.0 / temperature
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    total += float(np.sum(-np.sum(p * np.log(p + np.float32(1e-5)), axis=1, dtype=np.float64)))
  return total / len(q)


def class_ami(features, logits, *, seed=0, max_iter=20, normalize=True):
  """AMI between k-means clusters (k = C) of target features (N, F) and the argmax
  predictions of target logits (N, C) (Musgrave et al. 2022, 'ClassAMI'; pytorch-adapt's
  ClassClusterValidator with score_fn=adjusted_mutual_info_score). Rows are L2-normalised
  first unless normalize=False; scikit-learn's KMeans (k-means++, one init, `max_iter`
  Lloyd iterations, `seed`): a fixed seed makes the score a function of the checkpoint."""
  from sklearn.cluster import KMeans  # pylint: disable=import-outside-toplevel
  from sklearn.metrics import adjusted_mutual_info_score  # pylint: disable=import-outside-toplevel
  x = np.asarray(features, np.float64)
  if normalize:
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  clusters = KMeans(n_clusters=np.shape(logits)[1], n_init=1, max_iter=max_iter,
                    random_state=seed).fit_predict(x)
  return float(adjusted_mutual_info_score(np.argmax(logits, axis=1), clusters))


def dev_risk(weights, errors):
  """Control-variate importance-weighted risk (You et al. 2019, ICML, 'Towards Accurate Model
  Selection in Deep Unsupervised Domain Adaptation', eq. 6; thuml/Deep-Embedded-Validation):

    eta = -Cov(w l, w) / Var(w),   R = mean(w l) + eta mean(w) - eta

  weights (N,) importance weights and errors (N,) per-example losses of the source validation
  split; Cov and Var with ddof=1 (numpy's np.cov / np.var(ddof=1) in the authors' code).
  Constant weights (Var 0) give eta = 0, the plain weighted risk."""
  w, l = np.asarray(weights, np.float64), np.asarray(errors, np.float64)
  wl = w * l
  var = np.var(w, ddof=1)
  eta = 0.0 if var <= 0 else -np.cov(wl, w)[0, 1] / var
  return float(np.mean(wl) + eta * np.mean(w) - eta)


def importance_weights(source_features, target_features, validation_features, *, seed=0,
                       max_examples=3000, cs=tuple(np.logspace(-2, 4, 5))):
  """w(x) = p(target | x) / p(source | x) * N_s / N_t on source validation features (M, F).

  A source-vs-target logistic regression (scikit-learn, lbfgs, standardised features) on at
  most `max_examples` seeded rows of each domain, C chosen among `cs` by accuracy on a
  seeded 20% held out (the authors' recipe: 3,000 rows a domain, an 80/20 split, the C grid
  np.logspace(-2, 4, 5), with a linear SVM where this uses logistic regression). Returns (M,).
  """
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  from sklearn.model_selection import train_test_split  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  s, t = (np.asarray(a, np.float64) for a in (source_features, target_features))
  s = s[rng.permutation(len(s))[:max_examples]]
  t = t[rng.permutation(len(t))[:max_examples]]
  x = np.concatenate([s, t])
  y = np.concatenate([np.ones(len(s), int), np.zeros(len(t), int)])   # 1 = source
  mean, std = x.mean(0), x.std(0)
  std = np.where(std > 0, std, 1.0)
  xtr, xte, ytr, yte = train_test_split((x - mean) / std, y, train_size=0.8, random_state=seed)
  xv = (np.asarray(validation_features, np.float64) - mean) / std
  clf = LogisticRegression(max_iter=200, warm_start=True)   # each C starts from the last fit
  p, best_acc = None, -1.0
  for c in sorted(cs):
    clf.set_params(C=float(c)).fit(xtr, ytr)
    acc = float(np.mean(clf.predict(xte) == yte))
    if acc > best_acc:   # the first best C on ties (the authors' list.index(max))
      p, best_acc = clf.predict_proba(xv), acc
  return p[:, 0] / np.maximum(p[:, 1], 1e-12) * len(s) / len(t)


def dev(weights, validation_logits, validation_labels, *, normalize=False,
        error='cross_entropy'):
  """-DEV risk (You et al. 2019) of the source validation logits (M, C) and labels (M,) under
  importance weights (M,) (`importance_weights`): errors are per-example cross-entropy
  (pytorch-adapt's default) or 0/1 (`error='zero_one'`, the authors'). normalize=True: DEVN
  (Musgrave et al. 2022), the weights divided by their maximum before the risk. A risk, so
  the validator is -R."""
  w = np.asarray(weights, np.float64)
  if normalize:
    w = w / np.max(w)
  logits = np.asarray(validation_logits, np.float64)
  labels = np.asarray(validation_labels)
  if error == 'zero_one':
    errors = (np.argmax(logits, axis=1) != labels).astype(np.float64)
  else:
    errors = logsumexp(logits, axis=1) - logits[np.arange(len(labels)), labels]
  return -dev_risk(w, errors)
