"""Every registered method on 1 and 8 devices and through a checkpoint: run in a subprocess.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/methods_check.py <tmpdir> [i n [m1,m2]]

With `i n`, only every n-th method starting at the i-th (shards run side by side: XLA
compiles on one core).

Prints one JSON line {method: {'resume_max_diff', 'devices_max_diff', 'losses'}}: the
largest difference (absolute, relative for large values) between the final train state of a straight 4-step run and
(a) a run stopped after 2 steps and resumed from its checkpoint,
(b) the same run on an 8-device mesh (every method, or those named after the shard).
"""

import json
import sys

import jax
import ml_collections
import numpy as np

from tlu import methods
from tlu.train import mesh as mesh_lib, task


class Source:
  def __init__(self, images, labels):
    self.images, self.labels = images, labels

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    return {'image': self.images[i], 'label': self.labels[i]}


def config(name):
  return ml_collections.ConfigDict(dict(
      method=dict(name=name, **methods.get(name).example_config()),
      model=dict(name='mlp', widths=(32,), features=16), seed=0,   # compiles in a second
      optimizer=dict(name='sgd', lr=0.05, momentum=0.9, weight_decay=1e-4,
                     schedule='cosine', warmup_steps=0),   # SGD: no Adam sign amplification
      steps=4, batch_size=8, eval_batch_size=8,
      augment=dict(noise_prob=1.0, noise_std=0.1), freeze=(), evals={}, log_every=1,
      eval_every=0, checkpoint_every=2, keep_checkpoints=3, progress=False))


def splits():
  rng = np.random.default_rng(0)
  make = lambda: Source(rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8),
                        rng.integers(0, 3, 16))
  train, target, test = make(), make(), make()
  return task.Splits(train=train, target=target, test=test, num_classes=3,
                     image_shape=(8, 8, 1))


def final(trainer, cfg, workdir, data, should_stop=lambda: False):
  losses = []
  state, _, stopped = trainer.run(cfg, workdir, data, should_stop=should_stop,
                                  on_log=lambda step, m: losses.append(m['loss']))
  leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(jax.device_get(
      (state.params, state.batch_stats, state.extra, state.opt_state)))]
  return leaves, losses, stopped


def max_diff(a, b):
  """The largest |x - y| / (1 + |x|) over all leaves: absolute for small values, relative for
  large ones (running variances of unnormalised layers reach 1e10)."""
  return max(float(np.max(np.abs(x - y) / (1 + np.abs(x)))) if x.size else 0.0
             for x, y in zip(a, b))


def main(tmp, shard=0, shards=1, sharded='all'):
  """sharded: 'all', or a comma-separated list of the methods also run on 8 devices."""
  data, out = splits(), {}
  one, eight = mesh_lib.make_mesh(jax.devices()[:1]), mesh_lib.make_mesh(jax.devices())
  for name in methods.names()[shard::shards]:
    cfg, trainer = config(name), task.Trainer(one)   # one compile per mesh and method
    straight, losses, _ = final(trainer, cfg, f'{tmp}/{name}/straight', data)
    calls = iter(range(10**6))
    _, _, stopped = final(trainer, cfg, f'{tmp}/{name}/resumed', data,
                          should_stop=lambda: next(calls) >= 1)
    resumed, _, _ = final(trainer, cfg, f'{tmp}/{name}/resumed', data)
    out[name] = {'stopped': stopped, 'resume_max_diff': max_diff(straight, resumed),
                 'losses': losses, 'devices': len(jax.devices())}
    if sharded == 'all' or name in sharded.split(','):
      on8, losses8, _ = final(task.Trainer(eight), cfg, f'{tmp}/{name}/eight', data)
      out[name].update(devices_max_diff=max_diff(straight, on8), losses_8=losses8)
  print(json.dumps(out))


if __name__ == '__main__':
  main(sys.argv[1], *map(int, sys.argv[2:4]), *sys.argv[4:5])
