"""kill -9 while a checkpoint is written, then resume: exact for a self-supervised method with a
momentum target (MoCo v3) and a source-free adaptation method with host-side pseudo-labels (SHOT).

(The supervised family: tests/test_reliability.py.) Each run is compared bit for bit, method
state included, with the same command run without interruption, and shown to have resumed:
the rerun names the step it restored and runs only the steps after it.
"""

import os
import signal
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import ROOT, assert_resumed, read_jsonl, run_stage, xla_flags

# A narrow backbone and small batches: the resume property does not depend on the size.
SSL = ('--config=configs/digits_ssl.py:mocov3', '--config.steps=6', '--config.batch_size=16',
       '--config.model.widths=(16, 32)',
       '--config.log_every=1', '--config.eval_every=0', '--config.checkpoint_every=2',
       '--config.progress=False', '--config.pixel_baseline=False', '--config.evals={}')
ADAPT = ('--config.methods=("shot",)', '--config.seeds=(0,)', '--config.eval_batch_size=120',
         '--config.source_task.steps=4', '--config.source_task.batch_size=32',
         '--config.source_task.eval_every=0', '--config.source_task.checkpoint_every=4',
         '--config.source_task.eval_batch_size=120', '--config.shot.epochs=3',
         '--config.shot.steps_per_epoch=2', '--config.shot.batch_size=16',
         '--config.shot.checkpoint_every=2', '--config.shot.eval_every=2',
         '--config.shot.log_every=1')


def _state(checkpoints):
  with ocp.CheckpointManager(str(checkpoints),
                             options=ocp.CheckpointManagerOptions(read_only=True)) as m:
    step = m.latest_step()
    state = m.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))['state']
  return step, state


def _assert_equal(a, b):
  (step_a, state_a), (step_b, state_b) = _state(a), _state(b)
  assert step_a == step_b
  assert jax.tree.structure(state_a) == jax.tree.structure(state_b)
  assert len(jax.tree.leaves(state_a)) == len(jax.tree.leaves(state_b))
  for x, y in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  return state_a


def _killed_at(step, stage, *args):
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': ROOT,
         'XLA_FLAGS': xla_flags(1)}
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'fault_stage.py'), str(step),
                         stage, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def test_mocov3_killed_mid_checkpoint_resumes_with_its_momentum_encoder_bit_for_bit(
    tmp_path, data_dir):
  data = f'--config.dataset.data_dir={data_dir}'
  run_stage('pretrain', *SSL, data, f'--workdir={tmp_path / "straight"}', check=True)
  _killed_at(4, 'pretrain', *SSL, data, f'--workdir={tmp_path / "killed"}')
  before = read_jsonl(tmp_path / 'killed' / 'metrics.jsonl')
  rerun = run_stage('pretrain', *SSL, data, f'--workdir={tmp_path / "killed"}', check=True)
  assert assert_resumed(rerun.stderr, before, tmp_path / 'killed' / 'metrics.jsonl', 6,
                        'pretrain') in (2, 4)
  state = _assert_equal(tmp_path / 'straight' / 'checkpoints', tmp_path / 'killed' / 'checkpoints')
  assert set(state['extra']['target']['params']) == {'backbone', 'projector'}


@pytest.mark.slow   # heavy: the slow tier (`pytest -m slow`)
def test_shot_killed_mid_checkpoint_resumes_with_its_pseudo_labels_bit_for_bit(tmp_path, data_dir):
  data = (f'--config.source_task.dataset.data_dir={data_dir}',
          f'--config.target.data_dir={data_dir}')
  run_stage('adapt', f'--workdir={tmp_path / "straight"}', *data, *ADAPT, check=True)
  # At SHOT's last checkpoint (step 6; the source run's only one is step 4, which a kill
  # there would leave to be retrained from scratch, no resume at all).
  _killed_at(6, 'adapt', f'--workdir={tmp_path / "killed"}', *data, *ADAPT)
  metrics = tmp_path / 'killed' / 'shot' / 'seed0' / 'metrics.jsonl'
  before = read_jsonl(metrics)
  rerun = run_stage('adapt', f'--workdir={tmp_path / "killed"}', *data, *ADAPT, check=True)
  assert assert_resumed(rerun.stderr, before, metrics, 6, 'shot/seed0') in (2, 4)
  cell = ('shot', 'seed0', 'checkpoints')
  state = _assert_equal(tmp_path.joinpath('straight', *cell), tmp_path.joinpath('killed', *cell))
  assert state['extra']['pseudo_labels'].shape == (1437,)
