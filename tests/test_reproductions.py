"""Every reproduction config runs its own code path on mocked catalog data, on 1 and 8 devices.

The SimCLR, ResNet-50 and SVHN -> MNIST configs run on both; the other self-supervised
recipes on 8 only (their 1-device path is SimCLR's, and every method's 1-vs-8
agreement is tests/test_methods.py's).

Shrunk only in size (steps, batch, width, image size, neighbours): the stages,
models, objectives, augmentations, sharding and per-host data split are the
configs' own. 8 simulated devices exercise the sharded path and the global-batch
contrastive loss.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, saved_on_devices, xla_flags

pytestmark = pytest.mark.slow  # ResNet compiles take minutes on 2 CPU cores: `pytest -m slow`


def mock_stage(stage, config, workdir, *args, devices=1, examples=32):
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': ROOT,
         'XLA_FLAGS': xla_flags(devices)}
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'tests', 'mock_stage.py'), stage, str(examples),
       f'--config={config}', f'--workdir={workdir}', *args],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  runs = [base for base, dirs, _ in os.walk(workdir) if 'checkpoints' in dirs]
  for run in runs:   # every run the child trained, on `devices` devices
    assert saved_on_devices(run) == {tuple(range(devices))}, run
  with open(os.path.join(workdir, 'summary.json')) as f:
    return json.load(f)


SSL_SMALL = ('--config.progress=False', '--config.steps=2', '--config.batch_size=16', '--config.eval_batch_size=16',
             '--config.eval_every=0', '--config.checkpoint_every=2', '--config.log_every=1',
             '--config.model.width=8', '--config.evals.knn.k=5',
             '--config.evals.kmeans.n_init=1', '--config.evals.linear_probe.steps=5')
# Each method's heads shrunk to widths that fit together (a predictor ends in its projector's).
SSL_HEADS = {
    'simclr': ('--config.method.projector=(32,16)',),
    'byol': ('--config.method.projector=(32,16)', '--config.method.predictor=(32,16)'),
    'simsiam': ('--config.method.projector=(32,32,16)', '--config.method.predictor=(8,16)'),
    'mocov3': ('--config.method.projector=(32,16)', '--config.method.predictor=(32,16)'),
    'barlow_twins': ('--config.method.projector=(32,32,16)',),
    'vicreg': ('--config.method.projector=(32,32,16)',),
    'dino': ('--config.method.projector=(32,32,16)', '--config.method.num_prototypes=64'),
    'swav': ('--config.method.projector=(32,16)', '--config.method.num_prototypes=30',
             '--config.method.freeze_prototypes_steps=1'),
}
R50_SMALL = ('--config.progress=False', '--config.steps=2', '--config.batch_size=16', '--config.eval_batch_size=16',
             '--config.eval_every=0', '--config.checkpoint_every=2', '--config.log_every=1',
             '--config.model.width=8', '--config.dataset.image_size=32')


@pytest.mark.parametrize('devices', [1, 8])
def test_cifar10_simclr_then_kmeans(tmp_path, devices):
  s = mock_stage('pretrain', 'configs/cifar10_ssl.py:simclr', tmp_path / 'simclr', *SSL_SMALL,
                 *SSL_HEADS['simclr'], devices=devices)
  assert s['steps'] == 2 and 0 <= s['knn_accuracy'] <= 1 and 0 <= s['linear_probe_accuracy'] <= 1
  assert 0 <= s['online_probe_accuracy'] <= 1
  c = mock_stage('cluster', 'configs/cifar10_kmeans.py', tmp_path / 'kmeans',
                 f'--config.source={tmp_path / "simclr"}', '--config.batch_size=16',
                 '--config.pca_components=8', '--config.n_init=1', '--config.tsne=False',
                 devices=devices)
  assert 0 <= c['contrastive/acc'] <= 1
  small = [f'--config.{b}.{k}' for b in ('scan', 'scan_selflabel')
           for k in ('steps=2', 'batch_size=8', 'eval_batch_size=16', 'checkpoint_every=2',
                     'progress=False')]
  s = mock_stage('cluster', 'configs/cifar10_scan.py', tmp_path / 'scan',
                 f'--config.source={tmp_path / "simclr"}', '--config.batch_size=16',
                 '--config.pca_components=8', '--config.n_init=1', '--config.tsne=False',
                 '--config.scan.method.num_neighbors=3', *small, devices=devices)
  for run in ('scan', 'scan_selflabel'):
    assert 0 <= s[f'contrastive/{run}_acc'] <= 1


@pytest.mark.parametrize('method', [m for m in SSL_HEADS if m != 'simclr'])
def test_cifar10_ssl_every_method(tmp_path, method):
  s = mock_stage('pretrain', f'configs/cifar10_ssl.py:{method}', tmp_path / method, *SSL_SMALL,
                 *SSL_HEADS[method], devices=8)
  assert s['steps'] == 2 and np.isfinite(s['train_loss'])
  for key in ('online_probe_accuracy', 'knn_accuracy', 'linear_probe_accuracy'):
    assert 0 <= s[key] <= 1, key


def test_cifar10_ssl_recipes_are_solo_learns():
  sys.path.insert(0, ROOT)
  from configs import cifar10_ssl  # pylint: disable=import-outside-toplevel
  c = cifar10_ssl.get_config('simclr_knn200')
  assert c.batch_size == 512 and c.steps == 200 * 50_000 // 512 and c.evals.knn.k == 200
  # solo-learn's classifier_lr / lr (scripts/pretrain/cifar/*.yaml) as the probe's multiplier.
  for method, (lr, classifier_lr) in {'simclr': (0.4, 0.1), 'byol': (1.0, 0.1),
                                      'mocov3': (0.3, 0.3), 'swav': (0.6, 0.1)}.items():
    c = cifar10_ssl.get_config(method)
    assert c.online_probe and c.optimizer.lr == lr and c.steps == 1000 * 50_000 // 256
    assert c.freeze == (('online_probe/.*', pytest.approx(classifier_lr / lr)),)
    assert (c.evals.knn.k, c.evals.knn.temperature) == (200, 0.1)
  assert set(cifar10_ssl.RECIPES) == set(SSL_HEADS)


@pytest.mark.parametrize('devices', [1, 8])
def test_imagenet_resnet50_then_transfer(tmp_path, devices):
  s = mock_stage('train', 'configs/imagenet_resnet50.py', tmp_path / 'r50', *R50_SMALL,
                 devices=devices, examples=16)
  assert s['steps'] == 2
  t = mock_stage('transfer', 'configs/resnet50_transfer.py', tmp_path / 'transfer',
                 f'--config.source={tmp_path / "r50"}', '--config.strategies=("linear_probe","finetune")',
                 '--config.steps=2', '--config.lp_steps=1', '--config.batch_size=16',
                 '--config.eval_batch_size=16', '--config.dataset.image_size=32',
                 devices=devices, examples=16)
  assert 0 <= t['finetune/lpc0/test_accuracy'] <= 1 and 0 <= t['linear_probe/lpc0/test_accuracy'] <= 1


ADAPT_SMALL = ('--config.source_task.steps=2', '--config.source_task.batch_size=16',
               '--config.source_task.eval_batch_size=16', '--config.source_task.eval_every=0',
               '--config.source_task.checkpoint_every=2', '--config.target_oracle.steps=2',
               '--config.target_oracle.batch_size=16', '--config.target_oracle.eval_batch_size=16',
               '--config.target_oracle.eval_every=0', '--config.target_oracle.checkpoint_every=2',
               '--config.eval_batch_size=16', '--config.dann.steps=2', '--config.dann.batch_size=8',
               '--config.shot.epochs=1', '--config.shot.steps_per_epoch=2',
               '--config.shot.batch_size=8')


@pytest.mark.parametrize('devices', [1, 8])
def test_svhn_to_mnist_every_method(tmp_path, devices):
  s = mock_stage('adapt', 'configs/svhn_to_mnist.py', tmp_path / 'adapt', *ADAPT_SMALL,
                 devices=devices, examples=32)
  for method in ('source_only', 'dann', 'shot', 'target_oracle'):
    assert 0 <= s[f'{method}/target_test_accuracy'] <= 1


SEMI_SMALL = ('--config.task.steps=2', '--config.task.batch_size=8',
              '--config.task.eval_batch_size=16', '--config.task.eval_every=2',
              '--config.task.checkpoint_every=2', '--config.task.log_every=1',
              '--config.task.progress=False', '--config.task.model.depth=10',
              '--config.labels_per_class=(1,)', '--config.fixmatch.mu=2')


@pytest.mark.parametrize('devices', [1, 8])
def test_cifar10_semi_fixmatch_on_a_wideresnet(tmp_path, devices):
  s = mock_stage('semi', 'configs/cifar10_semi.py', tmp_path / 'semi', *SEMI_SMALL,
                 devices=devices, examples=40)
  for metric in ('test_accuracy', 'selected_test_accuracy', 'validation_accuracy'):
    assert 0 <= s[f'fixmatch/lpc1/{metric}'] <= 1


def test_cifar10_semi_recipe_is_fixmatch_s():
  sys.path.insert(0, ROOT)
  from configs import cifar10_semi  # pylint: disable=import-outside-toplevel
  c = cifar10_semi.get_config()
  assert c.methods == ('fixmatch',) and c.labels_per_class == (4, 25, 400)   # 40 / 250 / 4,000
  assert (c.task.model.name, c.task.model.depth, c.task.model.widen_factor) == (
      'wideresnet', 28, 2)
  o = c.task.optimizer
  assert (o.name, o.lr, o.momentum, o.weight_decay, o.schedule) == (
      'sgd', 0.03, 0.9, 5e-4, 'fixmatch_cosine')
  assert (c.task.batch_size, c.task.steps, c.fixmatch.mu) == (64, 2**20, 7)
  assert c.fixmatch.strong == 'randaugment' and c.fixmatch.weak == 'flip_translate'
  from tlu.methods import fixmatch  # pylint: disable=import-outside-toplevel
  assert 'threshold' not in c.fixmatch and 'unsup_weight' not in c.fixmatch
  assert fixmatch.FixMatch.defaults['threshold'] == 0.95   # FixMatch's tau and lambda_u
  assert fixmatch.FixMatch.defaults['unsup_weight'] == 1.0
