"""Every registered method on 1 and 8 devices and through a checkpoint: run in a subprocess.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/methods_check.py <tmpdir> [i n [m1,m2]]

With `i n`, only every n-th method starting at the i-th (shards run side by side: XLA
compiles on one core).

Prints one JSON line {method: {'resume_max_diff', 'devices_max_diff', 'losses', ...}}: the
largest difference (absolute, relative for large values) between the final train state of a straight 4-step run and
(a) a run stopped after its first step and resumed from its checkpoint,
(b) the same run on an 8-device mesh (every method, or those named after the shard);
whether the trees have the same structure and leaf count ('resume_same_tree',
'devices_same_tree'); the step the stopped run saved ('stopped_at'), the steps the resumed
run logged ('resumed_steps': the steps it ran) and its log line naming the step it restored
('resume_log'); the device counts of the process and of the 8-device mesh.
"""

import contextlib
import io
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
  """One run -> {'tree', 'losses', 'steps' (those it logged, i.e. ran: log_every=1), 'step',
  'stopped', 'stderr' (what the run printed there, e.g. the step it resumed from)}."""
  logged, err = [], io.StringIO()
  try:
    with contextlib.redirect_stderr(err):
      state, _, stopped = trainer.run(cfg, workdir, data, should_stop=should_stop,
                                      on_log=lambda step, m: logged.append((step, m['loss'])))
  finally:
    sys.stderr.write(err.getvalue())
  tree = jax.device_get((state.params, state.batch_stats, state.extra, state.opt_state))
  return {'tree': tree, 'losses': [l for _, l in logged], 'steps': [s for s, _ in logged],
          'step': int(jax.device_get(state.step)), 'stopped': stopped, 'stderr': err.getvalue()}


def same_tree(a, b):
  """Same structure (every subtree, every container kind) and the same number of leaves."""
  return (jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
          and len(jax.tree.leaves(a)) == len(jax.tree.leaves(b)))


def max_diff(a, b):
  """The largest |x - y| / (1 + |x|) over all leaves: absolute for small values, relative for
  large ones (running variances of unnormalised layers reach 1e10). inf for trees of
  different structure: a missing subtree is a difference, not a skipped leaf."""
  if not same_tree(a, b):
    return float('inf')
  pairs = [(np.asarray(x, np.float64), np.asarray(y, np.float64))
           for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
  return max(float(np.max(np.abs(x - y) / (1 + np.abs(x)))) if x.size else 0.0
             for x, y in pairs)


def main(tmp, shard=0, shards=1, sharded='all'):
  """sharded: 'all', or a comma-separated list of the methods also run on 8 devices."""
  data, out = splits(), {}
  one, eight = mesh_lib.make_mesh(jax.devices()[:1]), mesh_lib.make_mesh(jax.devices())
  for name in methods.names()[shard::shards]:
    cfg, trainer = config(name), task.Trainer(one)   # one compile per mesh and method
    straight = final(trainer, cfg, f'{tmp}/{name}/straight', data)
    calls = iter(range(10**6))
    stopped = final(trainer, cfg, f'{tmp}/{name}/resumed', data,
                    should_stop=lambda: next(calls) >= 1)
    resumed = final(trainer, cfg, f'{tmp}/{name}/resumed', data)
    out[name] = {'stopped': stopped['stopped'], 'stopped_at': stopped['step'],
                 'resumed_steps': resumed['steps'], 'resume_log': resumed['stderr'],
                 'straight_steps': straight['steps'], 'final_step': resumed['step'],
                 'resume_same_tree': same_tree(straight['tree'], resumed['tree']),
                 'resume_max_diff': max_diff(straight['tree'], resumed['tree']),
                 'losses': straight['losses'], 'devices': len(jax.devices())}
    if sharded == 'all' or name in sharded.split(','):
      on8 = final(task.Trainer(eight), cfg, f'{tmp}/{name}/eight', data)
      out[name].update(devices_max_diff=max_diff(straight['tree'], on8['tree']),
                       devices_same_tree=same_tree(straight['tree'], on8['tree']),
                       mesh_devices=eight.size, losses_8=on8['losses'])
  print(json.dumps(out))


if __name__ == '__main__':
  main(sys.argv[1], *map(int, sys.argv[2:4]), *sys.argv[4:5])
