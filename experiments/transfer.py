"""Transfer a source model to a target task with few labels:
`python -m experiments.transfer --config=configs/digits_transfer.py[:strategy]`.

Cells are strategy x labels per class x seed, in `<workdir>/<strategy>/lpc<k>_seed<s>`
(tlu/transfer/cells.py, strategies.py). The source is the run in `--config.source`,
or the supervised task `config.source_task` trained first in `<workdir>/source`.
summary.json: `<strategy>/lpc<k>/test_accuracy` (and `_std`).
"""

import sys

import jax

from experiments import common
from tlu import checks
from tlu.train import mesh as mesh_lib, sweep, task, workdir as workdir_lib
from tlu.transfer import cells

DEFAULT_CONFIG = 'configs/digits_transfer.py'
SWEEP_KEYS = ('strategies', 'labels_per_class', 'seeds')


def check(config, workdir, wired=False):
  """Checks without compute; returns (target splits, source splits or None if given, the
  given source (opened unless wired) or None, source dir)."""
  splits = cells.check(config)
  common.check_workdir(workdir, config, SWEEP_KEYS)
  if config.source:
    source = None if wired else cells.open_source(config, config.source, splits)
    return splits, None, source, config.source
  source_dir = str(workdir_lib.path(workdir, 'source'))
  common.check_workdir(source_dir, config.source_task)
  with checks.under('source_task.'):
    task.check_values(config.source_task)
    source_splits = task.task_splits(config.source_task.dataset)
    task.check_task(config.source_task, source_splits)
  return splits, source_splits, None, source_dir


def run(config, workdir, plan):
  splits, source_splits, source, source_dir = plan
  trainer = task.Trainer(mesh_lib.make_mesh())
  common.claim_workdir(workdir, config, SWEEP_KEYS)
  if source_splits is not None and not workdir_lib.done(source_dir):
    print(f'training the source task in {source_dir}')
    task.fit_task(trainer, config.source_task, source_dir, source_splits,
                  should_stop=common.preempted, desc='source')
  if source is None:
    try:
      source = cells.open_source(config, source_dir, splits)
    except ValueError as e:   # PretrainedError, TransplantError
      raise common.ConfigError(str(e)) from None
  print(source[2].table())
  if jax.process_index() == 0:
    workdir_lib.write_json(workdir_lib.path(workdir, 'transplant.json'), source[2].to_json())
  results = {(s, k): [sweep.cell(workdir_lib.path(workdir, s, f'lpc{k}_seed{seed}'),
                                 lambda d, s=s, k=k, seed=seed: cells.run_cell(
                                     trainer, config, splits, source, s, k, seed, d,
                                     common.preempted))
                      for seed in config.seeds]
             for s in config.strategies for k in config.labels_per_class}
  summary = sweep.summarize({(s, f'lpc{k}'): v for (s, k), v in results.items()},
                            'test_accuracy')
  table = sweep.table(results, 'test_accuracy', config.strategies, config.labels_per_class,
                      row_title='strategy', col_title='labels per class')
  print(table)
  sweep.write(workdir, summary, cells.report(config, source_dir, table))


if __name__ == '__main__':
  common.launch(sys.modules[__name__])
