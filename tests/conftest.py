"""Shared fixtures: one TFDS data dir per test session, subprocess runner for the CLI."""

import json
import os
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


def run_stage(stage, *args, devices=1, timeout=300, check=False):
  """Runs `python -m experiments.<stage> args...` in a subprocess on `devices` CPU devices."""
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': ROOT}
  env['XLA_FLAGS'] = xla_flags(devices)
  proc = subprocess.run([sys.executable, '-m', f'experiments.{stage}', *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f'{stage} failed ({proc.returncode}):\n{proc.stderr[-3000:]}')
  return proc


def read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
