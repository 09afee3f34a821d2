"""A full disk, Ctrl-C and a second command on a busy workdir: one line on stderr, its exit
code, nothing half-written that a later run could take for complete, and the same command
then ends bit-equal to an undisturbed run.

The disk is a real tmpfs (mounted here; skipped where mounting is not permitted), filled
by a ballast file; the signals go to real processes (fresh interpreters) at a point the
test waits for (tests/faults_stage.py), never after a fixed sleep.
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import prepare_files as files
from conftest import ROOT, read_jsonl, run_stage, xla_flags

SMALL = ('--config.steps=6', '--config.batch_size=16', '--config.eval_batch_size=40',
         '--config.log_every=1', '--config.eval_every=0', '--config.checkpoint_every=2',
         '--config.keep_checkpoints=3', '--config.progress=False')


def _args(workdir, data_dir):
  return (f'--workdir={workdir}', f'--config.dataset.data_dir={data_dir}', *SMALL)


def _env():
  return {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': ROOT, 'XLA_FLAGS': xla_flags(1)}


def _faulty(mode, step, ballast, workdir, data_dir):
  """The train stage in a fresh interpreter with one fault point (tests/faults_stage.py)."""
  return [sys.executable, os.path.join(ROOT, 'tests', 'faults_stage.py'), mode, str(step),
          str(ballast), 'train', *_args(workdir, data_dir)]


def _lines(stderr):
  return [l for l in stderr.splitlines() if l.strip()]


def _state(workdir, step=None):
  with ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'),
                             options=ocp.CheckpointManagerOptions(read_only=True)) as m:
    step = m.latest_step() if step is None else step
    state = m.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))['state']
  return step, [np.asarray(x) for x in jax.tree.leaves(state)]


def _assert_same_state(a, b, step=None):
  (step_a, leaves_a), (step_b, leaves_b) = _state(a, step), _state(b, step)
  assert step_a == step_b
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y)


def _listing(root):
  out = {}
  for base, _, names in os.walk(root):
    for n in names:
      p = os.path.join(base, n)
      out[os.path.relpath(p, root)] = hashlib.md5(open(p, 'rb').read()).hexdigest()
  return out


def _wait_for(condition, what, proc=None, timeout=240):
  deadline = time.monotonic() + timeout
  while not condition():
    if proc is not None and proc.poll() is not None:
      raise AssertionError(f'the run ended ({proc.returncode}) before {what}:\n'
                           f'{proc.stderr.read()[-2000:]}')
    if time.monotonic() > deadline:
      raise AssertionError(f'no {what} within {timeout} s')
    time.sleep(0.02)


def _train_steps(workdir):
  return [r['step'] for r in read_jsonl(os.path.join(workdir, 'metrics.jsonl'))
          if r['split'] == 'train']


@pytest.fixture(scope='module')
def reference(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp('ref') / 'run'
  run_stage('train', *_args(workdir, data_dir), check=True)
  return workdir


@pytest.fixture
def disk(tmp_path):
  """A 32 MB tmpfs at tmp_path/disk, unmounted afterwards."""
  root = tmp_path / 'disk'
  root.mkdir()
  try:
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', str(root)], check=True,
                   capture_output=True, timeout=30)
  except (OSError, subprocess.SubprocessError) as e:
    pytest.skip(f'cannot mount a tmpfs here ({e})')
  yield root
  subprocess.run(['umount', '-l', str(root)], check=False, capture_output=True, timeout=30)


def _fill(path):
  """Writes `path` until the disk it is on is full (a real ENOSPC)."""
  with open(path, 'wb', buffering=0) as f:
    try:
      while True:
        f.write(b'\0' * (1 << 16))
    except OSError:
      pass


def _dead_pid():
  proc = subprocess.Popen(['true'])
  proc.wait()
  return proc.pid


def _plant_lock(workdir, **fields):
  from tlu.train import lock  # pylint: disable=import-outside-toplevel
  os.makedirs(workdir, exist_ok=True)
  holder = {**lock.record(), **fields}
  with open(os.path.join(workdir, 'run.lock'), 'w') as f:
    json.dump(holder, f)
  return holder


# ----------------------------------------------------------------------------- a full disk


def test_a_full_disk_at_a_checkpoint_is_one_line_exit_74_then_the_same_command_resumes_exactly(
    disk, reference, data_dir):
  run, ballast = disk / 'run', disk / 'ballast'
  proc = subprocess.run(_faulty('fill', 4, ballast, run, data_dir), cwd=ROOT, env=_env(),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 74, proc.stderr[-3000:]
  assert _lines(proc.stderr) == [
      f'error: no space left on device: cannot write the checkpoint of step 4 in '
      f'{run}/checkpoints; free space and re-run the same command to continue']
  assert sorted(os.listdir(run / 'checkpoints')) == ['2'], 'no partial checkpoint is left'
  assert not (run / 'run.lock').exists()
  _assert_same_state(reference, run, step=2)   # the last intact checkpoint, untouched
  os.remove(ballast)
  resumed = run_stage('train', *_args(run, data_dir), check=True)
  assert 'resuming from the checkpoint of step 2' in resumed.stderr
  _assert_same_state(reference, run)
  assert _train_steps(run) == list(range(1, 7))


def _metrics(root):
  from tlu.train.writers import MetricWriter  # pylint: disable=import-outside-toplevel
  MetricWriter(root, tensorboard=False).write(1, 'train', {'loss': 1.0})


def _tensorboard(root):
  from tlu.train.writers import MetricWriter  # pylint: disable=import-outside-toplevel
  MetricWriter(root).write(1, 'train', {'loss': 1.0})


def _summary(root):
  from tlu.train import workdir  # pylint: disable=import-outside-toplevel
  workdir.write_json(root / 'summary.json', {'accuracy': 0.5})


def _report(root):
  from tlu.train import workdir  # pylint: disable=import-outside-toplevel
  workdir.write_text(root / 'report.md', '# report\n' + 'x' * 10000)


def _picture(root):
  from tlu.train import workdir  # pylint: disable=import-outside-toplevel
  with workdir.open_atomic(root / 'curve.png') as f:   # as the reports save their pictures
    f.write(b'\x89PNG' + b'\0' * 10000)


@pytest.mark.parametrize('write, what', [
    (_metrics, 'metrics.jsonl in {root}'), (_tensorboard, 'TensorBoard events in {root}/tb'),
    (_summary, 'summary.json in {root}'), (_report, 'report.md in {root}'),
    (_picture, 'curve.png in {root}')], ids=lambda x: getattr(x, '__name__', '').strip('_'))
def test_a_full_disk_names_the_file_and_leaves_no_partial_one(disk, write, what):
  from tlu.diskfull import DiskFull  # pylint: disable=import-outside-toplevel
  root = disk / 'run'
  root.mkdir()
  (root / 'summary.json').write_text('{"before": 1}\n')
  (root / 'report.md').write_text('# before\n')
  before = _listing(root)
  _fill(disk / 'ballast')
  with pytest.raises(DiskFull) as e:
    write(root)
  assert str(e.value) == (f'no space left on device: cannot write {what.format(root=root)}; '
                          'free space and re-run the same command to continue')
  left = {k: v for k, v in _listing(root).items() if k not in before or before[k] != v}
  assert all(os.path.getsize(root / k) == 0 or k.startswith('tb/') for k in left), left
  assert not [k for k in left if k.endswith('.tmp')], left
  assert {k: v for k, v in _listing(root).items() if k in before} == before


def test_a_full_disk_while_preparing_a_dataset_is_one_line_exit_74_leaving_nothing(
    disk, tmp_path):
  files.digit_folder(tmp_path / 'src', per_class=2)
  data_dir = disk / 'tfds'
  data_dir.mkdir()
  _fill(disk / 'ballast')
  proc = run_stage('prepare', '--config=configs/prepare.py:image_folder',
                   f'--config.path={tmp_path / "src"}', '--config.name=mine',
                   f'--config.data_dir={data_dir}', '--config.workers=1')
  assert proc.returncode == 74, proc.stderr[-3000:]
  assert _lines(proc.stderr) == [
      f'error: no space left on device: cannot write dataset mine in {data_dir}; free space '
      'and re-run the same command to continue']
  assert os.listdir(data_dir) == []


# ----------------------------------------------------------------------------- Ctrl-C, one lock


def _interrupted(run, mode, data_dir, meanwhile):
  """Runs the train stage with fault point `mode` at step 3 (tests/faults_stage.py), calls
  meanwhile(proc) once the loop waits there, then sends SIGINT; returns (status, stderr,
  seconds from that SIGINT to the end)."""
  marker = run.parent / f'{mode} at step 3'
  proc = subprocess.Popen(_faulty(mode, 3, marker, run, data_dir), cwd=ROOT, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  try:
    _wait_for(lambda: marker.exists() and (run / 'checkpoints' / '2').is_dir(), 'step 3', proc)
    meanwhile(proc)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err, time.monotonic() - t0
  finally:
    proc.kill()


def test_ctrl_c_twice_abandons_the_save_then_once_saves_the_step_and_resume_is_exact(
    tmp_path, reference, data_dir):
  run = tmp_path / 'run'
  kept = {}

  def first_ctrl_c(proc):   # the save it starts never finishes (a slow disk)
    kept.update(_listing(run / 'checkpoints' / '2'))
    proc.send_signal(signal.SIGINT)
    _wait_for(lambda: any(n.startswith('3.orbax-checkpoint-tmp')
                          for n in os.listdir(run / 'checkpoints')), 'save of step 3', proc)

  code, err, took = _interrupted(run, 'stall', data_dir, first_ctrl_c)
  assert code == -signal.SIGINT, err[-3000:]   # a shell reports 130
  assert took < 10, f'{took:.1f} s: the second Ctrl-C stops at once'
  assert _lines(err) == ['error: interrupted twice: stopped at once, a checkpoint being written '
                         'is abandoned; re-run the same command to resume from the last '
                         'complete one']
  assert '3' not in os.listdir(run / 'checkpoints'), 'the partial checkpoint is never promoted'
  assert _listing(run / 'checkpoints' / '2') == kept
  assert not (run / 'run.lock').exists()

  def second_command(proc):   # while the run holds the workdir
    holder = json.loads((run / 'run.lock').read_text())
    assert (holder['pid'], holder['host']) == (proc.pid, socket.gethostname())
    before = _listing(run)
    second = run_stage('train', *_args(run, data_dir))
    assert second.returncode == 2, second.stderr[-3000:]
    assert _lines(second.stderr) == [
        f'error: {run} is in use by process {proc.pid} on host {socket.gethostname()}, started '
        f'{holder["started"]}; wait for it to finish or stop it, or use another --workdir']
    assert _listing(run) == before, 'the refused command wrote nothing'

  code, err, _ = _interrupted(run, 'hold', data_dir, second_command)
  assert code == -signal.SIGINT, err[-3000:]
  assert _lines(err) == ['train: resuming from the checkpoint of step 2',
                         'error: interrupted (Ctrl-C) at step 3; checkpoint saved, re-run to '
                         'resume']
  assert sorted(os.listdir(run / 'checkpoints')) == ['2', '3'], 'the abandoned save is gone'
  assert not (run / 'run.lock').exists()
  stale = _plant_lock(run, pid=_dead_pid())   # as a kill -9 would leave it
  resumed = run_stage('train', *_args(run, data_dir), check=True)
  assert [l for l in _lines(resumed.stderr) if l.startswith('note:')] == [
      f'note: {run}: taking over the lock of process {stale["pid"]} on host {stale["host"]}, '
      f'started {stale["started"]}, which no longer runs']
  assert 'resuming from the checkpoint of step 3' in resumed.stderr
  _assert_same_state(reference, run)
  assert _train_steps(run) == list(range(1, 7))
  assert not (run / 'run.lock').exists()


def test_another_hosts_lock_is_honoured_and_the_line_says_how_to_remove_it(
    tmp_path, reference, data_dir):
  run = tmp_path / 'run'
  subprocess.run(['cp', '-r', str(reference), str(run)], check=True)
  holder = _plant_lock(run, host='elsewhere', pid=1)
  before = _listing(run)
  proc = run_stage('train', *_args(run, data_dir))
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert _lines(proc.stderr) == [
      f'error: {run} is in use by process 1 on host elsewhere, started {holder["started"]}; '
      f'if that run is over, remove {run}/run.lock']
  assert _listing(run) == before


@pytest.mark.parametrize('held, used', [('pipe', 'pipe/supervised'), ('pipe/transfer', 'pipe')])
def test_a_live_lock_above_or_below_the_workdir_refuses_it(tmp_path, data_dir, held, used):
  sleeper = subprocess.Popen(['sleep', '120'])
  try:
    from tlu.train import lock  # pylint: disable=import-outside-toplevel
    ticks = lock._start_ticks(sleeper.pid)  # pylint: disable=protected-access
    holder = _plant_lock(tmp_path / held, pid=sleeper.pid, start_ticks=ticks)
    before = _listing(tmp_path)
    proc = run_stage('train', *_args(tmp_path / used, data_dir))
  finally:
    sleeper.kill()
    sleeper.wait()
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert _lines(proc.stderr) == [
      f'error: {tmp_path / used} is in use by process {sleeper.pid} on host {holder["host"]}, '
      f'started {holder["started"]} (its lock {tmp_path / held}/run.lock); wait for it to '
      'finish or stop it, or use another --workdir']
  assert _listing(tmp_path) == before


def test_a_lock_covers_the_folders_below_it_for_the_process_that_holds_it(tmp_path):
  from tlu.train import lock  # pylint: disable=import-outside-toplevel
  top = tmp_path / 'new' / 'pipe'
  with lock.held(top):
    assert json.loads((top / 'run.lock').read_text())['pid'] == os.getpid()
    with lock.held(top / 'transfer' / 'lpc1_seed0'):   # a stage or a cell of the same run
      assert not (top / 'transfer').exists()
  assert not (tmp_path / 'new').exists(), 'a run that wrote nothing leaves nothing'


def test_a_lock_naming_a_reused_process_id_is_stale(tmp_path):
  from tlu.train import lock  # pylint: disable=import-outside-toplevel
  sleeper = subprocess.Popen(['sleep', '120'])
  try:
    ticks = lock._start_ticks(sleeper.pid)  # pylint: disable=protected-access
    assert lock.alive({**lock.record(), 'pid': sleeper.pid, 'start_ticks': ticks})
    assert not lock.alive({**lock.record(), 'pid': sleeper.pid, 'start_ticks': ticks - 1})
    assert not lock.alive({**lock.record(), 'pid': sleeper.pid, 'start_ticks': ticks,
                           'boot_id': 'another boot'})
    assert lock.alive({**lock.record(), 'pid': sleeper.pid, 'host': 'elsewhere'})
  finally:
    sleeper.kill()
    sleeper.wait()
  assert not lock.alive({**lock.record(), 'pid': _dead_pid()})
