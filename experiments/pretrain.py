"""Self-supervised pretraining: `python -m experiments.pretrain --config=configs/digits_ssl.py:<method>`.

The method (config.method.name) trains on the training split's images only; its
evaluators (kNN, linear probes, k-means) read labels to score the frozen backbone.
With `pixel_baseline`, the same evaluators score raw pixels (summary.json: pixels_*).
"""

from experiments import common
from tlu import evaluators
from tlu.train import mesh as mesh_lib, task, workdir as workdir_lib

DEFAULT_CONFIG = 'configs/digits_ssl.py'


def prepare(config, workdir):
  common.check_workdir(workdir, config)
  try:
    splits = task.task_splits(config.dataset)
    task.check_task(config, splits)
  except ValueError as e:
    raise common.ConfigError(str(e)) from None
  return splits


def pretrain(config, workdir):
  """Trains (or resumes) in `workdir`; returns (summary, state)."""
  splits = prepare(config, workdir)
  mesh = mesh_lib.make_mesh()
  summary, state = task.fit_task(task.Trainer(mesh), config, workdir, splits, summary_prefix='',
                                 should_stop=common.preempted, desc='pretrain')
  if config.pixel_baseline:
    pixels = evaluators.score_pixels(config.evaluators, splits, config.eval_batch_size, mesh)
    summary.update({f'pixels_{k}': v for k, v in pixels.items()})
    workdir_lib.write_json(workdir_lib.path(workdir, 'summary.json'), summary)
  return summary, state


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'pretrain')
  s, _ = pretrain(config, workdir)
  print(', '.join(f'{k} {v:.4f}' for k, v in s.items() if isinstance(v, float)) +
        f'; run in {workdir}')


if __name__ == '__main__':
  common.launch(main, DEFAULT_CONFIG)
