"""Shared fixtures: one TFDS data dir per test session, subprocess runner for the CLI."""

import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One persistent XLA compilation cache for the session, shared by the subprocesses and
# both xdist workers (they inherit the controller's environment): the CLI tests compile
# the same steps many times. Set before jax is imported.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='tlu-test-xla-cache-')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')

# XLA's CPU backend runs at LLVM -O0, in the subprocesses (the CLI stages, the
# multi-device checks) and in this process: compiles take a third to a half of the time
# (most of the suite's wall time is compiling tiny programs) and a few steps run about as
# fast. HLO passes (fusion, simplification) are unchanged, results differ at most by
# rounding; checks compare runs made under the same flags, or use tolerances.
# TLU_TEST_XLA_FLAGS='' runs everything at XLA's defaults.
TEST_XLA_FLAGS = os.environ.get('TLU_TEST_XLA_FLAGS', '--xla_backend_optimization_level=0')
if TEST_XLA_FLAGS and TEST_XLA_FLAGS not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()


def xla_flags(devices):
  """XLA_FLAGS for a subprocess on `devices` simulated CPU devices, with the test flags."""
  return f'{TEST_XLA_FLAGS} --xla_force_host_platform_device_count={devices}'.strip()


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def _stage_env(xla):
  """The environment of a stage command line: CPU only, the repository importable."""
  return {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': ROOT, 'XLA_FLAGS': xla}


class _StageServer:
  """The client of tests/stage_server.py: one server per pytest process, started lazily."""

  proc = None

  def run(self, stage, args, xla, timeout):
    if self.proc is None or self.proc.poll() is not None:
      self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'tests', 'stage_server.py')],
                                   cwd=ROOT, env=_stage_env(xla), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    request = {'stage': stage, 'args': list(args), 'xla_flags': xla, 'timeout': timeout}
    self.proc.stdin.write(json.dumps(request) + '\n')
    self.proc.stdin.flush()
    reply = json.loads(self.proc.stdout.readline())
    argv = [sys.executable, '-m', f'experiments.{stage}', *args]
    if reply['timed_out']:
      raise subprocess.TimeoutExpired(argv, timeout, reply['stdout'], reply['stderr'])
    return subprocess.CompletedProcess(argv, reply['returncode'], reply['stdout'],
                                       reply['stderr'])


_SERVER = _StageServer()
# TLU_TEST_FORK=0: every command line in a fresh interpreter instead of the stage server
# (the default off Linux: fork after importing jax is only exercised there).
FORK = os.environ.get('TLU_TEST_FORK', '1' if sys.platform.startswith('linux') else '0') != '0'


def run_stage(stage, *args, devices=1, timeout=300, check=False):
  """Runs `python -m experiments.<stage> args...` on `devices` CPU devices.

  In a child forked from tests/stage_server.py (the imports paid once per pytest
  process), or with TLU_TEST_FORK=0 in a fresh interpreter; the same argv, working
  directory, environment and exit status either way.
  """
  if FORK:
    proc = _SERVER.run(stage, args, xla_flags(devices), timeout)
  else:
    proc = subprocess.run([sys.executable, '-m', f'experiments.{stage}', *args], cwd=ROOT,
                          env=_stage_env(xla_flags(devices)), capture_output=True, text=True,
                          timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f'{stage} failed ({proc.returncode}):\n{proc.stderr[-3000:]}')
  return proc


def read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def resumed_from(stderr, desc=None):
  """The steps a stage's log says its runs restored ('<desc>: resuming from the checkpoint of
  step N', tlu.train.session), in order; only the run named `desc` when given."""
  name = re.escape(desc) if desc else r'[^\n]*?'
  return [int(n) for n in re.findall(rf'(?m)^{name}: resuming from the checkpoint of step (\d+)$',
                                     stderr)]


def assert_resumed(stderr, rows_before, metrics_path, last_step, desc=None):
  """The run that printed `stderr` restored a checkpoint and ran only the steps after it.

  Its log names the restored step N (once); metrics.jsonl's rows up to N are the ones the
  earlier process wrote (their measured steps_per_sec included, which a recomputation of
  those steps would rewrite), and every train step 1..last_step is logged exactly once
  (log_every=1: a step run again would be logged again). Returns N.
  """
  steps = resumed_from(stderr, desc)
  assert len(steps) == 1 and 0 <= steps[0] < last_step, (steps, stderr[-2000:])
  step = steps[0]
  rows = read_jsonl(metrics_path)
  assert [r for r in rows if r['step'] <= step] == [r for r in rows_before if r['step'] <= step]
  assert [r['step'] for r in rows if r['split'] == 'train'] == list(range(1, last_step + 1))
  return step


def saved_on_devices(workdir):
  """The device ids of the mesh the arrays of a run's latest checkpoint were saved from
  (orbax's `_sharding` record, written by the process that ran), as a set of tuples."""
  ckpt = os.path.join(workdir, 'checkpoints')
  latest = max(int(s) for s in os.listdir(ckpt) if s.isdigit())
  with open(os.path.join(ckpt, str(latest), 'state', '_sharding')) as f:
    shardings = [json.loads(v) for v in json.load(f).values()]
  return {tuple(d['id'] for d in s['device_mesh']['mesh']) for s in shardings}
