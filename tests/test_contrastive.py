"""NT-Xent against an independent evaluation of SimCLR eq. 1, on 1 and 8 devices."""

import json
import math
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import xla_flags
from tlu.unsupervised.contrastive import nt_xent

REPO = pathlib.Path(__file__).resolve().parents[1]


def simclr_loss_reference(z1, z2, temperature):
  """SimCLR eq. 1 with loops in float64: mean over the 2N anchors, and accuracy."""
  z = np.concatenate([z1, z2]).astype(np.float64)
  two_n = len(z)
  n = two_n // 2
  z = z / np.sqrt((z**2).sum(axis=1, keepdims=True))
  losses, hits = [], []
  for i in range(two_n):
    j = (i + n) % two_n
    sims = {k: float(z[i] @ z[k]) / temperature for k in range(two_n) if k != i}
    denominator = sum(np.exp(s) for s in sims.values())
    losses.append(-np.log(np.exp(sims[j]) / denominator))
    hits.append(max(sims, key=sims.get) == j)
  return float(np.mean(losses)), float(np.mean(hits))


def random_pair(seed, n=6, d=5):
  rng = np.random.default_rng(seed)
  z1 = rng.normal(size=(n, d)).astype(np.float32)
  z2 = (z1 + 0.7 * rng.normal(size=(n, d))).astype(np.float32)
  return z1, z2


@pytest.mark.parametrize('temperature', [0.1, 0.5, 1.0])
def test_nt_xent_matches_simclr_formula(temperature):
  z1, z2 = random_pair(seed=0)
  loss, aux = nt_xent(jnp.asarray(z1), jnp.asarray(z2), temperature)
  expected_loss, expected_accuracy = simclr_loss_reference(z1, z2, temperature)
  assert loss.dtype == jnp.float32
  np.testing.assert_allclose(float(loss), expected_loss, rtol=1e-5)
  np.testing.assert_allclose(float(aux['contrastive_accuracy']), expected_accuracy)


def test_nt_xent_is_scale_invariant_and_float32_for_bf16_inputs():
  z1, z2 = random_pair(seed=1)
  z1_bf16, z2_bf16 = jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16)
  loss, _ = nt_xent(4.0 * z1_bf16, z2_bf16, 0.2)
  expected, _ = simclr_loss_reference(np.asarray(z1_bf16, np.float32),
                                      np.asarray(z2_bf16, np.float32), 0.2)
  assert loss.dtype == jnp.float32
  np.testing.assert_allclose(float(loss), expected, rtol=1e-4)


def test_identical_views_far_apart_give_near_zero_loss():
  z = np.eye(4, dtype=np.float32)  # orthogonal examples, views agree exactly
  loss, aux = nt_xent(jnp.asarray(z), jnp.asarray(z), 0.01)
  assert float(loss) < 1e-6
  assert float(aux['contrastive_accuracy']) == 1.0
  np.testing.assert_allclose(float(aux['positive_similarity']), 1.0, rtol=1e-6)
  np.testing.assert_allclose(float(aux['negative_similarity']), 0.0, atol=1e-6)


def test_nt_xent_gradient_is_finite():
  z1, z2 = random_pair(seed=2)
  grads = jax.grad(lambda a, b: nt_xent(a, b, 0.1)[0], argnums=(0, 1))(
      jnp.asarray(z1), jnp.asarray(z2))
  for g in grads:
    assert np.all(np.isfinite(np.asarray(g)))
    assert np.any(np.asarray(g) != 0)


_SHARDED_SCRIPT = """
import json, sys
import jax, numpy as np
from tlu.train import mesh as mesh_lib
from tlu.unsupervised.contrastive import nt_xent

temperature = float(sys.argv[2])
data = np.load(sys.argv[1])
z1, z2 = data['z1'], data['z2']
mesh = mesh_lib.make_mesh()
batch = mesh_lib.to_global({'z1': z1, 'z2': z2}, mesh)
loss_fn = jax.jit(lambda a, b: nt_xent(a, b, temperature))
sharded_loss, sharded_aux = loss_fn(batch['z1'], batch['z2'])
one_device = jax.devices()[0]
single_loss, _ = loss_fn(jax.device_put(z1, one_device), jax.device_put(z2, one_device))
local_losses = [float(loss_fn(s1.data, s2.data)[0]) for s1, s2 in
                zip(batch['z1'].addressable_shards, batch['z2'].addressable_shards)]
print(json.dumps({
    'num_devices': jax.device_count(),
    'shard_rows': sorted({s.data.shape[0] for s in batch['z1'].addressable_shards}),
    'sharded_loss': float(sharded_loss),
    'sharded_accuracy': float(sharded_aux['contrastive_accuracy']),
    'single_device_loss': float(single_loss),
    'mean_local_loss': float(np.mean(local_losses)),
}))
"""


def test_global_batch_loss_on_8_devices_uses_all_negatives(tmp_path):
  z1, z2 = random_pair(seed=3, n=16, d=8)
  temperature = 0.5
  np.savez(tmp_path / 'z.npz', z1=z1, z2=z2)
  env = {**os.environ,
         'XLA_FLAGS': xla_flags(8),
         'JAX_PLATFORMS': 'cpu',
         'PYTHONPATH': os.pathsep.join(
             [str(REPO), os.environ.get('PYTHONPATH', '')])}
  result = subprocess.run(
      [sys.executable, '-c', _SHARDED_SCRIPT, str(tmp_path / 'z.npz'),
       str(temperature)],
      env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
      check=False)
  assert result.returncode == 0, result.stderr
  out = json.loads(result.stdout.strip().splitlines()[-1])

  expected_loss, expected_accuracy = simclr_loss_reference(z1, z2, temperature)
  assert out['num_devices'] == 8
  assert out['shard_rows'] == [2]  # 16 examples really split 8 ways
  np.testing.assert_allclose(out['sharded_loss'], expected_loss, rtol=1e-5)
  np.testing.assert_allclose(out['single_device_loss'], out['sharded_loss'],
                             rtol=1e-6)
  np.testing.assert_allclose(out['sharded_accuracy'], expected_accuracy)
  # A per-device loss sees 3 of each anchor's 31 negatives; its denominator is
  # a subset of the global one, so it is strictly smaller.
  assert not math.isclose(out['mean_local_loss'], out['sharded_loss'],
                          rel_tol=1e-2)
  assert out['mean_local_loss'] < out['sharded_loss']
