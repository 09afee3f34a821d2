"""The persistent compilation cache a stage turns on, and the compile seconds it prints."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import jax.numpy as jnp

from conftest import ROOT
from tlu.train import compile_time

_PROGRAM = """
import json, sys
import jax, jax.numpy as jnp
from tlu.train import compile_time
if sys.argv[1]:
  compile_time.enable_cache(sys.argv[1])
with compile_time.CompileClock() as clock:
  y = jax.jit(lambda x: jnp.tanh(x @ x.T).sum())(jnp.ones((8, 8)))
  z = jax.jit(lambda x: jnp.cos(x) * 3)(jnp.ones((4,)))
print(json.dumps({'programs': clock.programs, 'hits': clock.cache_hits,
                  'seconds': clock.seconds, 'y': float(y), 'z': z.tolist()}))
"""


def _run(cache):
  env = {k: v for k, v in os.environ.items() if not k.startswith('JAX_PERSISTENT_CACHE')
         and k != 'JAX_COMPILATION_CACHE_DIR'}
  proc = subprocess.run([sys.executable, '-c', _PROGRAM, str(cache)], cwd=ROOT, check=True,
                        env={**env, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': ROOT},
                        capture_output=True, text=True, timeout=120)
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_every_program_from_the_cache(tmp_path):
  cache = tmp_path / 'cache'
  first = _run(cache)
  assert first['hits'] == 0 and first['programs'] >= 2
  assert len(os.listdir(cache)) >= 2  # one entry per program, written by the first process
  second = _run(cache)
  assert second['hits'] == second['programs'] == first['programs']
  assert (second['y'], second['z']) == (first['y'], first['z'])
  off = _run('')  # no cache: compiled again, nothing loaded
  assert off['hits'] == 0 and off['programs'] == first['programs']


def test_the_clock_counts_only_compiles_inside_it():
  x = np.ones(3, np.float32)  # numpy inputs: no program compiled to make them
  f = jax.jit(lambda x: x * 2 + 1)
  f(x)  # compiled before the clock
  with compile_time.CompileClock() as clock:
    f(x)  # already compiled: no event
    assert clock.programs == 0
    jax.jit(lambda x: jnp.sin(x) - x)(x)
  jax.jit(lambda x: x - 7)(x)  # after the clock: not counted
  assert clock.programs == 1 and clock.seconds > 0
  assert clock.line(10).startswith('compile ') and '(1 programs) of 10.0 s' in clock.line(10)
