"""Cells of a sweep (method x seed, strategy x labels x seed): directories, resume, summary, table.

A cell is a sub-directory with its own summary.json: a finished cell is read back, an
unfinished one runs (resuming from its checkpoints). The sweep's summary.json holds
mean and std per row and column; report.md the table.
"""

import time

import jax
import numpy as np

from tlu.report import tables
from tlu.train import workdir as workdir_lib


def cell(cell_dir, run):
  """The summary of one cell: read back if done, else `run(cell_dir) -> summary` and saved."""
  summary_path = workdir_lib.path(cell_dir, 'summary.json')
  if summary_path.exists():
    return workdir_lib.read_json(summary_path)
  workdir_lib.path(cell_dir).mkdir(parents=True, exist_ok=True)
  t0 = time.time()
  summary = dict(run(str(cell_dir)))
  summary.setdefault('wall_time_s', time.time() - t0)
  if jax.process_index() == 0:
    workdir_lib.write_json(summary_path, summary)
  return summary


def collect(results, metric):
  """{(row, col): [cell summaries]} -> {(row, col): [metric values]} (cells without it skipped)."""
  return {k: [c[metric] for c in cells if metric in c] for k, cells in results.items()}


def summarize(results, metric):
  """Flat summary: '<row>/<col>/<metric>' and '..._std' (col omitted when None)."""
  out = {}
  for (row, col), values in collect(results, metric).items():
    if values:
      name = f'{row}/{metric}' if col is None else f'{row}/{col}/{metric}'
      out[name], out[f'{name}_std'] = float(np.mean(values)), float(np.std(values))
  return out


def table(results, metric, rows, cols, **kwargs):
  """Markdown mean ± std table of `metric` (x100) over the cells of each (row, col)."""
  return tables.mean_std_table(collect(results, metric), rows, cols, **kwargs)


def write(workdir, summary, report):
  """summary.json and report.md of a stage (process 0 writes); prints where the report is."""
  if jax.process_index() == 0:
    workdir_lib.write_json(workdir_lib.path(workdir, 'summary.json'), summary)
    workdir_lib.write_text(workdir_lib.path(workdir, 'report.md'), report)
  print(f'report: {workdir_lib.path(workdir, "report.md")}')
