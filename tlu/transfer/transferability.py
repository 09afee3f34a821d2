"""Transferability scores: how well a source model will do on a target task, without fine-tuning.

All four read the source model's outputs on the labelled target training images once:
  log_maximum_evidence   LogME (You et al. 2021, ICML, Algorithm 1): the evidence of a
                         Bayesian linear model from features to each one-hot target column,
                         maximised over its prior and noise precisions, per example, mean
                         over classes. Features (N, D).
  leep                   LEEP (Nguyen et al. 2020, ICML, eq. 2): the log-likelihood of the
                         "expected empirical predictor" P(y|x) = sum_z P(y|z) theta(x)_z built
                         from the source classifier's probabilities theta (N, Z).
  negative_conditional_entropy
                         NCE (Tran et al. 2019, ICCV): -H(Y | Z) of the target labels given
                         the source classifier's hard labels z = argmax theta.
  h_score                H-score (Bao et al. 2019, ICIP): tr(cov(f)^+ cov(E[f | y])).
Higher is better for all four; they rank sources, their scales are not comparable across
scores. TLlib's `tllib/ranking/` implements the same (its LogME stops after 11 fixed-point
steps; here iterations run to convergence). `kendall_tau` compares a ranking with the
accuracies fine-tuning reached, and `source_outputs` reads a tlu run directory's features
and classifier probabilities on a dataset split.
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from etils import epath

SCORES = ('logme', 'leep', 'nce', 'h_score')
NEEDS_CLASSIFIER = ('leep', 'nce')


def _classes(labels):
  """labels (N,) of any integers -> (N,) in 0..K-1, K."""
  values, inverse = np.unique(np.asarray(labels).reshape(-1), return_inverse=True)
  return inverse, len(values)


def _class_evidence(y, u, s, n, d, tol=1e-10, max_iter=10_000):
  """LogME's maximised evidence / N for one target column y (N,), given the thin SVD
  F = u diag(s) v^T of the features (D = d columns), by MacKay's fixed-point updates of
  alpha and beta (the paper's Algorithm 1), run to a relative change below `tol`.

  Everything is in the SVD basis: with y_u = u^T y, the posterior mean is m = v c with
  c = beta s y_u / (alpha + beta s^2), and ||y - F m||^2 = ||y||^2 - ||y_u||^2 + ||y_u - s c||^2,
  so an iteration costs O(min(N, D)). When N <= D the features interpolate y and beta can
  grow without bound: the evidence then tends to a finite limit, which is returned
  (at alpha = N / ||m_0||^2, m_0 the minimum-norm interpolant).
  """
  sigma = s ** 2
  y_u = u.T @ y
  outside = max(float(y @ y - y_u @ y_u), 0.0)   # the part of y no feature direction reaches

  def posterior(alpha, beta):
    c = beta * s * y_u / (alpha + beta * sigma)
    return float(c @ c), outside + float(np.sum((y_u - s * c) ** 2))

  def evidence(alpha, beta):
    mm, res = posterior(alpha, beta)
    logdet = np.sum(np.log(alpha + beta * sigma)) + (d - len(s)) * np.log(alpha)
    return (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - alpha / 2 * mm - beta / 2 * res
            - logdet / 2 - n / 2 * np.log(2 * np.pi)) / n

  alpha, beta = 1.0, 1.0
  for _ in range(max_iter):
    gamma = float(np.sum(beta * sigma / (alpha + beta * sigma)))
    mm, res = posterior(alpha, beta)
    if beta > 1e12 and len(s) == n:   # interpolation: the supremum is at beta = inf
      m0 = float(np.sum(y_u ** 2 / sigma))
      alpha = n / m0
      return (n / 2 * np.log(alpha) - alpha / 2 * m0 - np.sum(np.log(sigma)) / 2
              - n / 2 * np.log(2 * np.pi)) / n
    new_alpha, new_beta = gamma / max(mm, 1e-300), (n - gamma) / max(res, 1e-300)
    done = abs(new_alpha - alpha) <= tol * alpha and abs(new_beta - beta) <= tol * beta
    alpha, beta = new_alpha, new_beta
    if done:
      break
  return evidence(alpha, beta)


def log_maximum_evidence(features, labels):
  """LogME of features (N, D) for class labels (N,): the mean over classes of the maximum
  log evidence per example of y_k = F w + noise, w ~ N(0, 1/alpha), noise ~ N(0, 1/beta)."""
  f = np.asarray(features, np.float64)
  y, k = _classes(labels)
  n, d = f.shape
  u, s, _ = np.linalg.svd(f, full_matrices=False)
  return float(np.mean([_class_evidence((y == c).astype(np.float64), u, s, n, d)
                        for c in range(k)]))


def leep(source_probs, labels):
  """LEEP of the source classifier's probabilities theta (N, Z) for target labels (N,)."""
  theta = np.asarray(source_probs, np.float64)
  y, k = _classes(labels)
  n = len(y)
  joint = np.zeros((k, theta.shape[1]))
  np.add.at(joint, y, theta / n)                      # P(y, z)
  p_z = joint.sum(axis=0, keepdims=True)
  cond = np.divide(joint, p_z, out=np.zeros_like(joint), where=p_z > 0)   # P(y | z)
  eep = theta @ cond.T                                 # (N, K): sum_z P(y|z) theta_z
  return float(np.mean(np.log(eep[np.arange(n), y])))


def negative_conditional_entropy(source_labels, labels):
  """NCE = -H(Y | Z) of target labels (N,) given source hard labels Z (N,)."""
  z, _ = _classes(source_labels)
  y, k = _classes(labels)
  joint = np.zeros((k, z.max() + 1))
  np.add.at(joint, (y, z), 1.0 / len(y))
  p_z = joint.sum(axis=0, keepdims=True)
  cond = np.divide(joint, p_z, out=np.ones_like(joint), where=joint > 0)
  return float(np.sum(joint * np.log(cond)))


def h_score(features, labels):
  """H-score tr(cov(f)^+ cov(g)), g_i = E[f | y = y_i] (unbiased covariances; pinv)."""
  f = np.asarray(features, np.float64)
  y, k = _classes(labels)
  means = np.stack([f[y == c].mean(axis=0) for c in range(k)])
  g = means[y]
  cov_f = np.cov(f, rowvar=False)
  cov_g = np.cov(g, rowvar=False)
  return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g))


def scores(features, labels, source_probs=None, names=SCORES):
  """{score name: value} of `names`; LEEP and NCE need `source_probs` (N, Z) (None: skipped)."""
  out = {}
  for name in names:
    if name == 'logme':
      out[name] = log_maximum_evidence(features, labels)
    elif name == 'h_score':
      out[name] = h_score(features, labels)
    elif source_probs is None:
      continue
    elif name == 'leep':
      out[name] = leep(source_probs, labels)
    elif name == 'nce':
      out[name] = negative_conditional_entropy(np.argmax(source_probs, axis=1), labels)
    else:
      raise ValueError(f'unknown score {name!r}; use some of {SCORES}')
  return out


def kendall_tau(a, b):
  """Kendall's tau-b between two sequences (e.g. scores and fine-tuned accuracies)."""
  return float(scipy.stats.kendalltau(np.asarray(a), np.asarray(b)).statistic)


@dataclasses.dataclass
class Ranking:
  """Scores of candidate sources on one target task, and how they rank.

  scores: {source: {score name: value}}, in the sources' order; accuracies: {source:
  target accuracy after fine-tuning} when known (their Kendall's tau with each score).
  """
  scores: dict
  accuracies: dict = dataclasses.field(default_factory=dict)

  def names(self):
    return [n for n in SCORES if any(n in v for v in self.scores.values())]

  def order(self, name):
    """Sources that have score `name`, best first."""
    have = [s for s in self.scores if name in self.scores[s]]
    return sorted(have, key=lambda s: -self.scores[s][name])

  def taus(self):
    """{score: Kendall's tau with the accuracies} over the sources that have both (>= 2)."""
    out = {}
    for name in self.names():
      have = [s for s in self.scores if name in self.scores[s] and s in self.accuracies]
      if len(have) >= 2:
        out[name] = kendall_tau([self.scores[s][name] for s in have],
                                [self.accuracies[s] for s in have])
    return out

  def summary(self):
    """Flat {"<score>/kendall_tau", "<score>/best", "<source>/<score>"}: summary.json."""
    out = {f'{name}/kendall_tau': tau for name, tau in self.taus().items()}
    out.update({f'{name}/best': self.order(name)[0] for name in self.names()})
    out.update({f'{src}/{name}': v for src, row in self.scores.items() for name, v in row.items()})
    return out

  def table(self):
    """Markdown: one row per source (scores, accuracy), then the rank correlations."""
    names = self.names()
    acc = bool(self.accuracies)
    head = ['source'] + names + (['fine-tuned accuracy'] if acc else [])
    rows = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for src, row in self.scores.items():
      cells = [f'`{src}`'] + [f'{row[n]:.4f}' if n in row else 'n/a' for n in names]
      if acc:
        cells.append(f'{100 * self.accuracies[src]:.1f}' if src in self.accuracies else 'n/a')
      rows.append('| ' + ' | '.join(cells) + ' |')
    taus = self.taus()
    if taus:
      rows += ['', "Kendall's tau with the fine-tuned accuracies: " + ', '.join(
          f'{n} {t:+.2f}' for n, t in taus.items())]
    return '\n'.join(rows)

  def report(self, ds):
    """report.md of the ranking on dataset config `ds` (scores on its training split)."""
    return (f'# Source ranking for {ds.name} classes {tuple(ds.classes) or "all"}\n\n'
            f'Scores of each source on the {ds.train_split} split (higher is better), without '
            f'fine-tuning.\n\n{self.table()}\n')


def source_outputs(run_dir, ds, split, *, batch_size, mesh, step=None):
  """(features (N, F), classifier probabilities (N, Z) or None, labels (N,)) of dataset config
  `ds`'s `split` through the model of run directory `run_dir` (a trained or converted run).

  The probabilities come from the run's `head` (a classifier of Z source classes) when it
  has one. Raises tlu.transfer.pretrained.PretrainedError if the run cannot be read or
  does not take the split's images.
  """
  from tlu.data import subsets  # pylint: disable=import-outside-toplevel
  from tlu.evaluate.features import extract_features  # pylint: disable=import-outside-toplevel
  from tlu.evaluate.run_features import load_backbone  # pylint: disable=import-outside-toplevel
  from tlu.models import heads as heads_lib  # pylint: disable=import-outside-toplevel
  from tlu.transfer.pretrained import load_pretrained  # pylint: disable=import-outside-toplevel
  source = subsets.task_source(ds, split)
  shape = tuple(np.shape(source[0]['image']))
  backbone = load_backbone(run_dir, step, image_shape=shape)
  features, labels = extract_features(backbone.model, backbone.variables, source, batch_size,
                                      mesh)
  variables, _, _ = load_pretrained(run_dir, step)
  head = variables['params'].get('head')
  if not head or np.ndim(head.get('kernel')) != 2:
    return features, None, labels
  config = json.loads((epath.Path(run_dir) / 'config.json').read_text())
  l2_scale = (config.get('method') or {}).get('head_l2_scale', 0.0)
  spec = heads_lib.classifier(head['kernel'].shape[1], l2_scale)
  model = backbone.model.clone(heads=(('head', spec),))
  logits = model.apply({'params': {'head': head}}, 'head', jnp.asarray(features),
                       method='apply_head')
  return features, np.asarray(jax.nn.softmax(logits.astype(jnp.float32), axis=-1)), labels


def check_config(config):
  """The rank_sources config's own checks (sources, accuracies, score names); ValueError."""
  if not config.sources:
    raise ValueError('set --config.sources="(<run dir>, ...)": the candidate sources')
  if config.accuracies and len(config.accuracies) != len(config.sources):
    raise ValueError(f'{len(config.accuracies)} accuracies for {len(config.sources)} '
                     'sources: give one per source, in the same order, or none')
  unknown = set(config.scores) - set(SCORES)
  if unknown:
    raise ValueError(f'scores {sorted(unknown)}: use some of {SCORES}')
