"""LogME, LEEP, NCE and H-score against independent numpy computations; a run's outputs."""

import collections
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from tlu.models import build_model, heads
from tlu.train import mesh as mesh_lib
from tlu.train.checkpoint import Checkpointer
from tlu.transfer import transferability as tr


def evidence(f, y, log_alpha, log_beta):
  """log p(y | F, alpha, beta) / N of Bayesian linear regression, straight from the definition."""
  alpha, beta = np.exp(log_alpha), np.exp(log_beta)
  n, d = f.shape
  a = alpha * np.eye(d) + beta * f.T @ f
  m = beta * np.linalg.solve(a, f.T @ y)
  _, logdet = np.linalg.slogdet(a)
  return (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - alpha / 2 * m @ m
          - beta / 2 * np.sum((y - f @ m) ** 2) - logdet / 2 - n / 2 * np.log(2 * np.pi)) / n


def logme_by_optimisation(f, labels):
  out = []
  for c in np.unique(labels):
    y = (labels == c).astype(np.float64)
    best = scipy.optimize.minimize(lambda p: -evidence(f, y, *p), x0=(0.0, 0.0),
                                   method='Nelder-Mead',
                                   options=dict(xatol=1e-9, fatol=1e-12, maxiter=4000))
    out.append(-best.fun)
  return np.mean(out)


def data(n=120, d=6, k=3, seed=0, signal=1.0):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, k, n)
  centres = rng.normal(size=(k, d))
  return signal * centres[labels] + rng.normal(size=(n, d)), labels


@pytest.mark.parametrize('n,d', [(120, 6), (15, 40)])   # more examples than features, and fewer
def test_logme_is_the_maximum_evidence(n, d):
  f, y = data(n, d)
  np.testing.assert_allclose(tr.log_maximum_evidence(f, y), logme_by_optimisation(f, y),
                             rtol=1e-6)


def test_logme_prefers_features_that_separate_the_classes():
  good, y = data(signal=3.0)
  noise = np.random.default_rng(1).normal(size=good.shape)
  assert tr.log_maximum_evidence(good, y) > tr.log_maximum_evidence(noise, y)


def leep_by_loops(theta, labels):
  n, z_count = theta.shape
  joint = collections.defaultdict(float)
  for i in range(n):
    for z in range(z_count):
      joint[(labels[i], z)] += theta[i, z] / n
  p_z = {z: sum(joint[(y, z)] for y in set(labels)) for z in range(z_count)}
  total = 0.0
  for i in range(n):
    total += np.log(sum(joint[(labels[i], z)] / p_z[z] * theta[i, z] for z in range(z_count)))
  return total / n


def test_leep_by_its_definition():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(50, 4)) * 2
  theta = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  labels = rng.integers(0, 3, 50)
  np.testing.assert_allclose(tr.leep(theta, labels), leep_by_loops(theta, labels), rtol=1e-12)


def test_leep_of_a_source_classifier_that_determines_the_target_is_zero():
  labels = np.array([0, 1, 2, 0, 1, 2])
  theta = np.eye(3)[[2, 0, 1, 2, 0, 1]]   # a one-to-one relabelling
  assert tr.leep(theta, labels) == pytest.approx(0.0, abs=1e-12)


def test_nce_by_counting():
  rng = np.random.default_rng(0)
  z, y = rng.integers(0, 5, 200), rng.integers(0, 3, 200)
  joint = collections.Counter(zip(y, z))
  count_z = collections.Counter(z)
  want = sum(c / 200 * np.log(c / count_z[zz]) for (_, zz), c in joint.items())
  np.testing.assert_allclose(tr.negative_conditional_entropy(z, y), want, rtol=1e-12)
  assert tr.negative_conditional_entropy(y, y) == pytest.approx(0.0)
  grid = np.repeat(np.arange(4), 4), np.tile(np.arange(4), 4)   # independent, uniform
  assert tr.negative_conditional_entropy(*grid) == pytest.approx(-np.log(4))


def test_h_score_by_its_definition():
  f, y = data(60, 4, seed=3)
  mu = f.mean(0)
  cov_f = sum(np.outer(r - mu, r - mu) for r in f) / (len(f) - 1)
  g = np.stack([f[y == c].mean(0) for c in y])
  cov_g = sum(np.outer(r - g.mean(0), r - g.mean(0)) for r in g) / (len(f) - 1)
  np.testing.assert_allclose(tr.h_score(f, y), np.trace(np.linalg.inv(cov_f) @ cov_g), rtol=1e-9)


def _tau_b_by_pairs(a, b):
  """Kendall's tau-b by counting pairs: (C - D) / sqrt((n0 - t_a) (n0 - t_b)), n0 = n(n-1)/2,
  t_a / t_b the pairs tied in a / b."""
  a, b = np.asarray(a, float), np.asarray(b, float)
  i, j = np.triu_indices(len(a), 1)
  s = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
  n0 = len(i)
  return (np.sum(s > 0) - np.sum(s < 0)) / np.sqrt((n0 - np.sum(a[i] == a[j]))
                                                   * (n0 - np.sum(b[i] == b[j])))


def test_kendall_tau():
  assert tr.kendall_tau([1, 2, 3], [0.1, 0.5, 0.9]) == pytest.approx(1.0)
  assert tr.kendall_tau([3, 2, 1], [0.1, 0.5, 0.9]) == pytest.approx(-1.0)
  # One swapped pair of four: 5 concordant, 1 discordant -> (5 - 1) / 6.
  assert tr.kendall_tau([1, 2, 3, 4], [0.1, 0.3, 0.2, 0.4]) == pytest.approx(4 / 6)
  # Ties in both (tau-b): 1 concordant, 3 discordant, one pair tied in each of the 6:
  # (1 - 3) / sqrt(5 * 5) (hand).
  a, b = [1, 1, 2, 3], [0.2, 0.5, 0.5, 0.1]
  assert _tau_b_by_pairs(a, b) == pytest.approx(-2 / 5)
  assert tr.kendall_tau(a, b) == pytest.approx(-2 / 5)
  rng = np.random.default_rng(0)
  for _ in range(5):
    scores = rng.integers(0, 6, 9)                      # ties among the scores
    accuracies = scores + rng.normal(0, 2.0, 9)         # a noisy agreement
    want = _tau_b_by_pairs(scores, accuracies)
    assert -1 < want < 1
    assert tr.kendall_tau(scores, accuracies) == pytest.approx(want, rel=1e-12)


def test_scores_skip_the_classifier_scores_without_a_classifier():
  f, y = data()
  assert set(tr.scores(f, y)) == {'logme', 'h_score'}
  theta = np.full((len(y), 2), 0.5)
  assert set(tr.scores(f, y, theta)) == set(tr.SCORES)


def make_run(path, seed=0, num_classes=5):
  """A run directory as a supervised tlu run leaves it (small CNN on 8x8 grey digits)."""
  cfg = {'name': 'cnn', 'widths': (4,), 'features': 8}
  model = build_model(cfg, {'head': heads.classifier(num_classes)})
  variables = model.init(jax.random.key(seed), jnp.zeros((1, 8, 8, 1)))
  path.mkdir(parents=True, exist_ok=True)
  (path / 'config.json').write_text(json.dumps(
      {'model': cfg, 'method': {'name': 'supervised', 'head_l2_scale': 0.0}}))
  ckpt = Checkpointer(path / 'checkpoints', every=1)
  ckpt.save(1, {'params': variables['params'], 'batch_stats': variables['batch_stats']},
            force=True)
  ckpt.close()
  return model, variables


def test_source_outputs_are_the_runs_features_and_classifier_probabilities(tmp_path, data_dir):
  from configs import digits_supervised   # pylint: disable=import-outside-toplevel
  from tlu.data import subsets   # pylint: disable=import-outside-toplevel
  model, variables = make_run(tmp_path / 'run')
  ds = digits_supervised.dataset('tlu_digits', classes=range(5, 10))
  ds.data_dir = data_dir
  feats, probs, labels = tr.source_outputs(str(tmp_path / 'run'), ds, 'test', batch_size=40,
                                           mesh=mesh_lib.make_mesh())
  source = subsets.task_source(ds, 'test')
  images = np.stack([source[i]['image'] for i in range(len(source))]).astype(np.float32) / 255
  out = model.apply(variables, jnp.asarray(images), heads=('head',))
  np.testing.assert_allclose(feats, out['features'], atol=1e-5)
  np.testing.assert_allclose(probs, jax.nn.softmax(out['head']), atol=1e-5)
  assert labels.shape == (len(source),) and set(labels) == set(range(5))
