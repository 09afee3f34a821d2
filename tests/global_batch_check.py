"""A method whose loss uses batch statistics gives the same loss and gradients on 1 and 8
devices for the same global batch: run in a subprocess.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/global_batch_check.py <method>

<method> is `barlow_twins` or `vicreg`; tests call `run_on_eight_devices(method)`. Prints
one JSON line with, for the method's `loss_fn` (the model's forward included) and for its
loss function alone on random embeddings, the values on a 1-device and an 8-device mesh
(batch sharded on `data`), the largest gradient difference, and the mean of the losses of
the 8 per-device slices (what a loss over local batches would give; it must differ, or the
comparison shows nothing).
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tlu import methods
from tlu.methods.facts import RunFacts
from tlu.models import build_model
from tlu.train import mesh as mesh_lib
from tlu.unsupervised import ssl_losses

N, D = 16, 8   # global batch: 2 examples per device on 8 devices

LOSSES = {   # the loss function alone, the paper's weights
    'barlow_twins': lambda z1, z2: ssl_losses.barlow_twins(z1, z2, 5e-3)[0],
    'vicreg': lambda z1, z2: ssl_losses.vicreg(z1, z2, 25.0, 25.0, 1.0)[0],
}


def brightness(key, images):
  """A view transform that does not depend on the sharding: one random gamma per view."""
  return images ** jax.random.uniform(key, (), minval=0.5, maxval=2.0)


def method_loss(name, mesh):
  cls = methods.get(name)
  config = ml_collections.ConfigDict(cls.example_config())
  model = build_model({'name': 'cnn', 'widths': (8, 16), 'features': 16}, cls.heads(config, 10))
  method = cls(config, model, RunFacts(num_steps=10, batch_size=N, epoch_steps=1, num_examples=N),
               augment=brightness)
  variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  model_state = {'batch_stats': variables['batch_stats'], 'step': jnp.int32(0),
                 'extra': method.init_extra(variables, None)}
  images = np.random.default_rng(1).integers(0, 256, (N, 8, 8, 1), dtype=np.uint8)
  repl, sharded = mesh_lib.replicated(mesh), mesh_lib.batch_sharding(mesh)
  batch = {'image': jax.device_put(images, sharded)}
  assert len(batch['image'].addressable_shards) == len(mesh.devices.flat)
  fn = jax.jit(jax.value_and_grad(method.objective, has_aux=True),
               in_shardings=(repl, repl, {'image': sharded}, repl))
  (loss, _), grads = fn(variables['params'], model_state, batch, jax.random.key(2))
  return float(loss), [np.asarray(g, np.float64) for g in jax.tree.leaves(grads)]


def embeddings_loss(name, mesh):
  rng = np.random.default_rng(3)
  scales = np.linspace(0.3, 2.0, D)   # some dimensions under the variance hinge, some over
  z1 = (rng.normal(size=(N, D)) * scales).astype(np.float32)
  z2 = (z1 + 0.5 * rng.normal(size=(N, D))).astype(np.float32)
  sharded = mesh_lib.batch_sharding(mesh)
  fn = jax.jit(jax.value_and_grad(LOSSES[name], argnums=(0, 1)),
               in_shardings=(sharded, sharded))
  loss, grads = fn(jax.device_put(z1, sharded), jax.device_put(z2, sharded))
  local = np.mean([float(LOSSES[name](z1[i:i + 2], z2[i:i + 2])) for i in range(0, N, 2)])
  return float(loss), [np.asarray(g, np.float64) for g in grads], local


def max_diff(a, b):
  return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def run_on_eight_devices(name):
  """This script for `name` in a subprocess on 8 simulated CPU devices -> its JSON line."""
  from conftest import xla_flags  # pylint: disable=import-outside-toplevel  (under pytest)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': root,
         'XLA_FLAGS': xla_flags(8)}
  proc = subprocess.run([sys.executable, os.path.abspath(__file__), name], cwd=root, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main(name):
  one, eight = mesh_lib.make_mesh(jax.devices()[:1]), mesh_lib.make_mesh(jax.devices())
  loss_1, grads_1 = method_loss(name, one)
  loss_8, grads_8 = method_loss(name, eight)
  emb_1, emb_grads_1, local = embeddings_loss(name, one)
  emb_8, emb_grads_8, _ = embeddings_loss(name, eight)
  print(json.dumps({
      'devices': len(jax.devices()), 'loss_1': loss_1, 'loss_8': loss_8,
      'grad_max_diff': max_diff(grads_1, grads_8),
      'grad_max_abs': max(float(np.max(np.abs(g))) for g in grads_1),
      'embeddings_loss_1': emb_1, 'embeddings_loss_8': emb_8,
      'embeddings_grad_max_diff': max_diff(emb_grads_1, emb_grads_8),
      'per_device_mean': local}))


if __name__ == '__main__':
  main(sys.argv[1])
