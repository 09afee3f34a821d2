"""experiments.train end to end, in subprocesses: devices, kill/resume, preemption, bad input."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import ROOT, assert_resumed, read_jsonl, run_stage, saved_on_devices, xla_flags

SMALL = ('--config.steps=40', '--config.batch_size=64', '--config.eval_batch_size=40',
         '--config.log_every=1', '--config.eval_every=0', '--config.checkpoint_every=10',
         '--config.progress=False')


def _args(workdir, data_dir, *extra):
  return (f'--workdir={workdir}', f'--config.dataset.data_dir={data_dir}', *SMALL, *extra)


def _final_params(workdir):
  ckpt = os.path.join(workdir, 'checkpoints')
  with ocp.CheckpointManager(ckpt, options=ocp.CheckpointManagerOptions(read_only=True)) as m:
    state = m.restore(m.latest_step(), args=ocp.args.Composite(
        state=ocp.args.StandardRestore()))['state']
  return m.latest_step(), state['params'], state['batch_stats']


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope='module')
def reference(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp('ref'))
  proc = run_stage('train', *_args(workdir, data_dir), check=True)
  with open(f'{workdir}.stdout', 'w') as f:  # beside the run directory, not in it
    f.write(proc.stdout)
  return workdir


def test_run_directory_contract(reference):
  for name in ('config.json', 'metrics.jsonl', 'summary.json', 'checkpoints', 'tb'):
    assert os.path.exists(os.path.join(reference, name)), name
  rows = read_jsonl(os.path.join(reference, 'metrics.jsonl'))
  train_rows = [r for r in rows if r['split'] == 'train']
  assert [r['step'] for r in train_rows] == list(range(1, 41))
  assert any(r['split'] == 'test' and r['step'] == 40 for r in rows)
  summary = json.load(open(os.path.join(reference, 'summary.json')))
  assert 0.0 <= summary['test_accuracy'] <= 1.0 and summary['steps'] == 40
  # It learned: 40 Adam steps take the digits' loss from ~ln 10 to under half of it, and
  # the test accuracy 0.4 above chance (0.1; about 0.97 measured).
  assert train_rows[-1]['loss'] < 0.5 * train_rows[0]['loss']
  assert summary['test_accuracy'] > 0.1 + 0.4
  assert any(f.startswith('events') for f in os.listdir(os.path.join(reference, 'tb')))
  assert sorted(int(s) for s in os.listdir(os.path.join(reference, 'checkpoints'))) == [20, 30, 40]
  # Its compile seconds apart from the wall time (tlu.train.compile_time).
  compiled = re.search(r'(?m)^train: compile ([\d.]+) s \((\d+) programs.*\) of ([\d.]+) s$',
                       open(f'{reference}.stdout').read())
  assert compiled and int(compiled[2]) > 0 and 0 <= float(compiled[1]) <= float(compiled[3])


def test_eight_devices_give_the_same_loss_trajectory(reference, tmp_path, data_dir):
  run_stage('train', *_args(tmp_path, data_dir), devices=8, check=True)
  assert saved_on_devices(tmp_path) == {tuple(range(8))}, 'the child ran on 8 devices'
  assert saved_on_devices(reference) == {(0,)}
  one = [r['loss'] for r in read_jsonl(os.path.join(reference, 'metrics.jsonl'))
         if r['split'] == 'train']
  eight = [r['loss'] for r in read_jsonl(tmp_path / 'metrics.jsonl') if r['split'] == 'train']
  np.testing.assert_allclose(eight, one, rtol=2e-3, atol=1e-4)


@pytest.mark.timing   # the signal lands mid-run: alone, after the rest
def test_sigkill_then_rerun_ends_with_the_same_parameters(reference, tmp_path, data_dir):
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': ROOT,
         'XLA_FLAGS': xla_flags(1)}
  proc = subprocess.Popen([sys.executable, '-m', 'experiments.train',
                           *_args(tmp_path, data_dir, '--config.steps=40')],
                          cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  metrics = tmp_path / 'metrics.jsonl'
  deadline = time.time() + 120
  while time.time() < deadline and proc.poll() is None:  # kill after the step-20 checkpoint
    if (tmp_path / 'checkpoints' / '20').exists() and len(metrics.read_text().splitlines()) >= 23:
      break
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  done = [r['step'] for r in read_jsonl(metrics)]
  assert done and max(done) < 40, 'the run must really be killed mid-way'
  before = read_jsonl(metrics)
  rerun = run_stage('train', *_args(tmp_path, data_dir), check=True)
  assert assert_resumed(rerun.stderr, before, metrics, 40, 'train') == 20
  step_a, params_a, stats_a = _final_params(reference)
  step_b, params_b, stats_b = _final_params(tmp_path)
  assert step_a == step_b == 40
  assert (jax.tree_util.tree_structure((params_a, stats_a))
          == jax.tree_util.tree_structure((params_b, stats_b)))
  assert len(_leaves((params_a, stats_a))) == len(_leaves((params_b, stats_b)))
  for a, b in zip(_leaves((params_a, stats_a)), _leaves((params_b, stats_b))):
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


@pytest.mark.timing   # the signal lands mid-run: alone, after the rest
def test_sigterm_saves_a_checkpoint_and_exits(tmp_path, data_dir):
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': ROOT}
  proc = subprocess.Popen([sys.executable, '-m', 'experiments.train',
                           *_args(tmp_path, data_dir, '--config.steps=100000',
                                  '--config.checkpoint_every=100000')],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  metrics = tmp_path / 'metrics.jsonl'
  while proc.poll() is None and not (metrics.exists() and metrics.read_text().count('\n') >= 5):
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 143, err
  assert 'preempted at step' in err
  step = int(err.split('preempted at step ')[1].split(';')[0])
  saved = [int(s) for s in os.listdir(tmp_path / 'checkpoints')]
  assert saved == [step] and step >= 5


@pytest.mark.parametrize('args, devices, message', [
    (('--config.nope=1',), 1, "unknown config key 'nope'"),
    (('--config.steps=ten',), 1, 'invalid literal for int'),
    (('--config.dataset.name=no_such_dataset',), 1, "unknown dataset 'no_such_dataset'"),
    (('--config.dataset.name=mnist',), 1, 'tfds build mnist'),
    (('--config.batch_size=12',), 8, 'batch_size=12 is not divisible by the 8 devices'),
    (('--config=configs/no_such_config.py',), 1, 'config file configs/no_such_config.py does not'),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, data_dir, args, devices, message):
  proc = run_stage('train', f'--workdir={tmp_path}/w', f'--config.dataset.data_dir={data_dir}',
                   *args, devices=devices)
  assert proc.returncode == 2
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert lines == [lines[-1]] and lines[-1].startswith('error: ') and message in lines[-1], lines
  assert not os.path.exists(f'{tmp_path}/w'), 'nothing is written for bad input'


def test_workdir_with_another_config_is_refused_and_untouched(reference, data_dir):
  before = {f: os.path.getmtime(os.path.join(reference, f)) for f in
            ('config.json', 'metrics.jsonl', 'summary.json')}
  ckpts = sorted(os.listdir(os.path.join(reference, 'checkpoints')))
  proc = run_stage('train', *_args(reference, data_dir, '--config.optimizer.lr=0.5'))
  assert proc.returncode == 2
  assert 'holds a run with a different config (optimizer.lr: 0.002 -> 0.5)' in proc.stderr
  after = {f: os.path.getmtime(os.path.join(reference, f)) for f in before}
  assert after == before
  assert sorted(os.listdir(os.path.join(reference, 'checkpoints'))) == ckpts


def test_non_finite_loss_stops_names_the_step_and_keeps_good_checkpoints(tmp_path, data_dir):
  # SGD at lr 1e30 overflows within a few steps; checkpoints every 2 steps.
  proc = run_stage('train', *_args(tmp_path, data_dir, '--config.optimizer.name=sgd',
                                   '--config.optimizer.lr=1e30', '--config.optimizer.warmup_steps=0',
                                   '--config.checkpoint_every=2'))
  assert proc.returncode == 3, proc.stderr
  bad = int(proc.stderr.split('loss is not finite at step ')[1].split(';')[0])
  saved = [int(s) for s in os.listdir(tmp_path / 'checkpoints')]
  assert all(s < bad for s in saved)
  for row in read_jsonl(tmp_path / 'metrics.jsonl'):
    assert np.isfinite(row['loss'])
