"""The cells of a transfer sweep: strategy x labels per class x seed, and their report.

A cell trains the phases of its strategy (tlu/transfer/strategies.py) on
`labels_per_class` labelled examples drawn with its seed; the source is loaded
once per sweep and checked to fit the target before anything is written.
"""

import dataclasses

from tlu.train import task
from tlu.transfer import strategies
from tlu.transfer.pretrained import load_pretrained


def phase_configs(config, model):
  """The task config of every phase of every strategy (at seed 0: seeds change no check)."""
  return [strategies.phase_config(config, s, i, model=model, seed=0)
          for s in config.strategies for i in range(len(strategies.get(s).phases))]


def check(config):
  """Every check of the sweep that needs no compute but the source; returns the target's splits."""
  splits = task.task_splits(config.dataset)
  strategies.check(config, strategies.class_counts(splits.train))
  for cfg in phase_configs(config, None):   # the model is checked with the source
    task.check_task(cfg)
  return splits


def open_source(config, source_dir, splits):
  """(source variables, model config, transplant report) of a source run that loads and fits
  the target model (checked on shapes only); ValueError if it does not."""
  variables, model, _ = load_pretrained(source_dir, config.source_step)
  cfgs = phase_configs(config, model)
  for cfg in cfgs:
    task.check_task(cfg, splits)
  _, report = strategies.load_source(config, variables, strategies.target_shapes(cfgs[0], splits))
  return variables, model, report


def run_cell(trainer, config, splits, source, strategy, labels_per_class, seed, cell_dir,
             should_stop):
  """One cell: the strategy's phases on `labels_per_class` labelled examples drawn with `seed`."""
  variables, model, _ = source
  cell = dataclasses.replace(splits, train=splits.train.subset(labels_per_class, seed))
  summary, _ = strategies.fit(trainer, config, strategy, cell_dir, cell, model=model,
                              source=variables, seed=seed, should_stop=should_stop,
                              desc=f'{strategy}/lpc{labels_per_class}_seed{seed}')
  return {**summary, 'labelled': len(cell.train)}


def _task(ds):
  return f'{ds.name} classes {tuple(ds.classes) if ds.classes else "all"}'


def report(config, source_dir, table):
  """report.md of the sweep: what was transferred from where, and the table."""
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
