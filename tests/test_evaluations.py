"""Evaluations as named instances: several of one type, each on its own splits and cadence,
their values against scikit-learn / numpy, and their checks before any compute."""

import jax
import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

import methods_check
from conftest import run_stage
from tlu import evaluators
from tlu.train import mesh as mesh_lib, task
from tlu.train.writers import read_metrics


def _fixed_context():
  """Three labelled 'splits' of fixed features: two classes around +e0 and +e1."""
  rng = np.random.default_rng(0)

  def split(n):
    y = rng.integers(0, 2, n)
    return (np.eye(4, dtype=np.float32)[y] + 0.6 * rng.normal(size=(n, 4))).astype(np.float32), y

  fixed = {'train': split(40), 'test': split(30), 'validation': split(20)}
  return evaluators.Context(model=None, mesh=None, num_classes=2, batch_size=0, fixed=fixed)


def _sklearn_knn(ctx, fit, score, k):
  (xf, yf), (xs, ys) = ctx.fixed[fit], ctx.fixed[score]
  knn = KNeighborsClassifier(n_neighbors=k, metric='cosine', algorithm='brute').fit(xf, yf)
  return float(np.mean(knn.predict(xs) == ys))


def test_two_instances_of_one_type_score_their_own_splits_at_their_own_cadence():
  ctx = _fixed_context()
  specs = {'knn': dict(type='knn', k=3, weighting='uniform'),
           'knn_validation': dict(type='knn', splits=('train', 'validation'), k=1,
                                  weighting='uniform', every=5, prefix='validation_knn_')}
  evals = evaluators.Evaluations(specs, ctx, default_every=2)
  test_acc, val_acc = _sklearn_knn(ctx, 'train', 'test', 3), _sklearn_knn(ctx, 'train',
                                                                         'validation', 1)
  assert evals.due(2) and evals.due(5) and not evals.due(3)
  assert evals(None, 2) == {'knn_accuracy': pytest.approx(test_acc)}
  assert evals(None, 5) == {'validation_knn_accuracy': pytest.approx(val_acc)}
  assert evals(None, 10) == evals(None) == {'knn_accuracy': pytest.approx(test_acc),
                                            'validation_knn_accuracy': pytest.approx(val_acc)}


def test_kmeans_clusters_the_rows_of_every_named_split_together():
  # train: class 0 around e0; test: class 1 around e1. Together the two directions are the
  # two classes (ACC 1); the test rows alone are one class that k = 2 must cut in two.
  rng = np.random.default_rng(1)
  near = lambda axis, n: (np.eye(4)[axis] + 0.05 * rng.normal(size=(n, 4))).astype(np.float32)
  ctx = evaluators.Context(model=None, mesh=None, num_classes=2, batch_size=0, fixed={
      'train': (near(0, 40), np.zeros(40, int)), 'test': (near(1, 30), np.ones(30, int))})
  out = evaluators.Evaluations({
      'both': dict(type='kmeans', splits=('train', 'test'), n_init=3, prefix='both/'),
      'test': dict(type='kmeans', splits=('test',), n_init=3, prefix='test/')}, ctx)(None)
  assert set(out) == {f'{s}/{m}' for s in ('both', 'test') for m in ('acc', 'nmi', 'ari')}
  assert out['both/acc'] == out['both/nmi'] == out['both/ari'] == pytest.approx(1.0)
  assert 15 / 30 <= out['test/acc'] < 1.0


def test_spectral_clusters_two_moons_as_scikit_learn_does_where_k_means_cannot():
  # Two interleaved half-circles: k-means cuts them across, spectral clustering on a
  # 10-nearest-neighbour affinity follows them (scikit-learn's SpectralClustering too).
  from sklearn.cluster import SpectralClustering  # pylint: disable=import-outside-toplevel
  from sklearn.datasets import make_moons  # pylint: disable=import-outside-toplevel
  from sklearn.metrics import adjusted_rand_score  # pylint: disable=import-outside-toplevel
  x, y = make_moons(300, noise=0.05, random_state=0)
  x = x.astype(np.float32)
  ctx = evaluators.Context(model=None, mesh=None, num_classes=2, batch_size=0,
                           fixed={'moons': (x, y)})
  options = dict(splits=('moons',), n_init=3, normalize_features=False)
  out = evaluators.Evaluations({
      'spectral': dict(type='spectral', affinity='knn', n_neighbors=10, **options),
      'kmeans': dict(type='kmeans', splits=('moons',), n_init=3, normalize=False)}, ctx)(None)
  reference = SpectralClustering(2, affinity='nearest_neighbors', n_neighbors=10,
                                 random_state=0).fit_predict(x)
  assert adjusted_rand_score(y, reference) == pytest.approx(1.0)
  assert out['spectral_ari'] == pytest.approx(1.0) and out['spectral_acc'] == 1.0
  assert out['kmeans_ari'] < 0.6


@pytest.mark.parametrize('specs, message', [
    ({'a': {'k': 3}}, 'evals.a: give its type'),
    ({'a': {'type': 'nope'}}, "unknown evaluator 'nope'"),
    ({'a': {'type': 'knn', 'kk': 3}}, "evals.a: .*unexpected keyword argument 'kk'"),
    ({'a': {'type': 'knn', 'k': 0}}, 'evals.a.k=0: must be an integer >= 1'),
    ({'a': {'type': 'knn', 'splits': ('test',)}}, 'evals.a: .*give two'),
    ({'a': {'type': 'knn', 'every': -1}}, 'evals.a.every=-1'),
    ({'a': {'type': 'kmeans', 'n_init': 0}}, 'evals.a.n_init=0: must be an integer >= 1'),
    ({'a': {'type': 'spectral', 'affinity': 'cosine'}}, "evals.a: affinity='cosine'"),
    ({'a': {'type': 'linear_probe', 'probe_input': 'raw'}}, "evals.a: probe_input='raw'"),
    ({'a': {'type': 'classification'}, 'b': {'type': 'classification', 'splits': ('train',)}},
     "evals.b and evals.a both write 'accuracy'"),
    ({'a': {'type': 'knn', 'splits': ('train', 'validation')}},
     "evals.a.splits: 'validation' is not a split of this run"),
    ({'a': {'type': 'classification', 'head': 'probe'}}, "evals.a reads the head 'probe'"),
])
def test_an_instance_is_checked_before_any_compute(specs, message):
  with pytest.raises(ValueError, match=message):
    evaluators.check(specs, ('train', 'test'), ('head',))


def test_each_instance_of_a_training_run_logs_at_its_own_cadence(tmp_path):
  data = methods_check.splits()
  cfg = methods_check.config('supervised')
  cfg.update(dict(steps=4, eval_every=2))
  cfg.evals = {'test': dict(type='classification'),
               'train': dict(type='classification', splits=('train',), every=4,
                             prefix='train_set_', loss=False)}
  trainer = task.Trainer(mesh_lib.make_mesh(jax.devices()[:1]))
  state, metrics, _ = trainer.run(cfg, str(tmp_path), data)
  rows = [r for r in read_metrics(str(tmp_path)) if r['split'] == 'test']
  assert [(r['step'], sorted(k for k in r if k not in ('step', 'split'))) for r in rows] == [
      (2, ['accuracy', 'loss']), (4, ['accuracy', 'loss', 'train_set_accuracy'])]
  # Independently: the final model's argmax on the training images.
  model = trainer.build(cfg, data)[1]
  images = np.stack([data.train[i]['image'] for i in range(len(data.train))])
  labels = np.asarray([data.train[i]['label'] for i in range(len(data.train))])
  logits = model.apply(jax.device_get(state.variables), images.astype(np.float32) / 255.0,
                       train=False, heads=('head',))['head']
  assert metrics['train_set_accuracy'] == pytest.approx(np.mean(np.argmax(logits, 1) == labels))


def test_a_bad_instance_on_the_command_line_is_one_line_and_exit_2(tmp_path, data_dir):
  proc = run_stage('pretrain', f'--workdir={tmp_path}/w', f'--config.dataset.data_dir={data_dir}',
                   '--config.evals.knn.weighting=cosine')
  assert proc.returncode == 2, proc.stderr
  assert proc.stderr.strip() == ("error: evals.knn: weighting='cosine' must be one of "
                                 "('uniform', 'distance', 'temperature')")
  assert not (tmp_path / 'w').exists()
