"""Bad values are refused before compute; damaged run directories never cost a good checkpoint.

Every case runs the real command in a subprocess and compares the final train state
with an uninterrupted run's, bit for bit; every resume also shows where it resumed from
and that the steps before it were not run again (conftest.assert_resumed).
"""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import ROOT, assert_resumed, read_jsonl, resumed_from, run_stage, xla_flags

# Checkpoints at steps 2, 4 and 6 (all kept): the newest, one to fall back to, an oldest.
SMALL = ('--config.steps=6', '--config.batch_size=16', '--config.eval_batch_size=40',
         '--config.log_every=1', '--config.eval_every=0', '--config.checkpoint_every=2',
         '--config.keep_checkpoints=3', '--config.progress=False')


def _args(workdir, data_dir, *extra):
  return (f'--workdir={workdir}', f'--config.dataset.data_dir={data_dir}', *SMALL, *extra)


def _state(workdir):
  ckpt = os.path.join(workdir, 'checkpoints')
  with ocp.CheckpointManager(ckpt, options=ocp.CheckpointManagerOptions(read_only=True)) as m:
    step = m.latest_step()
    state = m.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))['state']
  return step, state


def _assert_same_final_state(a, b):
  (step_a, state_a), (step_b, state_b) = _state(a), _state(b)
  assert step_a == step_b
  assert jax.tree_util.tree_structure(state_a) == jax.tree_util.tree_structure(state_b)
  leaves_a, leaves_b = jax.tree.leaves(state_a), jax.tree.leaves(state_b)
  assert len(leaves_a) == len(leaves_b)
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _listing(root):
  """{relative path: md5} of every file under root."""
  out = {}
  for base, _, files in os.walk(root):
    for f in files:
      p = os.path.join(base, f)
      out[os.path.relpath(p, root)] = hashlib.md5(open(p, 'rb').read()).hexdigest()
  return out


def _one_error_line(proc, code, *needles):
  assert proc.returncode == code, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith('error: '), lines
  for n in needles:
    assert n in lines[0], lines[0]


@pytest.fixture(scope='module')
def reference(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp('ref') / 'run'
  run_stage('train', *_args(workdir, data_dir), check=True)
  return workdir


# ----------------------------------------------------------------------------- bad values


@pytest.mark.parametrize('key, value, message', [
    ('batch_size', 0, 'batch_size=0: must be an integer >= 1'),
    ('batch_size', -8, 'batch_size=-8: must be an integer >= 1'),
    ('steps', 0, 'steps=0: must be an integer >= 1'),
    ('steps', -5, 'steps=-5: must be an integer >= 1'),
    ('checkpoint_every', 0, 'checkpoint_every=0: must be an integer >= 1'),
    ('optimizer.lr', float('nan'), 'optimizer.lr=nan: must be finite'),
    ('optimizer.lr', -0.1, 'optimizer.lr=-0.1: must be a finite number > 0'),
    ('optimizer.weight_decay', -1.0, 'optimizer.weight_decay=-1.0: must be a finite'),
    ('method.label_smoothing', 1.0, 'method.label_smoothing=1.0: must be a number in [0, 1)'),
    ('eval_every', -1, 'eval_every=-1: must be an integer >= 0'),
    ('online_probe', 1, 'online_probe=1: must be True or False'),
])
def test_each_owner_checks_the_keys_of_its_own_block(key, value, message):
  # The house's keys (batch_size, steps, ...), the optimizer's, the method's: each by the
  # code that reads it (tlu.checks.TASK, tlu.train.optim.RANGES, Supervised.ranges); a NaN
  # anywhere when the command line is parsed.
  from configs import digits_supervised  # pylint: disable=import-outside-toplevel
  from tlu import checks  # pylint: disable=import-outside-toplevel
  from tlu.train import task  # pylint: disable=import-outside-toplevel
  config = digits_supervised.get_config()
  *parents, leaf = key.split('.')
  block = config
  for p in parents:
    block = block[p]
  block[leaf] = value
  with pytest.raises(ValueError, match=re.escape(message)):
    checks.check_finite(config)
    task.check_values(config)


def test_a_key_is_checked_by_its_owner_only():
  # A method block's own `k` gets AaD's rule, and no rule in a method that does not declare
  # it; `momentum` is the optimizer's [0, 1] in `optimizer` and BYOL's in BYOL's block.
  from configs import digits_supervised  # pylint: disable=import-outside-toplevel
  from tlu.train import task  # pylint: disable=import-outside-toplevel
  config = digits_supervised.get_config()
  with config.unlocked():
    config.method.k = -3             # supervised declares no `k`
    config.method.margin = -1.0      # nor `margin`
  task.check_values(config)
  config.method = ml_collections.ConfigDict(dict(name='byol', momentum=1.5, projector=(8,),
                                                 predictor=(8,)))
  with pytest.raises(ValueError, match=re.escape('method.momentum=1.5: must be a number in')):
    task.check_values(config)


def test_a_nested_block_is_named_as_the_user_wrote_it():
  # The pipeline's adaptation cell 'dann' reads adapt.dann.optimizer: its range error names
  # that key, through the adapt stage's per-cell checks under the pipeline's prefix.
  from configs import pipeline  # pylint: disable=import-outside-toplevel
  from tlu import checks  # pylint: disable=import-outside-toplevel
  from tlu.adapt import cells  # pylint: disable=import-outside-toplevel
  config = pipeline.get_config()
  cells.check_values(config.adapt)
  config.adapt.dann.optimizer.momentum = 1.5
  with pytest.raises(ValueError, match=re.escape('adapt.dann.optimizer.momentum=1.5')):
    with checks.under('adapt.'):
      cells.check_values(config.adapt)


@pytest.mark.parametrize('flag, message', [
    ('--config.batch_size=0', 'batch_size=0: must be an integer >= 1'),
    ('--config.optimizer.lr=nan', 'optimizer.lr=nan: must be finite'),
    ('--config.method.name=nope', "unknown method 'nope'"),
])
def test_a_bad_value_is_one_line_exit_2_and_writes_nothing(tmp_path, data_dir, flag, message):
  before = _listing(tmp_path)
  proc = run_stage('train', *_args(tmp_path / 'w', data_dir), flag)
  _one_error_line(proc, 2, message)
  assert _listing(tmp_path) == before and not (tmp_path / 'w').exists()


def test_a_non_boolean_online_probe_is_one_line_exit_2(tmp_path, data_dir):
  proc = run_stage('pretrain', '--config=configs/digits_ssl.py', *_args(tmp_path / 'w', data_dir),
                   '--config.online_probe=3')
  _one_error_line(proc, 2, 'online_probe=3')
  assert not (tmp_path / 'w').exists()


def test_an_unscheduled_pattern_naming_no_parameter_is_one_line_exit_2(tmp_path, data_dir):
  proc = run_stage('pretrain', '--config=configs/digits_ssl.py:simsiam',
                   *_args(tmp_path / 'w', data_dir), "--config.optimizer.unscheduled=('head/.*',)")
  _one_error_line(proc, 2, "optimizer.unscheduled entry 'head/.*' matches no parameter path")
  assert not (tmp_path / 'w').exists()


def test_a_workdir_that_is_a_file_is_one_line_exit_2(tmp_path, data_dir):
  (tmp_path / 'w').write_text('not a directory')
  before = _listing(tmp_path)
  proc = run_stage('train', *_args(tmp_path / 'w', data_dir))
  _one_error_line(proc, 2, 'exists and is not a directory')
  assert _listing(tmp_path) == before


def test_garbage_config_json_is_one_line_naming_the_file(tmp_path, reference, data_dir):
  run = tmp_path / 'run'
  shutil.copytree(reference, run)
  (run / 'config.json').write_text('{garbage')
  before = _listing(run)
  proc = run_stage('train', *_args(run, data_dir))
  _one_error_line(proc, 2, str(run / 'config.json'), 'is not valid JSON')
  assert _listing(run) == before


# ----------------------------------------------------------------------------- damaged checkpoints


def _truncate_a_file(step_dir):
  data = sorted((step_dir / 'state' / 'd').iterdir())[0]
  with open(data, 'r+b') as f:
    f.truncate(5)


def _garbage_metadata(step_dir):
  (step_dir / '_CHECKPOINT_METADATA').write_text('{garbage')
  (step_dir / 'state' / '_METADATA').write_text('{garbage')


def _empty(step_dir):
  shutil.rmtree(step_dir)
  step_dir.mkdir()


def _partly_deleted(step_dir):
  shutil.rmtree(step_dir / 'state' / 'ocdbt.process_0')


@pytest.mark.parametrize('damage', [_truncate_a_file, _garbage_metadata, _empty, _partly_deleted],
                         ids=lambda f: f.__name__.strip('_'))
def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(
    tmp_path, reference, data_dir, damage):
  run = tmp_path / 'run'
  shutil.copytree(reference, run)
  damaged_files = _listing(run / 'checkpoints' / '6')
  damage(run / 'checkpoints' / '6')
  kept = _listing(run / 'checkpoints' / '6')
  before = read_jsonl(run / 'metrics.jsonl')
  proc = run_stage('train', *_args(run, data_dir), check=True)
  warnings = [l for l in proc.stderr.splitlines() if l.startswith('warning:')]
  assert len(warnings) == 1 and 'step 6' in warnings[0] and 'resuming from step 4' in warnings[0]
  assert 'Traceback' not in proc.stderr
  assert _listing(run / 'checkpoints_damaged' / '6') == kept   # set aside, not deleted
  del damaged_files
  _assert_same_final_state(reference, run)
  assert assert_resumed(proc.stderr, before, run / 'metrics.jsonl', 6, 'train') == 4


def test_when_no_checkpoint_restores_it_is_one_line_and_nothing_changes(
    tmp_path, reference, data_dir):
  run = tmp_path / 'run'
  shutil.copytree(reference, run)
  for step in (2, 4, 6):
    _partly_deleted(run / 'checkpoints' / str(step))
  before = _listing(run)
  proc = run_stage('train', *_args(run, data_dir))
  _one_error_line(proc, 2, 'no checkpoint restores', 'step 6', 'step 2')
  assert _listing(run) == before


def test_a_truncated_last_metrics_line_is_tolerated(tmp_path, reference, data_dir):
  run = tmp_path / 'run'
  shutil.copytree(reference, run)
  shutil.rmtree(run / 'checkpoints' / '6')
  before = read_jsonl(run / 'metrics.jsonl')
  with open(run / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 7, "split": "tra')
  proc = run_stage('train', *_args(run, data_dir), check=True)
  assert assert_resumed(proc.stderr, before, run / 'metrics.jsonl', 6, 'train') == 4
  _assert_same_final_state(reference, run)


# ----------------------------------------------------------------------------- kills and signals


def _env():
  return {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': ROOT,
          'XLA_FLAGS': xla_flags(1)}


def test_kill_9_during_a_checkpoint_write_then_resume_is_exact(tmp_path, reference, data_dir):
  run = tmp_path / 'run'
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'fault_stage.py'), '4',
                         'train', *_args(run, data_dir)], cwd=ROOT, env=_env(),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == -signal.SIGKILL
  # And a second kill in the same run, this time at the next checkpoint of the resumed run.
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'fault_stage.py'), '6',
                         'train', *_args(run, data_dir)], cwd=ROOT, env=_env(),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == -signal.SIGKILL
  assert resumed_from(proc.stderr, 'train') in ([2], [4]), proc.stderr[-2000:]
  before = read_jsonl(run / 'metrics.jsonl')
  rerun = run_stage('train', *_args(run, data_dir), check=True)
  assert assert_resumed(rerun.stderr, before, run / 'metrics.jsonl', 6, 'train') in (2, 4)
  _assert_same_final_state(reference, run)


@pytest.mark.timing   # the signal lands mid-run: alone, after the rest
@pytest.mark.parametrize('when', ['claimed', 'training'])
def test_sigterm_from_start_up_on_saves_a_checkpoint_and_exits_143(
    tmp_path, reference, data_dir, when):
  run = tmp_path / 'run'
  proc = subprocess.Popen([sys.executable, '-m', 'experiments.train', *_args(run, data_dir)],
                          cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  # Once the run has claimed its workdir (before any compute) or logged its first step:
  # conditions polled against a deadline, not delays that load stretches.
  marker = run / ('config.json' if when == 'claimed' else 'metrics.jsonl')
  deadline = time.monotonic() + 240
  while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
    time.sleep(0.005)
  assert proc.poll() is None, 'the run ended before the signal could be sent'
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 143, err
  lines = [l for l in err.splitlines() if l.strip()]
  assert lines[-1].startswith('error: preempted at step') and 'Traceback' not in err
  preempted = int(lines[-1].split('preempted at step ')[1].split(';')[0])
  assert os.listdir(run / 'checkpoints'), 'a checkpoint was written'
  before = read_jsonl(run / 'metrics.jsonl') if (run / 'metrics.jsonl').exists() else []
  rerun = run_stage('train', *_args(run, data_dir), check=True)
  assert assert_resumed(rerun.stderr, before, run / 'metrics.jsonl', 6, 'train') == preempted
  _assert_same_final_state(reference, run)
