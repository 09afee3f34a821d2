"""experiments.transfer end to end: loading another run's checkpoint, strategies, failure modes."""

import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import read_jsonl, run_stage
from configs import digits_transfer
from tlu.data import subsets
from tlu.models import build_model, heads
from tlu.transfer.pretrained import PretrainedError, load_pretrained
from tlu.transfer.surgery import transplant

TINY_SOURCE = ('--config.steps=20', '--config.batch_size=32', '--config.eval_batch_size=40',
               '--config.log_every=10', '--config.eval_every=0', '--config.checkpoint_every=10',
               '--config.progress=False')


@pytest.fixture(scope='module')
def source(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp('source'))
  run_stage('train', f'--workdir={workdir}', f'--config.dataset.data_dir={data_dir}', *TINY_SOURCE,
            check=True)
  return workdir


def _listing(root):
  """{relative path: md5} of every file under root."""
  out = {}
  for base, _, files in os.walk(root):
    for f in files:
      p = os.path.join(base, f)
      with open(p, 'rb') as fh:
        out[os.path.relpath(p, root)] = hashlib.md5(fh.read()).hexdigest()
  return out


def test_the_source_run_learned(source):
  # 20 Adam steps on the 8x8 digits: the logged loss falls to under half (2.15 at step 10,
  # 0.60 at 20 measured) and the test accuracy is 0.5 above chance (0.1; 0.88 measured).
  train = [r for r in read_jsonl(os.path.join(source, 'metrics.jsonl')) if r['split'] == 'train']
  assert [r['step'] for r in train] == [10, 20]
  assert train[-1]['loss'] < 0.5 * train[0]['loss']
  assert json.load(open(os.path.join(source, 'summary.json')))['test_accuracy'] > 0.1 + 0.5


def _flat(tree, prefix=''):
  out = {}
  for k, v in tree.items():
    out.update(_flat(v, f'{prefix}{k}/') if isinstance(v, dict) else {prefix + k: np.asarray(v)})
  return out


def _checkpoint(run_dir):
  """{'params/...', 'batch_stats/...': array} of the latest checkpoint of a run directory."""
  with ocp.CheckpointManager(str(run_dir / 'checkpoints'),
                             options=ocp.CheckpointManagerOptions(read_only=True)) as m:
    state = m.restore(m.latest_step(), args=ocp.args.Composite(
        state=ocp.args.StandardRestore()))['state']
  return _flat({'params': state['params'], 'batch_stats': state['batch_stats']})


def test_train_checkpoint_loads_into_a_model_with_another_head(source):
  variables, model_cfg, step = load_pretrained(source)
  assert step == 20 and model_cfg['name'] == 'cnn'
  target_model = build_model(model_cfg, {'head': heads.classifier(3)})
  fresh = jax.jit(target_model.init)(jax.random.key(7), jnp.zeros((1, 8, 8, 1)))
  new, report = transplant(variables, fresh, adapters=('reinit_mismatched',))
  src, got, init = _flat(variables), _flat(new), _flat(fresh)
  for path, value in got.items():
    if path.startswith(('params/backbone/', 'batch_stats/backbone/')):
      np.testing.assert_array_equal(value, src[path])
  np.testing.assert_array_equal(got['params/head/kernel'], init['params/head/kernel'])
  assert got['params/head/kernel'].shape == (512, 3) and src['params/head/kernel'].shape == (512, 10)
  assert ('params/head/kernel', 'reinit_mismatched') in report.kept_fresh


def test_missing_source_fails_clearly(tmp_path):
  with pytest.raises(PretrainedError, match='does not exist'):
    load_pretrained(str(tmp_path / 'nowhere'))
  with pytest.raises(PretrainedError, match='not a tlu run directory'):
    load_pretrained(str(tmp_path))


def test_sweep_runs_every_strategy_and_linear_probe_keeps_the_backbone(source, tmp_path, data_dir):
  work = tmp_path / 'transfer'
  proc = run_stage('transfer', f'--workdir={work}', f'--config.source={source}',
                   f'--config.dataset.data_dir={data_dir}', '--config.labels_per_class=(1,)',
                   '--config.seeds=(0,)', '--config.steps=6', '--config.lp_steps=3',
                   '--config.batch_size=16', '--config.eval_batch_size=32', check=True)
  summary = json.load(open(work / 'summary.json'))
  for s in ('scratch', 'linear_probe', 'finetune', 'lp_ft'):
    # One label per class of 5 (chance 0.2): every strategy 0.08 above it (0.32 to 0.49
    # measured).
    assert 0.2 + 0.08 < summary[f'{s}/lpc1/test_accuracy'] <= 1.0, s
    assert f'| {s} |' in (work / 'report.md').read_text()
  assert 'copied' in proc.stdout and 'params/backbone/conv0/kernel' in proc.stdout
  # The linear probe's final checkpoint: backbone params and BN statistics bit-for-bit the source's.
  src = _flat(load_pretrained(source)[0])
  probed = _checkpoint(work / 'linear_probe' / 'lpc1_seed0')
  backbone = [p for p in probed if '/backbone/' in f'/{p}']
  assert len(backbone) == 12
  for path in backbone:
    np.testing.assert_array_equal(probed[path], src[path])
  # ... while the fresh head (the cell's init, seed 0) has trained.
  model = build_model(load_pretrained(source)[1], {'head': heads.classifier(5)})
  fresh = _flat(jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1))))
  assert not np.allclose(probed['params/head/kernel'], fresh['params/head/kernel'])
  rows = read_jsonl(work / 'linear_probe' / 'lpc1_seed0' / 'metrics.jsonl')
  assert rows[-1]['split'] == 'test'
  # Every strategy learned its few labels: the training loss falls over the cell's run.
  for s in ('scratch', 'linear_probe', 'finetune', 'lp_ft'):
    train = [r['loss'] for r in read_jsonl(work / s / 'lpc1_seed0' / 'metrics.jsonl')
             if r['split'] == 'train']
    assert len(train) >= 2 and train[-1] < train[0], (s, train)
  # Re-running the same command does not retrain finished cells: no step runs, no file of
  # any cell changes (metrics.jsonl, checkpoints, summaries).
  cells_before = {s: _listing(work / s) for s in ('scratch', 'linear_probe', 'finetune', 'lp_ft')}
  again = run_stage('transfer', f'--workdir={work}', f'--config.source={source}',
                    f'--config.dataset.data_dir={data_dir}', '--config.labels_per_class=(1,)',
                    '--config.seeds=(0,)', '--config.steps=6', '--config.lp_steps=3',
                    '--config.batch_size=16', '--config.eval_batch_size=32', check=True)
  assert json.load(open(work / 'summary.json')) == summary
  assert 'resuming' not in again.stderr
  assert {s: _listing(work / s) for s in cells_before} == cells_before


@pytest.mark.parametrize('args, message', [
    (('--config.source=/no/such/run',), 'source workdir /no/such/run does not exist'),
    (('--config.strategies=("freeze_all",)',), "unknown strategy 'freeze_all'"),
    (('--config.head_init=imprint',), 'head_init=imprint needs head_l2_scale > 0'),
    (('--config.head_init=means',), "head_init 'means': use one of"),
    (('--config.labels_per_class=(1, 200)',), 'has too few examples of classes {5: 145'),
    (('--config.source={src}',), 'has no checkpoints'),
    (('--config.steps=0',), 'steps=0: must be an integer >= 1'),
])
def test_bad_transfer_input(tmp_path, data_dir, args, message):
  src = tmp_path / 'untrained_source'   # a run directory whose training never saved
  src.mkdir()
  (src / 'config.json').write_text(json.dumps(digits_transfer.get_config().source_task.to_dict()))
  proc = run_stage('transfer', f'--workdir={tmp_path}/w', f'--config.dataset.data_dir={data_dir}',
                   *(a.format(src=src) for a in args))
  assert proc.returncode == 2 and message in proc.stderr, proc.stderr
  assert not os.path.exists(f'{tmp_path}/w')


def test_imprinted_probe_before_any_update_is_the_nearest_class_mean_classifier(
    source, tmp_path, data_dir):
  # One step at the warmup's lr 0 leaves the imprinted head as it is: the cell's test
  # accuracy must be that of cosine nearest-class-mean on the source's features (numpy).
  work = tmp_path / 'imprint'
  run_stage('transfer', f'--workdir={work}', f'--config.source={source}',
            f'--config.dataset.data_dir={data_dir}', '--config.labels_per_class=(1,)',
            '--config.seeds=(0,)', '--config.steps=1', '--config.strategies=("linear_probe",)',
            '--config.head_l2_scale=10.0', '--config.head_init=imprint', check=True)
  got = json.load(open(work / 'summary.json'))['linear_probe/lpc1/test_accuracy']
  ds = digits_transfer.get_config().dataset
  ds.data_dir = data_dir
  variables, model_cfg, _ = load_pretrained(source)
  model = build_model(model_cfg)
  features = jax.jit(lambda x: model.apply(variables, x)['features'])
  def feats_labels(src):
    images = np.stack([src[i]['image'] for i in range(len(src))]).astype(np.float32) / 255
    f = np.asarray(features(images), np.float64)
    return f / np.linalg.norm(f, axis=1, keepdims=True), np.array([src[i]['label'] for i in range(len(src))])
  shots, shot_labels = feats_labels(subsets.task_source(ds, 'train').subset(1, 0))
  test, test_labels = feats_labels(subsets.task_source(ds, 'test'))
  assert sorted(shot_labels) == [0, 1, 2, 3, 4]
  predicted = shot_labels[np.argmax(test @ shots.T, axis=1)]
  np.testing.assert_allclose(got, np.mean(predicted == test_labels), atol=1.5 / len(test))
  # The loss tells the cosine head (logits 10 * cos) from a head on raw features.
  logits = 10.0 * test @ shots[np.argsort(shot_labels)].T
  ce = np.log(np.exp(logits).sum(1)) - logits[np.arange(len(test)), test_labels]
  test_row = read_jsonl(work / 'linear_probe' / 'lpc1_seed0' / 'metrics.jsonl')[-1]
  np.testing.assert_allclose(test_row['loss'], ce.mean(), rtol=1e-3)


def test_source_that_does_not_fit_fails_before_training(source, tmp_path, data_dir):
  # A 32x32x3 target cannot take an 8x8x1 source's fc layer: one message, both shapes.
  proc = run_stage('transfer', f'--workdir={tmp_path}/w', f'--config.source={source}',
                   f'--config.dataset.data_dir={data_dir}',
                   '--config.dataset.name=tlu_digits/32x32_rgb', '--config.adapters=("in_channels",)')
  assert proc.returncode == 2, proc.stderr
  assert 'backbone/fc/kernel' in proc.stderr and '(512, 512)' in proc.stderr
  assert not os.path.exists(f'{tmp_path}/w/scratch')


def test_lp_ft_fine_tunes_the_whole_model_from_the_probed_state(source, tmp_path, data_dir):
  # The probe phase (lp/) keeps the source backbone; the fine-tuning phase starts from the
  # probed weights: its one step at the warmup's lr 0 leaves every parameter where the probe
  # left it, while its BatchNorm statistics, no longer frozen, move.
  work = tmp_path / 'lp_ft'
  run_stage('transfer', f'--workdir={work}', f'--config.source={source}',
            f'--config.dataset.data_dir={data_dir}', '--config.labels_per_class=(5,)',
            '--config.seeds=(1,)', '--config.steps=1', '--config.lp_steps=3',
            '--config.strategies=("lp_ft",)', '--config.batch_size=16', check=True)
  src = _flat(load_pretrained(source)[0])
  probed = _checkpoint(work / 'lp_ft' / 'lpc5_seed1' / 'lp')
  tuned = _checkpoint(work / 'lp_ft' / 'lpc5_seed1')
  assert sorted(probed) == sorted(tuned)
  for path, value in probed.items():
    if '/backbone/' in f'/{path}':
      np.testing.assert_array_equal(value, src[path], err_msg=path)
    if path.startswith('params/'):
      np.testing.assert_array_equal(tuned[path], value, err_msg=path)
    else:
      assert not np.allclose(tuned[path], value), path
  summary = json.load(open(work / 'lp_ft' / 'lpc5_seed1' / 'summary.json'))
  assert summary['labelled'] == 25 and summary['steps'] == 1
