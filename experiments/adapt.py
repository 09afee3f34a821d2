"""Unsupervised domain adaptation: `python -m experiments.adapt --config=configs/mnist_to_mnist_m.py[:method]`.

Cells `<workdir>/<method>/seed<s>`; what each method gets (baselines, paired and
source-free methods, source runs): tlu/adapt/cells.py.
"""

import sys

from experiments import common
from tlu import checks
from tlu.adapt import cells
from tlu.train import mesh as mesh_lib, sweep, task, workdir as workdir_lib

DEFAULT_CONFIG = 'configs/digits_to_digits_m.py'
SWEEP_KEYS = ('methods', 'seeds')


def check(config, workdir, wired=False):
  """Every check that needs no compute (given source runs included); returns the data."""
  del wired   # the pipeline's adaptation trains its own sources
  common.check_workdir(workdir, config, SWEEP_KEYS)
  cells.check_methods(config)
  cells.check_validators(config)
  cells.check_values(config)
  data = cells.AdaptData(config)
  with checks.under('source_task.'):
    task.check_task(config.source_task, data.source_splits)
  for name in config.methods:
    with checks.under(cells.where(name)):
      task.check_task(*data.cell(config, name, 0))
  if config.source and cells.needs_source(config):
    for seed in config.seeds:
      cells.source_init(config, data, workdir, seed)
  return data


def run(config, workdir, data):
  common.claim_workdir(workdir, config, SWEEP_KEYS)
  trainer = task.Trainer(mesh_lib.make_mesh())
  if cells.needs_source(config) and not config.source:
    for seed in config.seeds:
      run_dir = cells.source_dir(config, workdir, seed)
      if not workdir_lib.done(run_dir):
        print(f'training the source model of seed {seed} in {run_dir}')
        task.fit_task(trainer, cells.source_task(config, seed), run_dir, data.source_splits,
                      should_stop=common.preempted, desc=f'source/seed{seed}')
  results = {(name, None): [sweep.cell(workdir_lib.path(workdir, name, f'seed{seed}'),
                                       lambda d, n=name, s=seed: cells.run_cell(
                                           trainer, config, data, workdir, n, s, d,
                                           common.preempted))
                            for seed in config.seeds]
             for name in config.methods}
  summary = cells.summarize(results, cells.checkpoint_rows(config, workdir),
                            config.get('validators', ()))
  sweep.write(workdir, summary, cells.report(config, results, summary))


if __name__ == '__main__':
  common.launch(sys.modules[__name__])
