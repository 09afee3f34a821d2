"""Few labels plus unlabelled data: `python -m experiments.semi --config=configs/mnist_semi.py[:method]`.

Cells are method x labels per class x seed, in `<workdir>/<method>/lpc<k>_seed<s>`
(tlu/semisup/cells.py: what each cell reads and how it is scored). summary.json:
`<method>/lpc<k>/test_accuracy`, `.../selected_test_accuracy` (at the step of the best
validation accuracy), `.../validation_accuracy` (and `_std` of each over seeds).
"""

import sys

from experiments import common
from tlu.semisup import cells
from tlu.train import mesh as mesh_lib, sweep, task, workdir as workdir_lib

DEFAULT_CONFIG = 'configs/mnist_semi.py'
SWEEP_KEYS = ('methods', 'labels_per_class', 'seeds')
METRICS = (('test_accuracy', 'Test accuracy at the last step'),
           ('selected_test_accuracy', 'Test accuracy at the step of the best validation accuracy'))


def check(config, workdir, wired=False):
  """Checks without compute (the source run opened unless wired); returns the splits."""
  common.check_workdir(workdir, config, SWEEP_KEYS)
  splits = cells.open_splits(config)
  cells.check(config, splits, open_source=not wired)
  return splits


def run(config, workdir, splits):
  common.claim_workdir(workdir, config, SWEEP_KEYS)
  trainer = task.Trainer(mesh_lib.make_mesh())
  results = {(m, k): [sweep.cell(workdir_lib.path(workdir, m, f'lpc{k}_seed{seed}'),
                                 lambda d, m=m, k=k, seed=seed: cells.run_cell(
                                     trainer, config, splits, m, k, seed, d, common.preempted))
                      for seed in config.seeds]
             for m in config.methods for k in config.labels_per_class}
  summary, tables = {}, []
  for metric, title in METRICS + (('validation_accuracy', 'Validation accuracy'),):
    summary.update(sweep.summarize({(m, f'lpc{k}'): v for (m, k), v in results.items()},
                                   metric))
    tables.append((title, sweep.table(results, metric, config.methods, config.labels_per_class,
                                      row_title='method', col_title='labels per class')))
  print(tables[0][1])
  sweep.write(workdir, summary, cells.report(config, tables))


if __name__ == '__main__':
  common.launch(sys.modules[__name__])
