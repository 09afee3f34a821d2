"""Transfer a source model to a target task with few labels:
`python -m experiments.transfer --config=configs/digits_transfer.py[:strategy]`.

Cells are strategy x labels per class x seed, in `<workdir>/<strategy>/lpc<k>_seed<s>`
(what a strategy trains: tlu/transfer/strategies.py). The source is the run in
`--config.source`, or the supervised task `config.source_task` trained first in
`<workdir>/source`. summary.json: `<strategy>/lpc<k>/test_accuracy` (and `_std`).
"""

import dataclasses
import functools

import jax
import numpy as np

from experiments import common, sweep
from tlu.train import mesh as mesh_lib, task, workdir as workdir_lib
from tlu.transfer import strategies
from tlu.transfer.pretrained import load_pretrained

SWEEP_KEYS = ('strategies', 'labels_per_class', 'seeds')


def _config_errors(fn, *args, **kwargs):
  try:
    return fn(*args, **kwargs)
  except ValueError as e:   # PretrainedError and TransplantError included
    raise common.ConfigError(str(e)) from None


def _phase_configs(config, model):
  """The task config of every phase of every strategy (at seed 0: seeds change no check)."""
  return [strategies.phase_config(config, s, i, model=model, seed=0)
          for s in config.strategies for i in range(len(strategies.get(s).phases))]


def validate(config, check_source=True):
  """Every check of the sweep that needs no compute; returns the target's splits.

  check_source=False when the source run is made later by the same invocation (pipeline).
  """
  def check():
    splits = task.task_splits(config.dataset)
    strategies.check(config, strategies.class_counts(splits.train))
    for cfg in _phase_configs(config, None):   # the model is checked with the source
      task.check_task(cfg)
    return splits
  splits = _config_errors(check)
  if config.source and check_source:
    open_source(config, config.source, splits)
  return splits


def open_source(config, source_dir, splits):
  """(source variables, model config, transplant report) of a source run that loads and fits
  the target model (checked on shapes only); ConfigError if it does not."""
  def load():
    variables, model, _ = load_pretrained(source_dir, config.source_step)
    cfgs = _phase_configs(config, model)
    for cfg in cfgs:
      task.check_task(cfg, splits)
    _, report = strategies.load_source(config, variables,
                                       strategies.target_shapes(cfgs[0], splits))
    return variables, model, report
  return _config_errors(load)


def prepare(config, workdir, check_source=True):
  """Checks without compute; returns (target splits, source splits or None if given, source dir).

  A given source is loaded and checked by `main` before the workdir is claimed;
  check_source is accepted for the pipeline, which makes the source first.
  """
  del check_source
  splits = validate(config, check_source=False)
  common.check_workdir(workdir, config, SWEEP_KEYS)
  if config.source:
    return splits, None, config.source
  source_dir = str(workdir_lib.path(workdir, 'source'))
  common.check_workdir(source_dir, config.source_task)
  source_splits = _config_errors(task.task_splits, config.source_task.dataset)
  _config_errors(task.check_task, config.source_task, source_splits)
  return splits, source_splits, source_dir


def run_cell(trainer, config, splits, source, strategy, labels_per_class, seed, cell_dir):
  """One cell: the strategy's phases on `labels_per_class` labelled examples drawn with `seed`."""
  variables, model, _ = source
  cell = dataclasses.replace(splits, train=splits.train.subset(labels_per_class, seed))
  summary, _ = strategies.fit(trainer, config, strategy, cell_dir, cell, model=model,
                              source=variables, seed=seed, should_stop=common.preempted,
                              desc=f'{strategy}/lpc{labels_per_class}_seed{seed}')
  return {**summary, 'labelled': len(cell.train)}


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'transfer')
  splits, source_splits, source_dir = prepare(config, workdir)
  trainer = task.Trainer(mesh_lib.make_mesh())
  if config.source:   # a given source must load and fit before anything is written
    source = open_source(config, source_dir, splits)
  common.claim_workdir(workdir, config, SWEEP_KEYS)
  if not config.source:
    if not workdir_lib.done(source_dir):
      print(f'training the source task in {source_dir}')
      task.fit_task(trainer, config.source_task, source_dir, source_splits,
                    should_stop=common.preempted, desc='source')
    source = open_source(config, source_dir, splits)
  print(source[2].table())
  if jax.process_index() == 0:
    workdir_lib.write_json(workdir_lib.path(workdir, 'transplant.json'), source[2].to_json())
  results = {}
  for s in config.strategies:
    for k in config.labels_per_class:
      run = functools.partial(run_cell, trainer, config, splits, source, s, k)
      results[(s, k)] = [sweep.cell(workdir_lib.path(workdir, s, f'lpc{k}_seed{seed}'),
                                    functools.partial(run, seed)) for seed in config.seeds]
      accs = [c['test_accuracy'] for c in results[(s, k)]]
      print(f'{s:>12} labels/class={k or "all":>3}: {100 * np.mean(accs):.1f} +- '
            f'{100 * np.std(accs):.1f} ({len(accs)} seeds)')
  summary = sweep.summarize({(s, f'lpc{k}'): v for (s, k), v in results.items()},
                            'test_accuracy')
  table = sweep.table(results, 'test_accuracy', config.strategies, config.labels_per_class,
                      row_title='strategy', col_title='labels per class')
  sweep.write(workdir, summary, _report(config, source_dir, table))
  print(f'report: {workdir_lib.path(workdir, "report.md")}')


def _task(ds):
  return f'{ds.name} classes {tuple(ds.classes) if ds.classes else "all"}'


def _report(config, source_dir, table):
  scratch_only = set(config.strategies) == {'scratch'}
  lp_ft = 'lp_ft' in config.strategies
  return (f'# Transfer: {"a given source run" if config.source else _task(config.source_task.dataset)}'
          f' -> {_task(config.dataset)}\n\n'
          f'Source run: `{source_dir}`'
          f'{" (its architecture only: scratch loads no weights)" if scratch_only else ""}'
          f'. Target test accuracy (%), mean +- std over seeds '
          f'{tuple(config.seeds)}; {config.steps} steps per run'
          f'{f", LP-FT probes {config.lp_steps} steps first" if lp_ft else ""}'
          f'{f"; head on L2-normalised features x {config.head_l2_scale:g}" if config.head_l2_scale else ""}'
          f'{", imprinted from the labelled examples" if config.head_init == "imprint" else ""}.'
          f'\n\n{table}\n')


if __name__ == '__main__':
  common.launch(main, 'configs/digits_transfer.py')
