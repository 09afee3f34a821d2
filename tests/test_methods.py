"""The house holds every registered method: resume is exact and 1 vs 8 devices agree.

One subprocess (8 simulated CPU devices) trains each method of `tlu.methods.names()`
for 4 steps three ways (tests/methods_check.py); a method added as one file is
covered here without an edit.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from tlu import methods


@pytest.fixture(scope='module')
def results(tmp_path_factory):
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': ROOT,
         'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'methods_check.py'),
                         str(tmp_path_factory.mktemp('methods'))], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('name', methods.names())
def test_stop_and_resume_gives_the_uninterrupted_state_bit_for_bit(results, name):
  r = results[name]
  assert r['stopped'] and r['devices'] == 8
  assert r['resume_max_diff'] == 0.0   # params, BatchNorm statistics, method state, optimizer


@pytest.mark.parametrize('name', methods.names())
def test_eight_devices_train_like_one(results, name):
  r = results[name]
  assert len(r['losses']) == 4 and np.all(np.isfinite(r['losses']))
  np.testing.assert_allclose(r['losses_8'], r['losses'], rtol=2e-3, atol=1e-4)
  assert r['devices_max_diff'] < 1e-3


def test_every_method_file_is_registered_under_its_own_name():
  for name in methods.names():
    assert methods.get(name).name == name
  with pytest.raises(ValueError, match='unknown method'):
    methods.get('no_such_method')
