"""Unsupervised validators against numpy transcriptions of their authors' code, the weighted
Spearman of Musgrave et al.'s benchmark, the validator evaluator, and each validator's pick."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata, spearmanr
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_mutual_info_score

from tlu import evaluators
from tlu.adapt import cells, selection, validators
from tlu.evaluate.outputs import extract_outputs
from tlu.models import build_model, heads
from tlu.train import mesh as mesh_lib


def _logits(n=40, c=5, seed=0, scale=3.0):
  return np.random.default_rng(seed).normal(size=(n, c)) * scale


def _softmax(x):
  e = np.exp(x - x.max(1, keepdims=True))
  return e / e.sum(1, keepdims=True)


# --------------------------------------------------------------- the authors' code, in numpy

def _snd_authors(logits, T=0.05):
  """VisionLearningGroup/SND nc_ps/eval.py: neighbor_density(F.softmax(pred_all)), with
  utils/loss.py entropy (softmax of the rows, -sum p log(p + 1e-5), mean)."""
  f = _softmax(logits)
  f = f / np.linalg.norm(f, axis=1, keepdims=True)         # F.normalize
  mat = f @ f.T / T
  mat[np.eye(len(mat), dtype=bool)] = -1 / T                # masked_fill_(eye, -1 / T)
  p = _softmax(mat)
  return np.mean(-np.sum(p * np.log(p + 1e-5), 1))


def _snd_pytorch_adapt(logits, T=0.05):
  """pytorch-adapt SNDValidator: cosine similarity, the diagonal entry removed from each row."""
  f = _softmax(logits)
  f = f / np.linalg.norm(f, axis=1, keepdims=True)
  mat = (f @ f.T)[~np.eye(len(f), dtype=bool)].reshape(len(f), -1) / T
  p = _softmax(mat)
  return np.mean(-np.sum(p * np.log(p), 1))


def _dev_risk_authors(weight, error):
  """thuml/Deep-Embedded-Validation get_dev_risk (as copied into SND's cdan/dev.py)."""
  weight, error = weight.reshape(-1, 1), error.reshape(-1, 1)
  weighted_error = weight * error
  cov = np.cov(np.concatenate((weighted_error, weight), axis=1), rowvar=False)[0][1]
  var_w = np.var(weight, ddof=1)
  eta = - cov / var_w
  return np.mean(weighted_error) + eta * np.mean(weight) - eta


def _wrank_weightedcorr(x, w):
  """WeightedCorr (matthijsz/weightedcorr) `_wrank`, pandas as theirs."""
  rw = pd.DataFrame([x.rank(), w], index=['r', 'w']).transpose()
  a = rw[['r', 'w']].groupby(['r']).agg('sum')['w']
  xa = rw['r'].map(a.cumsum() - a)
  xb = rw['r'].map(((rw['r'].value_counts() + 1) / 2) * rw[['r', 'w']].groupby(['r']).agg(
      'mean')['w'])
  return xa + xb


def _weighted_spearman_musgrave(scores, accs, pow=2):
  """powerful-benchmarker validator_tests/utils/weighted_spearman.py + WeightedCorr spearman."""
  v_ranks = rankdata(scores, method='dense').astype(float)
  v_ranks /= np.max(v_ranks)
  t_ranks = rankdata(accs, method='dense').astype(float)
  t_ranks /= np.max(t_ranks)
  w = pd.Series(np.maximum(v_ranks, t_ranks) ** pow)
  x, y = _wrank_weightedcorr(pd.Series(scores), w), _wrank_weightedcorr(pd.Series(accs), w)
  wcov = lambda a, b, ma, mb: np.sum(w * (a - ma) * (b - mb)) / np.sum(w)
  mx, my = (np.sum(i * w) / np.sum(w) for i in (x, y))
  return wcov(x, y, mx, my) / np.sqrt(wcov(x, x, mx, mx) * wcov(y, y, my, my))


# --------------------------------------------------------------------------- validators

def test_snd_is_the_authors_neighbourhood_entropy_with_their_diagonal_and_temperature():
  logits = _logits(37, 6)
  expected = _snd_authors(logits)
  assert validators.snd(logits) == pytest.approx(expected, rel=1e-5)
  assert validators.snd(logits, chunk=5) == pytest.approx(expected, rel=1e-5)   # row chunks
  assert validators.snd(logits, 0.5) == pytest.approx(_snd_authors(logits, 0.5), rel=1e-5)
  # pytorch-adapt drops the diagonal instead: another number (docstring), clearest at T = 0.5.
  assert abs(validators.snd(logits, 0.5) - _snd_pytorch_adapt(logits, 0.5)) > 1e-3


def test_entropy_im_bnm_match_their_definitions():
  logits = _logits(50, 4, seed=1)
  p = _softmax(logits)
  h = -np.sum(p * np.log(p), 1)
  mean = p.mean(0)
  assert validators.entropy(logits) == pytest.approx(-h.mean(), rel=1e-9)
  assert validators.information_maximization(logits) == pytest.approx(
      -np.sum(mean * np.log(mean)) - h.mean(), rel=1e-9)
  assert validators.bnm(logits) == pytest.approx(np.linalg.norm(p, 'nuc') / len(p), rel=1e-9)
  assert validators.source_accuracy(logits, np.argmax(logits, 1)[::-1]) == pytest.approx(
      np.mean(np.argmax(logits, 1) == np.argmax(logits, 1)[::-1]))


def test_dev_risk_is_the_authors_control_variate_and_devn_max_normalises():
  rng = np.random.default_rng(2)
  w, err = rng.gamma(2.0, 1.0, 60), rng.random(60)
  assert validators.dev_risk(w, err) == pytest.approx(_dev_risk_authors(w, err), rel=1e-9)
  assert validators.dev_risk(np.ones(5), err[:5]) == pytest.approx(err[:5].mean())
  logits, labels = _logits(60, 3, seed=3), rng.integers(0, 3, 60)
  ce = -np.log(_softmax(logits)[np.arange(60), labels])
  assert validators.dev(w, logits, labels) == pytest.approx(-_dev_risk_authors(w, ce), rel=1e-9)
  assert validators.dev(w, logits, labels, normalize=True) == pytest.approx(
      -_dev_risk_authors(w / w.max(), ce), rel=1e-9)
  wrong = (np.argmax(logits, 1) != labels).astype(float)
  assert validators.dev(w, logits, labels, error='zero_one') == pytest.approx(
      -_dev_risk_authors(w, wrong), rel=1e-9)


def test_importance_weights_estimate_the_density_ratio():
  # Source N(0, 1), target N(1, 1) in 1-D: p_t(x) / p_s(x) = exp(x - 1/2); the domain
  # classifier is well specified, so its odds times N_s / N_t recover the ratio.
  rng = np.random.default_rng(4)
  s, t = rng.normal(0, 1, (3000, 1)), rng.normal(1, 1, (2000, 1))
  x = np.linspace(-1, 2, 7)[:, None]
  w = validators.importance_weights(s, t, x, seed=0)
  np.testing.assert_allclose(w, np.exp(x[:, 0] - 0.5), rtol=0.15)


def test_class_ami_is_one_when_clusters_are_the_predictions_and_low_when_not():
  rng = np.random.default_rng(5)
  y = rng.integers(0, 3, 90)
  feats = np.eye(3)[y] * 5 + 0.05 * rng.normal(size=(90, 3))
  assert validators.class_ami(feats, np.eye(3)[y]) == pytest.approx(1.0)
  noise = rng.normal(size=(90, 3))
  assert validators.class_ami(feats, noise) == pytest.approx(
      adjusted_mutual_info_score(np.argmax(noise, 1), y), abs=1e-9)   # clusters = y here
  assert validators.class_ami(feats, noise) < 0.2
  # pytorch-adapt's get_clustering_performance (KMeans, then AMI with the predictions) on
  # L2-normalised rows (Musgrave et al.'s 'normalize'), where the scale of the rows matters.
  x = rng.normal(size=(90, 4)) * rng.gamma(1.0, 3.0, (90, 1)) + 1.0
  clusters = KMeans(n_clusters=3, n_init=1, max_iter=20, random_state=0).fit_predict(
      x / np.linalg.norm(x, axis=1, keepdims=True))
  assert validators.class_ami(x, noise) == pytest.approx(
      adjusted_mutual_info_score(np.argmax(noise, 1), clusters), abs=1e-9)


def test_weighted_spearman_is_musgrave_et_al_s_with_ties():
  rng = np.random.default_rng(6)
  scores, accs = np.round(rng.normal(size=40), 1), np.round(rng.random(40), 1)   # ties
  assert selection.weighted_spearman(scores, accs) == pytest.approx(
      _weighted_spearman_musgrave(scores, accs), rel=1e-9)
  # power 0 (equal weights) is the plain Spearman correlation.
  assert selection.weighted_spearman(scores, accs, power=0.0) == pytest.approx(
      spearmanr(scores, accs).correlation, rel=1e-9)
  bad = scores.copy()
  bad[3] = np.nan   # a non-finite score counts as the lowest (theirs)
  fixed = scores.copy()
  fixed[3] = np.nanmin(bad)
  assert selection.weighted_spearman(bad, accs) == pytest.approx(
      _weighted_spearman_musgrave(fixed, accs), rel=1e-9)


# ----------------------------------------------------------------- evaluator and selection

@pytest.mark.parametrize('spec, message', [
    (dict(name='nope'), "name='nope' must be one of"),
    (dict(name='dev', splits=('target_train',)), 'validator dev reads 3'),
    (dict(name='snd', temperature=0.0), 'temperature=0.0: must be a finite number > 0'),
    (dict(name='devn', error='hinge'), "error='hinge' must be one of"),
])
def test_bad_validator_options_fail_before_any_compute(spec, message):
  with pytest.raises(ValueError, match=message):
    evaluators.check({'v': dict(type='validator', **spec)})


def test_validator_splits_default_to_what_it_reads_and_are_checked():
  evaluators.check({'v': dict(type='validator', name='snd')}, ('train', 'target_train'))
  with pytest.raises(ValueError, match="'source_validation' is not a split"):
    evaluators.check({'v': dict(type='validator', name='devn')}, ('train', 'target_train',
                                                                  'source_train'))


def test_outputs_are_the_model_s_features_and_logits_and_scores_use_them():
  model = build_model({'name': 'mlp', 'widths': (8,), 'features': 6},
                      {'head': heads.classifier(3)})
  variables = model.init(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))
  rng = np.random.default_rng(7)
  source = [{'image': rng.integers(0, 256, (4, 4, 1), dtype=np.uint8), 'label': i % 3}
            for i in range(10)]
  mesh = mesh_lib.make_mesh(jax.devices()[:1])
  feats, logits, labels = extract_outputs(model, variables, source, 4, mesh)
  out = model.apply(variables, np.stack([s['image'] for s in source]) / 255.0, heads=('head',))
  np.testing.assert_allclose(feats, out['features'], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(logits, out['head'], rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(labels, np.arange(10) % 3)

  class State:   # what evaluators read of a train state
    step, variables = jnp.asarray(3), None
  State.variables = variables
  ctx = evaluators.Context(model=model, mesh=mesh, num_classes=3, batch_size=4,
                           splits={'target_train': source})
  got = evaluators.Evaluations({'snd': dict(type='validator', name='snd', prefix='snd_'),
                                'bnm': dict(type='validator', name='bnm', prefix='bnm_')},
                               ctx)(State())
  assert got == {'snd_score': pytest.approx(_snd_authors(np.asarray(out['head'], np.float64)),
                                            rel=1e-4),
                 'bnm_score': pytest.approx(validators.bnm(logits))}


def test_each_validator_picks_its_best_step_latest_on_ties(tmp_path):
  rows = [dict(step=1, split='train', loss=1.0),
          dict(step=2, split='test', accuracy=0.50, snd_score=0.1, im_score=2.0),
          dict(step=4, split='test', accuracy=0.70, snd_score=0.3, im_score=float('nan')),
          dict(step=6, split='test', accuracy=0.65, snd_score=0.3, im_score=1.0)]
  (tmp_path / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  out = cells.selected(str(tmp_path), {'target_test_accuracy': 0.65}, ('snd', 'im', 'bnm'),
                       'snd')
  assert out == {'target_test_accuracy': 0.65, 'snd_selected_step': 6,
                 'snd_selected_target_test_accuracy': 0.65, 'im_selected_step': 2,
                 'im_selected_target_test_accuracy': 0.50,
                 'validator_selected_target_test_accuracy': 0.65,
                 'best_target_test_accuracy': 0.70}
  summary = cells.summarize({('shot', None): [out]}, [r for r in rows if r['split'] == 'test'],
                            ('snd', 'im'))
  assert summary['shot/validator_selected_target_test_accuracy'] == 0.65
  assert summary['snd/weighted_spearman'] == pytest.approx(_weighted_spearman_musgrave(
      np.array([0.1, 0.3, 0.3]), np.array([0.5, 0.7, 0.65])), rel=1e-9)
