"""Train one task with any method: `python -m experiments.train --config=configs/digits_supervised.py`.

`method` names the method (tlu/methods/<name>.py); `evaluators` what is measured on test.
"""

from experiments import common
from tlu.train import mesh as mesh_lib, task

DEFAULT_CONFIG = 'configs/digits_supervised.py'


def prepare(config, workdir):
  """Every check that needs no compute; returns the task's splits."""
  common.check_workdir(workdir, config)
  try:
    splits = task.task_splits(config.dataset)
    task.check_task(config, splits)
  except ValueError as e:
    raise common.ConfigError(str(e)) from None
  return splits


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'train')
  splits = prepare(config, workdir)
  summary, _ = task.fit_task(task.Trainer(mesh_lib.make_mesh()), config, workdir, splits,
                             should_stop=common.preempted)
  print(' '.join(f'{k}={v:.4f}' for k, v in summary.items() if k.startswith('test_')) +
        f" after {summary['steps']} steps; run in {workdir}")


if __name__ == '__main__':
  common.launch(main, DEFAULT_CONFIG)
