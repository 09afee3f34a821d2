"""Unsupervised domain adaptation: `python -m experiments.adapt --config=configs/mnist_to_mnist_m.py[:method]`.

Cells `<workdir>/<method>/seed<s>`; what each method gets (baselines, paired and
source-free methods, source runs): tlu/adapt/cells.py.
"""

import numpy as np

from experiments import common, sweep
from tlu import methods
from tlu.adapt import cells as adapt_lib
from tlu.train import mesh as mesh_lib, task, workdir as workdir_lib

SWEEP_KEYS = ('methods', 'seeds')
BASELINES = ('source_only', 'target_oracle')


def prepare(config, workdir):
  """Every check that needs no compute (given source runs included); returns the data."""
  common.check_workdir(workdir, config, SWEEP_KEYS)
  try:
    adapt_lib.check_methods(config)
    data = adapt_lib.AdaptData(config)
    for method in config.methods:
      if method not in BASELINES:
        task.check_task(adapt_lib.cell_task(config, method, 0), data.splits_for(
            methods.get(config[method].method.name)))
    task.check_task(config.source_task, data.source_splits)
    if 'target_oracle' in config.methods:
      task.check_task(adapt_lib.oracle_task(config, 0), data.oracle_splits)
    if config.source and adapt_lib.needs_source(config):
      for seed in config.seeds:
        adapt_lib.source_init(config, data, workdir, seed)(None)
  except (ValueError, KeyError) as e:
    raise common.ConfigError(str(e).strip('"')) from None
  return data


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'adapt')
  data = prepare(config, workdir)
  common.claim_workdir(workdir, config, SWEEP_KEYS)
  trainer = task.Trainer(mesh_lib.make_mesh())
  if adapt_lib.needs_source(config) and not config.source:
    for seed in config.seeds:
      run_dir = adapt_lib.source_dir(config, workdir, seed)
      if not workdir_lib.done(run_dir):
        print(f'training the source model of seed {seed} in {run_dir}')
        task.fit_task(trainer, adapt_lib.source_task(config, seed), run_dir, data.source_splits,
                      should_stop=common.preempted, desc=f'source/seed{seed}')
  results = {}
  for method in config.methods:
    cells = [sweep.cell(workdir_lib.path(workdir, method, f'seed{seed}'),
                        lambda d, s=seed, m=method: adapt_lib.run_cell(
                            trainer, config, data, workdir, m, s, d, common.preempted))
             for seed in config.seeds]
    results[(method, None)] = cells
    accs = np.asarray([c['target_test_accuracy'] for c in cells])
    print(f'{method:>13}: target test accuracy {100 * accs.mean():.1f} +- '
          f'{100 * accs.std():.1f} ({len(accs)} seeds)')
  summary = adapt_lib.summarize(results)
  sweep.write(workdir, summary, adapt_lib.report(config, results, summary))
  print(f'report: {workdir_lib.path(workdir, "report.md")}')


if __name__ == '__main__':
  common.launch(main, 'configs/digits_to_digits_m.py')
