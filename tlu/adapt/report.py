"""report.md of an adaptation sweep: the method x seed table, then how each step was chosen.

Selection: the last step; a validator chosen in advance
(`selection.validator`, no target labels); labelled target validation (a reference); the
oracle (the best test accuracy of any evaluation: an upper bound, never a result).
"""

import numpy as np

from tlu.adapt import validators as validators_lib
from tlu.adapt.cells import BASELINES



def _mean_std(summary, key):
  value = summary.get(key)
  return '' if value is None else f'{100 * value:.1f} ± {100 * summary[f"{key}_std"]:.1f}'


def report(config, results, summary):
  """report.md: target test accuracy per seed and mean ± std, per-method selection columns,
  the accuracy at each validator's pick and each validator's weighted Spearman, gap closed."""
  seeds = tuple(config.seeds)
  chosen = config.get('selection', {}).get('validator', '')
  names = tuple(config.get('validators', ()))
  lines = ['| method | ' + ' | '.join(f'seed {s}' for s in seeds) +
           ' | mean ± std | ' + (f'selected without target labels ({chosen}) | ' if chosen
                                 else '') +
           'validation-selected | oracle-selected | wall time per seed (s) |',
           '|---|' + '---|' * (len(seeds) + 4 + bool(chosen))]
  for (method, _), cells in results.items():
    accs = [c['target_test_accuracy'] for c in cells]
    times = [c.get('wall_time_s', float('nan')) for c in cells]
    picked = (_mean_std(summary, f'{method}/validator_selected_target_test_accuracy') + ' | '
              if chosen else '')
    lines.append(f'| {method} | ' + ' | '.join(f'{100 * a:.1f}' for a in accs) +
                 f' | {100 * np.mean(accs):.1f} ± {100 * np.std(accs):.1f} | {picked}'
                 f'{_mean_std(summary, f"{method}/selected_target_test_accuracy")} | '
                 f'{_mean_std(summary, f"{method}/best_target_test_accuracy")} | '
                 f'{np.mean(times):.0f} |')
  gaps = [f'{k.split("/")[0]}: {100 * v:.0f}%' for k, v in summary.items()
          if k.endswith('/gap_closed')]
  source = config.source or '<workdir>/source/seed<s>'
  trained = ', '.join(f'{m} (tlu/methods/{config[m].method.name}.py)'
                      for m in config.methods if m not in BASELINES)
  source_val = config.get('source_validation_split', '')
  text = (f'# Domain adaptation: {config.source_task.dataset.name} -> {config.target.name}\n\n'
          f'Target test accuracy (%) on `{config.target.name}:{config.target.eval_split}`; '
          f'the target `{config.target.train_split}` split is used without labels. '
          'Per seed: the last step; validation-selected: the step whose target accuracy on '
          f'the labelled `{config.get("target_validation_split") or "-"}` split is best '
          '(a reference: it reads target labels); ' +
          (f'selected without target labels: the step whose `{chosen}` score is highest; '
           if chosen else '') +
          'oracle-selected: the best test accuracy of any evaluation (an upper bound, never '
          f'a result). Source runs: `{source}`. Trained methods: {trained or "none"}.\n\n' +
          '\n'.join(lines) + '\n' +
          (f'\nGap closed between source_only and target_oracle: {", ".join(gaps)}.\n'
           if gaps else ''))
  if names:
    text += '\n' + validator_tables(config, results, summary, names, source_val)
  return text


def validator_tables(config, results, summary, names, source_val):
  """Target test accuracy (%) at each validator's pick per method, and each validator's
  weighted Spearman correlation over every checkpoint of the sweep's trained cells."""
  trained = [m for (m, _) in results if m not in BASELINES or m == 'target_oracle']
  head = ('| method | last step | validation-selected | oracle-selected | ' +
          ' | '.join(names) + ' |')
  rows = [head, '|---|' + '---|' * (3 + len(names))]
  cell = lambda key: (f'{100 * summary[key]:.1f}' if key in summary else '')
  for m in trained:
    rows.append(f'| {m} | {cell(f"{m}/target_test_accuracy")} | '
                f'{cell(f"{m}/selected_target_test_accuracy")} | '
                f'{cell(f"{m}/best_target_test_accuracy")} | ' +
                ' | '.join(cell(f'{m}/{n}_selected_target_test_accuracy') for n in names) + ' |')
  corr = ['| validator | weighted Spearman |', '|---|---|']
  for n in names:
    value = summary.get(f'{n}/weighted_spearman')
    corr.append(f'| {n} | {"" if value is None else f"{value:.2f}"} |')
  labelled = [n for n in names if n in validators_lib.LABELLED]
  return ('## Selection without target labels\n\n'
          'Target test accuracy (%, mean over seeds) at the step each validator picks '
          '(`tlu/adapt/validators.py`: highest score, the latest step on ties), beside the '
          'last step, the labelled-target-validation pick and the oracle' +
          (f'; {", ".join(labelled)} read the labelled source split `{source_val}`'
           if labelled else '') + '.\n\n' + '\n'.join(rows) + '\n\n'
          'Weighted Spearman correlation of each validator\'s score with the target test '
          'accuracy over every evaluation of every trained adaptation cell (baselines left '
          'out; Musgrave, Belongie & Lim 2022: dense ranks over their maximum, each '
          'checkpoint weighted by max(score rank, accuracy rank)^2).\n\n' +
          '\n'.join(corr) + '\n')
