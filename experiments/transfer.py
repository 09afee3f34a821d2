"""Transfer a source model to a target task with few labels:
`python -m experiments.transfer --config=configs/digits_transfer.py[:strategy]`.

Cells are strategy x labels per class x seed, in `<workdir>/<strategy>/lpc<k>_seed<s>`
(tlu/transfer/cells.py, strategies.py). The source is the run in `--config.source`,
or the supervised task `config.source_task` trained first in `<workdir>/source`.
summary.json: `<strategy>/lpc<k>/test_accuracy` (and `_std`).
"""

import functools

import jax
import numpy as np

from experiments import common, sweep
from tlu.train import mesh as mesh_lib, task, workdir as workdir_lib
from tlu.transfer import cells

SWEEP_KEYS = ('strategies', 'labels_per_class', 'seeds')


def _checked(fn, *args):
  try:
    return fn(*args)
  except ValueError as e:   # PretrainedError and TransplantError included
    raise common.ConfigError(str(e)) from None


def prepare(config, workdir, check_source=True):
  """Checks without compute; returns (target splits, source splits or None if given, source dir).

  A given source is loaded and checked by `main` before the workdir is claimed.
  """
  del check_source   # the pipeline makes its source first
  splits = _checked(cells.check, config)
  common.check_workdir(workdir, config, SWEEP_KEYS)
  if config.source:
    return splits, None, config.source
  source_dir = str(workdir_lib.path(workdir, 'source'))
  common.check_workdir(source_dir, config.source_task)
  source_splits = _checked(task.task_splits, config.source_task.dataset)
  _checked(task.check_task, config.source_task, source_splits)
  return splits, source_splits, source_dir


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'transfer')
  splits, source_splits, source_dir = prepare(config, workdir)
  trainer = task.Trainer(mesh_lib.make_mesh())
  if config.source:   # a given source must load and fit before anything is written
    source = _checked(cells.open_source, config, source_dir, splits)
  common.claim_workdir(workdir, config, SWEEP_KEYS)
  if not config.source:
    if not workdir_lib.done(source_dir):
      print(f'training the source task in {source_dir}')
      task.fit_task(trainer, config.source_task, source_dir, source_splits,
                    should_stop=common.preempted, desc='source')
    source = _checked(cells.open_source, config, source_dir, splits)
  print(source[2].table())
  if jax.process_index() == 0:
    workdir_lib.write_json(workdir_lib.path(workdir, 'transplant.json'), source[2].to_json())
  results = {}
  for s in config.strategies:
    for k in config.labels_per_class:
      run = functools.partial(cells.run_cell, trainer, config, splits, source, s, k)
      results[(s, k)] = [sweep.cell(workdir_lib.path(workdir, s, f'lpc{k}_seed{seed}'),
                                    lambda d, seed=seed: run(seed, d, common.preempted))
                         for seed in config.seeds]
      accs = [c['test_accuracy'] for c in results[(s, k)]]
      print(f'{s:>12} labels/class={k or "all":>3}: {100 * np.mean(accs):.1f} +- '
            f'{100 * np.std(accs):.1f} ({len(accs)} seeds)')
  summary = sweep.summarize({(s, f'lpc{k}'): v for (s, k), v in results.items()},
                            'test_accuracy')
  table = sweep.table(results, 'test_accuracy', config.strategies, config.labels_per_class,
                      row_title='strategy', col_title='labels per class')
  sweep.write(workdir, summary, cells.report(config, source_dir, table))
  print(f'report: {workdir_lib.path(workdir, "report.md")}')


if __name__ == '__main__':
  common.launch(main, 'configs/digits_transfer.py')
