"""Self-supervised pretraining: `python -m experiments.pretrain --config=configs/digits_simclr.py`.

The method (config.method.name) trains on the training split's images only; its
evaluators (kNN, linear probes, k-means) read labels to score the frozen backbone.
With `pixel_baseline`, the same evaluators score raw pixels (summary.json: pixels_*).
"""

import numpy as np

from experiments import common
from tlu import evaluators
from tlu.train import mesh as mesh_lib, task, workdir as workdir_lib

DEFAULT_CONFIG = 'configs/digits_simclr.py'


def prepare(config, workdir):
  common.check_workdir(workdir, config)
  try:
    splits = task.task_splits(config.dataset)
    task.check_task(config, splits)
  except ValueError as e:
    raise common.ConfigError(str(e)) from None
  return splits


def pixel_scores(config, splits, mesh):
  """The config's evaluators on flattened raw pixels in [0, 1]: what pretraining must beat."""
  def flat(source):
    examples = [source[i] for i in range(len(source))]
    x = np.stack([np.asarray(ex['image']) for ex in examples])
    return (x.reshape(len(x), -1).astype(np.float32) / 255.0,
            np.asarray([int(ex['label']) for ex in examples]))
  ctx = evaluators.Context(model=None, mesh=mesh, test=splits.test, train=splits.train,
                           num_classes=splits.num_classes, batch_size=config.eval_batch_size,
                           fixed={'train': flat(splits.train), 'test': flat(splits.test)})
  return evaluators.build(config.evaluators, ctx)(None)


def pretrain(config, workdir):
  """Trains (or resumes) in `workdir`; returns (summary, state)."""
  splits = prepare(config, workdir)
  mesh = mesh_lib.make_mesh()
  summary, state = task.fit_task(task.Trainer(mesh), config, workdir, splits, summary_prefix='',
                                 should_stop=common.preempted, desc='pretrain')
  if config.pixel_baseline:
    summary.update({f'pixels_{k}': v for k, v in pixel_scores(config, splits, mesh).items()})
    workdir_lib.write_json(workdir_lib.path(workdir, 'summary.json'), summary)
  return summary, state


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'pretrain')
  s, _ = pretrain(config, workdir)
  print(', '.join(f'{k} {v:.4f}' for k, v in s.items() if isinstance(v, float)) +
        f'; run in {workdir}')


if __name__ == '__main__':
  common.launch(main, DEFAULT_CONFIG)
