"""Train one task with any method: `python -m experiments.train --config=configs/digits_supervised.py`.

`method` names the method (tlu/methods/<name>.py); `evals` the evaluations (tlu/evaluators).
"""

import sys

from experiments import common
from tlu.train import mesh as mesh_lib, task

DEFAULT_CONFIG = 'configs/digits_supervised.py'


def check(config, workdir, wired=False):
  """Every check that needs no compute; returns the task's splits."""
  del wired
  common.check_workdir(workdir, config)
  splits = task.task_splits(config.dataset)
  task.check_task(config, splits)
  return splits


def run(config, workdir, splits):
  summary, _ = task.fit_task(task.Trainer(mesh_lib.make_mesh()), config, workdir, splits,
                             should_stop=common.preempted)
  print(' '.join(f'{k}={v:.4f}' for k, v in summary.items() if k.startswith('test_')) +
        f" after {summary['steps']} steps; run in {workdir}")


if __name__ == '__main__':
  common.launch(sys.modules[__name__])
