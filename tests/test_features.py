"""Feature extraction: exact over a split, in order, the same on 1 and 8 devices; the stages
that read a run's features (cluster, anomaly): their source, their checks, their reports."""

import json
import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import run_stage, xla_flags
from tlu.data import loader, sources
from tlu.evaluate import features
from tlu.models import build_model
from tlu.train import mesh as mesh_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 64  # 360 test examples: 5 full batches and one padded one


@pytest.fixture(scope='module')
def model_and_variables():
  model = build_model({'name': 'cnn'})
  # jit: one compile instead of one per op, and the same values as eager init.
  return model, jax.jit(model.init)(jax.random.key(0), np.zeros((1, 8, 8, 1), np.float32))


@pytest.fixture(scope='module')
def digits_test(data_dir):
  return sources.open_source('tlu_digits', 'test', data_dir), sources.load_arrays(
      'tlu_digits', 'test', data_dir)


@pytest.fixture(scope='module')
def one_device_features(digits_test, model_and_variables):
  model, variables = model_and_variables
  mesh = mesh_lib.make_mesh(jax.devices()[:1])
  return features.extract_features(model, variables, digits_test[0], BATCH, mesh)


def test_features_equal_direct_apply_on_whole_split(digits_test, one_device_features,
                                                    model_and_variables):
  model, variables = model_and_variables
  arrays = digits_test[1]
  expected = model.apply(variables, arrays['image'] / 255.0, train=False)['features']
  feats, labels = one_device_features
  assert feats.shape == (360, 512) and feats.dtype == np.float32
  np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(labels, arrays['label'])


def test_array_features_equal_source_features(digits_test, one_device_features,
                                              model_and_variables):
  model, variables = model_and_variables
  mesh = mesh_lib.make_mesh(jax.devices()[:1])
  feats = features.extract_arrays_features(model, variables, digits_test[1]['image'], 48, mesh)
  np.testing.assert_allclose(feats, one_device_features[0], rtol=1e-5, atol=1e-5)


def test_process_slices_merge_to_original_order():
  source = [{'image': np.array([i]), 'label': i % 10} for i in range(23)]
  per_process = [list(loader.eval_batches(source, 6, process_index=p, process_count=3))
                 for p in range(3)]
  images = np.stack([np.concatenate([b['image'] for b in bs]) for bs in per_process])
  masks = np.stack([np.concatenate([b['mask'] for b in bs]) for bs in per_process])
  merged = features.merge_process_slices(images, masks)
  np.testing.assert_array_equal(merged[:, 0], np.arange(23))


_EIGHT_DEVICES = """
import json, sys
import jax, numpy as np
from tlu.data import sources
from tlu.evaluate import features
from tlu.models import build_model
from tlu.train import mesh as mesh_lib
model = build_model({'name': 'cnn'})
variables = jax.jit(model.init)(jax.random.key(0), np.zeros((1, 8, 8, 1), np.float32))
mesh = mesh_lib.make_mesh()
source = sources.open_source('tlu_digits', 'test', sys.argv[1])
feats, labels = features.extract_features(model, variables, source, int(sys.argv[3]), mesh)
np.savez(sys.argv[2], features=feats, labels=labels)
print(json.dumps({'devices': jax.device_count(), 'mesh_size': mesh.size}))
"""


def test_eight_devices_give_the_same_features(tmp_path, data_dir, one_device_features):
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': ROOT,
         'XLA_FLAGS': xla_flags(8)}
  out_file = tmp_path / 'features.npz'
  proc = subprocess.run([sys.executable, '-c', _EIGHT_DEVICES, data_dir, str(out_file),
                         str(BATCH)], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  info = json.loads(proc.stdout.strip().splitlines()[-1])
  assert info == {'devices': 8, 'mesh_size': 8}
  got = np.load(out_file)
  np.testing.assert_allclose(got['features'], one_device_features[0], rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(got['labels'], one_device_features[1])


def test_empty_image_array_fails(model_and_variables):
  model, variables = model_and_variables
  mesh = mesh_lib.make_mesh(jax.devices()[:1])
  with pytest.raises(ValueError, match='empty split'):
    features.extract_arrays_features(model, variables, np.zeros((0, 8, 8, 1), np.uint8), 8,
                                     mesh)


# The stages that read a run's features. One tiny pretraining serves them all: the cluster
# stage trains it itself (no source), the others are given it as --config.source. Only its
# checkpoint is read: no evaluations at its end (the pretrain stage's own tests run them).

def _tiny_pretrain(data_dir):
  return [f'--config.pretrain.dataset.data_dir={data_dir}', '--config.pretrain.steps=2',
          '--config.pretrain.batch_size=32', '--config.pretrain.eval_every=0',
          '--config.pretrain.checkpoint_every=2', '--config.pretrain.evals={}']


def _read(workdir):
  with open(os.path.join(workdir, 'summary.json')) as f, \
      open(os.path.join(workdir, 'report.md')) as g:
    return json.load(f), g.read()


def _assert_report_holds_summary(summary, report):
  assert summary
  for name, value in summary.items():
    assert f'{value:.4f}' in report, (name, value)
  assert not re.search(r'\{[^}]*\}', report), report  # no placeholder left unformatted


# SCAN's runs on a tiny budget: 30 clustering steps of 64 at 10x the config's lr, 4 of
# self-labelling (measured: the fixture's SCAN ACC 0.41, NMI 0.42; its clusters at random 0.16).
_TINY_SCAN = ('--config.scan.steps=30', '--config.scan.batch_size=64',
              '--config.scan.optimizer.lr=1e-3', '--config.scan_selflabel.steps=4',
              '--config.scan_selflabel.batch_size=64')


@pytest.fixture(scope='module')
def clustered(tmp_path_factory, data_dir):
  """A cluster stage run that pretrained its own source (in <workdir>/pretrain), on the test
  rows (360: its t-SNE picture in seconds; the pipeline's tests cluster train + test), SCAN
  and self-labelling trained from that source in <workdir>/scan, <workdir>/scan_selflabel."""
  workdir = str(tmp_path_factory.mktemp('cluster') / 'w')
  run_stage('cluster', f'--workdir={workdir}', f'--config.dataset.data_dir={data_dir}',
            '--config.n_init=2', '--config.rows=test', *_tiny_pretrain(data_dir), *_TINY_SCAN,
            check=True)
  return workdir


def test_cluster_pretrains_without_a_source_and_reports_every_summary_value(clustered,
                                                                            digits_test):
  """SCAN's keys too, checked against the saved heads here (one test: under xdist another
  would build the module fixture again in the other worker)."""
  _assert_scan_scores_are_the_saved_heads_argmax_and_above_chance(clustered, digits_test)
  summary, report = _read(clustered)
  assert set(summary) == {f'{r}/{a}{m}' for r in ('raw', 'pca', 'contrastive')
                          for a in ('', 'spectral_') for m in ('acc', 'nmi', 'ari')} | {
                              f'contrastive/{a}_{m}' for a in ('scan', 'scan_selflabel')
                              for m in ('acc', 'nmi', 'ari')}
  _assert_report_holds_summary(summary, report)
  assert '| SCAN (clustering step) |' in report and '| SCAN + self-labelling |' in report
  assert os.path.exists(os.path.join(clustered, 'pretrain', 'checkpoints'))
  assert '(tsne.png)' in report and os.path.exists(os.path.join(clustered, 'tsne.png'))


def _given_source_args(clustered, workdir, data_dir):
  return (f'--workdir={workdir}', f'--config.dataset.data_dir={data_dir}', '--config.n_init=2',
          '--config.rows=test', f'--config.source={clustered}/pretrain', '--config.tsne=False',
          *_TINY_SCAN)


def _mtimes(runs):
  return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns for r in runs
          for d, _, fs in os.walk(r) for f in fs}


def test_cluster_of_a_given_source_equals_the_run_that_pretrained_it(clustered, tmp_path,
                                                                      data_dir):
  """And a re-run reads its finished SCAN runs back (one test: one stage run to re-run)."""
  workdir = str(tmp_path / 'w')
  run_stage('cluster', *_given_source_args(clustered, workdir, data_dir), check=True)
  summary, report = _read(workdir)
  assert summary == _read(clustered)[0]   # SCAN's runs too: they start from the same leaves
  runs = [os.path.join(workdir, name) for name in ('scan', 'scan_selflabel')]
  before = _mtimes(runs)
  metrics = [open(os.path.join(r, 'metrics.jsonl')).read() for r in runs]
  proc = run_stage('cluster', *_given_source_args(clustered, workdir, data_dir), check=True)
  assert _mtimes(runs) == before   # no file of either run written: no step, no checkpoint
  assert [open(os.path.join(r, 'metrics.jsonl')).read() for r in runs] == metrics
  assert 'resuming' not in proc.stderr and _read(workdir)[0] == summary
  assert not os.path.exists(os.path.join(workdir, 'pretrain'))
  assert f'{clustered}/pretrain' in report


def test_anomaly_reports_every_summary_value(clustered, tmp_path, data_dir):
  workdir = str(tmp_path / 'w')
  run_stage('anomaly', f'--workdir={workdir}', f'--config.dataset.data_dir={data_dir}',
            '--config.dataset.classes=(0, 1, 2)', '--config.kmeans_clusters=2',
            f'--config.source={clustered}/pretrain', check=True)
  summary, report = _read(workdir)
  assert set(summary) == {f'{r}/{s}/mean_auroc' for r in ('raw pixels', 'contrastive features')
                          for s in ('5-NN distance', 'Mahalanobis', 'k-means (2) distance')}
  _assert_report_holds_summary(summary, report)
  assert '| normal=0 | normal=1 | normal=2 | mean |' in report


@pytest.mark.parametrize('stage', ['cluster', 'anomaly'])
def test_a_source_without_a_checkpoint_fails_before_writing(stage, clustered, tmp_path,
                                                            data_dir):
  source = tmp_path / 'untrained'
  source.mkdir()
  shutil.copy(os.path.join(clustered, 'pretrain', 'config.json'), source)
  proc = run_stage(stage, f'--workdir={tmp_path}/w', f'--config.dataset.data_dir={data_dir}',
                   f'--config.source={source}')
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines()[-1] == (
      f'error: {source} has no checkpoints: has that run trained yet?')
  assert 'Traceback' not in proc.stderr
  assert not os.path.exists(f'{tmp_path}/w')


@pytest.mark.parametrize('stage,option', [
    ('cluster', 'n_init=0'), ('cluster', 'max_iter=0'), ('cluster', 'pca_components=65'),
    ('cluster', 'scan.method.num_neighbors=0'),
    ('anomaly', 'knn_k=0'), ('anomaly', 'mahalanobis_shrinkage=1.5'),
    ('anomaly', 'pretrain.steps=0')])
def test_options_out_of_range_fail_before_writing(stage, option, tmp_path, data_dir):
  proc = run_stage(stage, f'--workdir={tmp_path}/w', f'--config.dataset.data_dir={data_dir}',
                   f'--config.pretrain.dataset.data_dir={data_dir}', f'--config.{option}')
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert proc.stderr.startswith('error: ') and option.split('=')[0] in proc.stderr, (
      proc.stderr[-2000:])
  assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
  assert not os.path.exists(f'{tmp_path}/w')


def _scan_predictions(run_dir, images):
  """The argmax of the saved head `head` of a SCAN run's latest checkpoint on `images`."""
  from tlu.models import heads  # pylint: disable=import-outside-toplevel
  from tlu.transfer.pretrained import load_pretrained  # pylint: disable=import-outside-toplevel
  variables, model_cfg, _ = load_pretrained(run_dir)
  model = build_model(model_cfg, {'head': heads.classifier(10)})
  logits = model.apply(variables, images / 255.0, train=False, heads=('head',))['head']
  return np.argmax(np.asarray(logits), axis=1)


def _hungarian_acc(y, pred):
  from scipy.optimize import linear_sum_assignment  # pylint: disable=import-outside-toplevel
  table = np.zeros((10, 10))
  np.add.at(table, (pred, y), 1)
  rows, cols = linear_sum_assignment(-table)
  return table[rows, cols].sum() / len(y)


def _assert_scan_scores_are_the_saved_heads_argmax_and_above_chance(clustered, digits_test):
  from sklearn.metrics import (adjusted_rand_score,  # pylint: disable=import-outside-toplevel
                               normalized_mutual_info_score)
  summary, _ = _read(clustered)
  arrays = digits_test[1]
  y = np.asarray(arrays['label'])
  for name in ('scan', 'scan_selflabel'):
    pred = _scan_predictions(os.path.join(clustered, name), np.asarray(arrays['image']))
    assert summary[f'contrastive/{name}_acc'] == pytest.approx(_hungarian_acc(y, pred), abs=1e-9)
    assert summary[f'contrastive/{name}_nmi'] == pytest.approx(
        normalized_mutual_info_score(y, pred), abs=1e-9)
    assert summary[f'contrastive/{name}_ari'] == pytest.approx(adjusted_rand_score(y, pred),
                                                               abs=1e-9)
  # Chance: the same cluster sizes assigned at random (mean over shuffles).
  pred = _scan_predictions(os.path.join(clustered, 'scan'), np.asarray(arrays['image']))
  rng = np.random.default_rng(0)
  chance = np.mean([_hungarian_acc(y, rng.permutation(pred)) for _ in range(20)])
  assert summary['contrastive/scan_acc'] > chance + 0.15, (summary['contrastive/scan_acc'],
                                                          chance)
  assert summary['contrastive/scan_nmi'] > 0.2


@pytest.mark.parametrize('option,value', [
    ('scan_selflabel.method.threshold', 1.0), ('scan.augment.cutout_frac', 2.0),
    ('scan_selflabel.optimizer.lr', 0.0), ('scan.method.name', 'simclr'),
    ('scan_selflabel.method.class_balancing', 1)])
def test_scan_blocks_are_checked_before_anything_runs(option, value, data_dir, tmp_path):
  """In-process (the stage check of the command line, the values not covered by
  tests/test_checks_owners.py's numeric sweep)."""
  from configs import digits_cluster  # pylint: disable=import-outside-toplevel
  from experiments import cluster, common  # pylint: disable=import-outside-toplevel
  config = digits_cluster.get_config()
  config.dataset.data_dir = config.pretrain.dataset.data_dir = data_dir
  block, *path, key = option.split('.')
  target = config[block]
  for p in path:
    target = target[p]
  with target.ignore_type():
    target[key] = value
  with pytest.raises(common.ConfigError, match=re.escape(option)):
    common.check(cluster, config, str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w')
