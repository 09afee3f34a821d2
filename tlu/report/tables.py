"""Markdown tables for reports: results as mean +- std over seeds."""

import numpy as np


def _label(col):
  return 'all' if col == 0 else str(col)


def mean_std_table(results, rows, cols, row_title='', col_title='', scale=100.0, digits=1):
  """results: {(row, col): [values over seeds]} -> markdown table of mean +- std (x scale)."""
  header = f'| {row_title} \\ {col_title} | ' + ' | '.join(_label(c) for c in cols) + ' |'
  lines = [header, '|' + '---|' * (len(cols) + 1)]
  for r in rows:
    cells = []
    for c in cols:
      v = results.get((r, c))
      cells.append('' if v is None else
                   f'{scale * np.mean(v):.{digits}f} ± {scale * np.std(v):.{digits}f}')
    lines.append(f'| {r} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def key_value_table(rows, headers):
  """rows: sequence of tuples -> markdown table with `headers`."""
  fmt = lambda v: f'{v:.4f}' if isinstance(v, float) else str(v)
  lines = ['| ' + ' | '.join(headers) + ' |', '|' + '---|' * len(headers)]
  lines += ['| ' + ' | '.join(fmt(v) for v in row) + ' |' for row in rows]
  return '\n'.join(lines)
