"""Domain adaptation: gradient reversal, DANN's schedule and loss, SHOT's loss, labels and frozen head."""

import hashlib
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.digits_to_digits_m import get_config
from conftest import read_jsonl, run_stage
import ml_collections
from tlu.adapt import cells
from tlu.adapt.grl import dann_lambda, gradient_reversal
from tlu.methods import dann as dann_lib, shot as shot_lib
from tlu.methods.facts import RunFacts
from tlu.models import build_model
from tlu.train import mesh as mesh_lib
from tlu.train.state import TrainState
from tlu.train.step import make_train_step
from tlu.transfer import freeze


def _method(cls, num_classes=3, total=10, **config):
  config = ml_collections.ConfigDict(config)
  model = build_model({'name': 'cnn', 'features': 16}, cls.heads(config, num_classes))
  return cls(config, model, RunFacts(
      num_steps=total, batch_size=8, epoch_steps=1, num_examples=8,
      frozen=tuple(freeze.frozen_patterns(config.get('freeze', ())))))


def _flat(tree):
  return {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


# ----------------------------------------------------------------------------- GRL


@pytest.mark.parametrize('scale', [1.0, 0.25, 3.0])
def test_gradient_reversal_is_identity_forward_and_minus_scale_backward(scale):
  x = jnp.array([-1.0, 0.3, 2.0])
  w = jnp.array([0.5, -2.0, 1.5])
  f = lambda v: jnp.sum(w * jnp.sin(v))
  np.testing.assert_array_equal(gradient_reversal(x, scale), x)
  grad = jax.grad(lambda v: f(gradient_reversal(v, scale)))(x)
  # d/dx f(grl(x)) = -scale * f'(x) = -scale * w * cos(x)
  np.testing.assert_allclose(grad, -scale * np.array([0.5, -2.0, 1.5]) * np.cos([-1.0, 0.3, 2.0]),
                             rtol=1e-6)


def test_gradient_reversal_scale_is_traced_and_gets_no_gradient():
  x = jnp.array([1.0, 2.0])
  g = jax.jit(jax.grad(lambda v, s: jnp.sum(3.0 * gradient_reversal(v, s)), argnums=(0, 1)))
  gx, gs = g(x, 0.5)
  np.testing.assert_allclose(gx, [-1.5, -1.5])
  assert gs == 0.0
  gx, _ = g(x, 2.0)  # same compiled function, another scale
  np.testing.assert_allclose(gx, [-6.0, -6.0])


def test_dann_lambda_matches_hand_values():
  # 2 / (1 + exp(-10 p)) - 1 = tanh(5 p)
  assert float(dann_lambda(0.0)) == 0.0
  np.testing.assert_allclose(float(dann_lambda(0.5)), 0.98661429815, rtol=1e-6)
  np.testing.assert_allclose(float(dann_lambda(1.0)), 0.99990920426, rtol=1e-6)
  np.testing.assert_allclose(dann_lambda(jnp.array([0.1, 0.2])),
                             [math.tanh(0.5), math.tanh(1.0)], rtol=1e-6)


# ----------------------------------------------------------------------------- DANN


@pytest.fixture(scope='module')
def dann_setup():
  method = lambda batch_norm: _method(dann_lib.DANN, domain_head=(8, 1), domain_weight=1.0,
                                     gamma=10.0, batch_norm=batch_norm)
  model = method('joint').model
  variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  rng = np.random.default_rng(0)
  batch = {'image': rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8),
           'label': np.array([0, 1, 2, 1]),
           'target_image': rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)}
  return method, variables, batch


@pytest.mark.parametrize('batch_norm', ['joint', 'per_domain'])
def test_dann_reverses_only_the_backbone_gradient_of_the_domain_loss(dann_setup, batch_norm):
  make, variables, batch = dann_setup
  total, step = 10, 5
  method = make(batch_norm)
  model, loss_fn = method.model, method.objective
  state = {'batch_stats': variables['batch_stats'], 'step': jnp.int32(step), 'extra': {}}
  grads, aux = jax.jit(jax.grad(loss_fn, has_aux=True))(variables['params'], state, batch, None)

  def forward(params, images):
    return model.apply({'params': params, 'batch_stats': variables['batch_stats']},
                       images.astype(jnp.float32) / 255, train=True, heads=('head',),
                       mutable=['batch_stats'])

  def parts(params):  # the same two losses, without any reversal
    if batch_norm == 'joint':
      out, stats = forward(params, jnp.concatenate([batch['image'], batch['target_image']]))
      features, logits = out['features'], out['head'][:4]
    else:  # each domain normalised by its own batch; running averages from the target
      out_s, _ = forward(params, batch['image'])
      out_t, stats = forward(params, batch['target_image'])
      features = jnp.concatenate([out_s['features'], out_t['features']])
      logits = out_s['head']
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
    d = model.apply({'params': params}, 'domain_head', features, method='apply_head')[:, 0]
    bce = optax.sigmoid_binary_cross_entropy(d, jnp.array([0.0] * 4 + [1.0] * 4)).mean()
    return ce, bce, stats['batch_stats']

  g_ce, g_d, stats = jax.jit(lambda p: (jax.grad(lambda q: parts(q)[0])(p),
                                        jax.grad(lambda q: parts(q)[1])(p),
                                        parts(p)[2]))(variables['params'])
  lam = math.tanh(5 * step / total)
  np.testing.assert_allclose(float(aux.metrics['lambda']), lam, rtol=1e-6)
  for path, got in _flat(grads['backbone']).items():
    want = _flat(g_ce['backbone'])[path] - lam * _flat(g_d['backbone'])[path]
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6, err_msg=path)
  for path, got in _flat(grads['domain_head']).items():  # the domain classifier learns normally
    np.testing.assert_allclose(got, _flat(g_d['domain_head'])[path], rtol=2e-4, atol=1e-6)
  for path, got in _flat(grads['head']).items():
    np.testing.assert_allclose(got, _flat(g_ce['head'])[path], rtol=2e-4, atol=1e-6)
  for path, got in _flat(aux.batch_stats).items():
    np.testing.assert_allclose(got, _flat(stats)[path], rtol=1e-5, atol=1e-6, err_msg=path)


# ----------------------------------------------------------------------------- SHOT


def test_information_maximization_matches_numpy():
  logits = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32) * 3
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  eps = 1e-5
  ent = np.mean(-np.sum(p * np.log(p + eps), axis=1))
  pm = p.mean(0)
  div = -np.sum(pm * np.log(pm + eps))
  loss, parts = shot_lib.information_maximization(jnp.asarray(logits))
  np.testing.assert_allclose(float(loss), ent - div, rtol=1e-5)
  np.testing.assert_allclose(float(parts['entropy']), ent, rtol=1e-5)
  np.testing.assert_allclose(float(parts['diversity']), div, rtol=1e-5)


def _shot_reference(features, logits, rounds):
  """SHOT's obtain_label (reference code): cosine nearest centroid, hard refinement rounds."""
  x = np.concatenate([features, np.ones((len(features), 1))], 1)
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  aff = np.exp(logits - logits.max(1, keepdims=True))
  aff /= aff.sum(1, keepdims=True)
  for _ in range(rounds + 1):
    c = aff.T @ x / (1e-8 + aff.sum(0)[:, None])
    cos = (x @ c.T) / np.linalg.norm(c, axis=1)[None]
    labels = cos.argmax(1)
    aff = np.eye(logits.shape[1])[labels]
  return labels


@pytest.mark.parametrize('rounds', [0, 1, 2])
def test_cluster_pseudo_labels_match_shot_reference(rounds):
  rng = np.random.default_rng(2)
  centers = rng.normal(size=(3, 5)) * 2
  truth = rng.integers(0, 3, 60)
  features = np.abs(centers[truth] + rng.normal(size=(60, 5)))
  logits = rng.normal(size=(60, 3)) + 2.0 * np.eye(3)[truth]  # noisy classifier
  labels, centroids = shot_lib.cluster_pseudo_labels(features, logits, rounds)
  np.testing.assert_array_equal(labels, _shot_reference(features, logits, rounds))
  np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, rtol=1e-5)


def test_shot_steps_leave_the_frozen_head_bit_for_bit_and_train_the_backbone():
  method = _method(shot_lib.SHOT, beta=0.3, im_weight=1.0, cluster_rounds=1,
                   freeze=(('head/.*', None),))
  variables = jax.jit(method.model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  tx = freeze.masked_optimizer(lambda: optax.adamw(1e-2, weight_decay=1e-2),
                               variables['params'], (('head/.*', None),))
  step = make_train_step(method, tx, mesh_lib.make_mesh(jax.devices()[:1]))
  rng = np.random.default_rng(3)
  extra = {'pseudo_labels': jnp.asarray(rng.integers(0, 3, 8).astype(np.int32))}
  state = TrainState.create(jax.tree.map(jnp.copy, variables), tx, 0, extra)  # donated
  for _ in range(3):
    state, metrics = step(state, {'image': rng.integers(0, 256, (8, 8, 8, 1), dtype=np.uint8),
                                  'index': rng.permutation(8)})
  assert np.isfinite(float(metrics['loss']))
  for path, value in _flat(state.params['head']).items():
    np.testing.assert_array_equal(value, _flat(variables['params']['head'])[path])
  before, after = _flat(variables['params']['backbone']), _flat(state.params['backbone'])
  assert all(not np.array_equal(after[p], before[p]) for p in before)
  assert not np.array_equal(_flat(state.batch_stats)["['backbone']['bn0']['mean']"],
                            _flat(variables['batch_stats'])["['backbone']['bn0']['mean']"])


# ----------------------------------------------------------------------------- the stage


TINY = ('--config.seeds=(0,)', '--config.eval_batch_size=120',
        '--config.source_task.model.features=32', '--config.target_oracle.model.features=32',
        '--config.source_task.steps=20', '--config.source_task.batch_size=16',
        '--config.source_task.log_every=5',
        '--config.source_task.eval_every=0', '--config.source_task.checkpoint_every=20',
        '--config.source_task.eval_batch_size=120',
        '--config.dann.steps=3', '--config.dann.batch_size=8',
        '--config.shot.epochs=2', '--config.shot.steps_per_epoch=2', '--config.shot.batch_size=8',
        '--config.target_oracle.steps=3', '--config.target_oracle.batch_size=8',
        '--config.target_oracle.checkpoint_every=3', '--config.target_oracle.eval_every=0',
        '--config.target_oracle.eval_batch_size=120',
        # One validator of each kind of split it reads (all: tests/test_validators.py).
        '--config.validators=("source_accuracy", "snd", "devn", "class_ami")')


def _listing(root):
  """{relative path: md5} of every file under root."""
  out = {}
  for base, _, files in os.walk(root):
    for f in files:
      with open(os.path.join(base, f), 'rb') as fh:
        out[os.path.relpath(os.path.join(base, f), root)] = hashlib.md5(fh.read()).hexdigest()
  return out


def test_every_method_runs_and_writes_the_workdir_contract(tmp_path, data_dir):
  work = tmp_path / 'adapt'
  data = (f'--config.source_task.dataset.data_dir={data_dir}',
          f'--config.target.data_dir={data_dir}')
  # The test split stands in for a labelled target validation split here, so the two
  # accuracies of every evaluation must be equal.
  command = (f'--workdir={work}', *data, *TINY, '--config.target_validation_split=test')
  run_stage('adapt', *command, check=True)
  summary = json.load(open(work / 'summary.json'))
  report = (work / 'report.md').read_text()
  assert 'target_test_accuracy' not in summary  # only when a single method runs
  for method in ('source_only', 'dann', 'shot', 'target_oracle'):
    cell = json.load(open(work / method / 'seed0' / 'summary.json'))
    assert 0.0 <= cell['target_test_accuracy'] <= 1.0
    assert summary[f'{method}/target_test_accuracy'] == cell['target_test_accuracy']
    assert f'| {method} |' in report
  assert (work / 'source' / 'seed0' / 'checkpoints').is_dir()
  # The source model learned: its logged loss falls and its (source) test accuracy is 0.25
  # above chance (0.1) after 20 steps.
  source_rows = read_jsonl(work / 'source' / 'seed0' / 'metrics.jsonl')
  source_loss = [r['loss'] for r in source_rows if r['split'] == 'train']
  assert len(source_loss) == 4 and source_loss[-1] < 0.7 * source_loss[0], source_loss
  assert json.load(open(work / 'source' / 'seed0' / 'summary.json'))['test_accuracy'] > 0.1 + 0.25
  rows = read_jsonl(work / 'shot' / 'seed0' / 'metrics.jsonl')
  assert {'im_loss', 'pseudo_ce', 'entropy', 'diversity'} <= set(
      next(r for r in rows if r['split'] == 'train'))
  assert rows[-1]['split'] == 'test' and rows[-1]['step'] == 4
  # SHOT's pseudo-labels are made before the first step and after every epoch but the
  # last; their accuracy is measured on the target train split: logged as such.
  pseudo = [r for r in rows if 'pseudo_label_accuracy' in r]
  assert [(r['split'], r['step']) for r in pseudo] == [('target_train', 0), ('target_train', 2)]
  assert 'domain_accuracy' in read_jsonl(work / 'dann' / 'seed0' / 'metrics.jsonl')[0]
  for method in ('dann', 'shot', 'target_oracle'):
    evals = [r for r in read_jsonl(work / method / 'seed0' / 'metrics.jsonl')
             if r['split'] == 'test']
    assert evals and all(r['validation_accuracy'] == r['accuracy'] for r in evals)
    cell = json.load(open(work / method / 'seed0' / 'summary.json'))
    best = max(r['accuracy'] for r in evals)
    assert cell['selected_step'] == max(r['step'] for r in evals if r['accuracy'] == best)
    assert cell['selected_target_test_accuracy'] == cell['best_target_test_accuracy'] == best
    assert summary[f'{method}/selected_target_test_accuracy'] == best
  assert 'validation-selected' in report
  # Every evaluation of every trained cell logs each validator's score; each cell keeps the
  # step each one picks, selection.validator's as 'selected without target labels'.
  names = ('source_accuracy', 'snd', 'devn', 'class_ami')
  for method in ('dann', 'shot', 'target_oracle'):
    evals = [r for r in read_jsonl(work / method / 'seed0' / 'metrics.jsonl')
             if r['split'] == 'test']
    assert all(np.isfinite(r[f'{n}_score']) for r in evals for n in names)
    cell = json.load(open(work / method / 'seed0' / 'summary.json'))
    assert cell['validator_selected_target_test_accuracy'] == cell[
        'class_ami_selected_target_test_accuracy']
    assert summary[f'{method}/validator_selected_target_test_accuracy'] == cell[
        'validator_selected_target_test_accuracy']
  assert {f'{n}/weighted_spearman' for n in names} <= set(summary)
  assert 'selected without target labels (class_ami)' in report
  assert '## Selection without target labels' in report
  low, high = (summary[f'{m}/target_test_accuracy'] for m in ('source_only', 'target_oracle'))
  for method in ('shot', 'dann'):   # a gap exists only when the oracle is above source_only
    assert (f'{method}/gap_closed' in summary) == (high > low)
    if high > low:
      expected = (summary[f'{method}/target_test_accuracy'] - low) / (high - low)
      assert summary[f'{method}/gap_closed'] == pytest.approx(expected)
  # The same command again reads every finished cell back: no step runs, no file of any
  # run (source or cell: metrics.jsonl, checkpoints, summaries) changes.
  runs = ('source', 'source_only', 'dann', 'shot', 'target_oracle')
  before = {r: _listing(work / r) for r in runs}
  again = run_stage('adapt', *command, check=True)
  assert 'resuming' not in again.stderr and 'training the source' not in again.stdout
  assert {r: _listing(work / r) for r in runs} == before
  assert json.load(open(work / 'summary.json')) == summary


def test_source_runs_are_per_seed_or_given():
  config = get_config('shot')
  assert cells.source_dir(config, '/w', 2) == '/w/source/seed2'
  config.source = '/runs/src/seed{seed}'
  assert cells.source_dir(config, '/w', 1) == '/runs/src/seed1'
  config.source = '/runs/src'
  assert cells.source_dir(config, '/w', 1) == '/runs/src'


@pytest.mark.parametrize('args, message', [
    (('--config.methods=("mmd",)',), "methods: 'mmd' has no config block"),
    (('--config.dann.method.domain_head=(100, 2)',), 'ending in 1'),
    (('--config.shot.method.cluster_rounds=-1',), 'cluster_rounds=-1: must be an integer >= 0'),
    (('--config.methods=("shot",)', '--config.source={src}'), 'has no checkpoints'),
    (('--config.target_validation_split=nope',), "dataset 'tlu_digits_m' has no split 'nope'"),
    (('--config.validators=("snd", "nope")',), "validators: 'nope' is not a validator"),
    (('--config.source_validation_split=',), 'source_accuracy reads a labelled source validation split'),
    (('--config.selection.validator=bnm', '--config.validators=("snd",)'),
     "selection.validator='bnm' must be one of validators (snd)"),
])
def test_bad_input_fails_before_anything_is_written(tmp_path, data_dir, args, message):
  src = tmp_path / 'untrained_source'   # a run directory whose training never saved
  src.mkdir()
  (src / 'config.json').write_text(json.dumps(get_config().source_task.to_dict()))
  proc = run_stage('adapt', f'--workdir={tmp_path}/w', f'--config.target.data_dir={data_dir}',
                   f'--config.source_task.dataset.data_dir={data_dir}',
                   *(a.format(src=src) for a in args))
  assert proc.returncode == 2 and message in proc.stderr, proc.stderr
  assert not (tmp_path / 'w').exists()


def test_selected_step_is_the_best_validation_step_latest_on_ties(tmp_path):
  rows = [dict(step=1, split='train', loss=1.0),
          dict(step=2, split='test', accuracy=0.50, validation_accuracy=0.40),
          dict(step=4, split='test', accuracy=0.70, validation_accuracy=0.60),
          dict(step=6, split='test', accuracy=0.65, validation_accuracy=0.60),
          dict(step=8, split='test', accuracy=0.80, validation_accuracy=0.55)]
  (tmp_path / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  out = cells.selected(str(tmp_path), {'target_test_accuracy': 0.80})
  assert out == {'target_test_accuracy': 0.80, 'selected_step': 6,
                 'selected_target_test_accuracy': 0.65, 'best_target_test_accuracy': 0.80}
  (tmp_path / 'metrics.jsonl').write_text(json.dumps(dict(step=2, split='test', accuracy=0.5)))
  assert cells.selected(str(tmp_path), {'a': 1}) == {'a': 1}
