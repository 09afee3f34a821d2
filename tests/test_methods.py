"""The house holds every registered method: resume is exact and 1 vs 8 devices agree.

Subprocesses (8 simulated CPU devices) train each method of `tlu.methods.names()` for
4 steps, straight and stopped-then-resumed (tests/methods_check.py); a method added
as one file is covered here without an edit. 8 devices against 1: one method of each
family in the default suite (compiling every method twice more costs minutes on 2
cores), every method under `pytest -m slow`.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, xla_flags
from tlu import methods


SHARDS = 2   # side by side: XLA compiles on one core
FAMILIES = ('supervised', 'mocov3', 'dann', 'shot')   # 8 devices in the default suite


def _check(tmp, sharded):
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': ROOT,
         'XLA_FLAGS': xla_flags(8)}
  procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, 'tests', 'methods_check.py'),
                             str(tmp), str(i), str(SHARDS), sharded], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(SHARDS)]
  out = {}
  for proc in procs:
    stdout, stderr = proc.communicate(timeout=1800)
    assert proc.returncode == 0, stderr[-4000:]
    out.update(json.loads(stdout.strip().splitlines()[-1]))
  assert sorted(out) == list(methods.names())
  return out


@pytest.fixture(scope='module')
def results(tmp_path_factory):
  return _check(tmp_path_factory.mktemp('methods'), ','.join(FAMILIES))


@pytest.mark.parametrize('name', methods.names())
def test_stop_and_resume_gives_the_uninterrupted_state_bit_for_bit(results, name):
  r = results[name]
  assert r['stopped'] and r['devices'] == 8
  # The resumed run restored the stopped run's checkpoint and ran only the steps after it
  # (log_every=1: a logged step is a step run); a run that retrained from step 0 with the
  # same seed would reach the same state.
  stop = r['stopped_at']
  assert 1 <= stop < 4 and r['straight_steps'] == [1, 2, 3, 4]
  assert f'resuming from the checkpoint of step {stop}' in r['resume_log']
  assert r['resumed_steps'] == list(range(stop + 1, 5)) and r['final_step'] == 4
  assert r['resume_same_tree']
  assert r['resume_max_diff'] == 0.0   # params, BatchNorm statistics, method state, optimizer


def _agree(r, name):
  assert len(r['losses']) == 4 and np.all(np.isfinite(r['losses'])), name
  assert r['mesh_devices'] == 8 and r['devices_same_tree'], name
  np.testing.assert_allclose(r['losses_8'], r['losses'], rtol=2e-3, atol=1e-4, err_msg=name)
  assert r['devices_max_diff'] < 1e-3, name


@pytest.mark.parametrize('name', FAMILIES)
def test_eight_devices_train_like_one(results, name):
  _agree(results[name], name)


@pytest.mark.slow
def test_every_method_trains_on_eight_devices_like_on_one(tmp_path):
  for name, r in _check(tmp_path, 'all').items():
    _agree(r, name)


def test_every_method_file_is_registered_under_its_own_name():
  for name in methods.names():
    assert methods.get(name).name == name
  with pytest.raises(ValueError, match='unknown method'):
    methods.get('no_such_method')
