"""Metrics to metrics.jsonl and TensorBoard (tensorboardX: no TensorFlow), from process 0 only."""

import json

import jax
import numpy as np
from etils import epath


def _scalar(v):
  v = np.asarray(v)
  return v.item() if v.size == 1 else v.tolist()


class MetricWriter:
  """write(step, split, metrics) appends one JSON object per call and logs TB scalars.

  resume_step: the step training restarts from; rows (and TensorBoard events)
  logged after it by an interrupted run are dropped, since they will be logged again.
  """

  def __init__(self, workdir, resume_step=0, tensorboard=True):
    self.active = jax.process_index() == 0
    self.path = epath.Path(str(workdir)) / 'metrics.jsonl'
    self.tb = None
    if not self.active:
      return
    self.truncate_after(resume_step)
    if tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
      self.tb = SummaryWriter(str(epath.Path(str(workdir)) / 'tb'), purge_step=resume_step + 1)

  def write(self, step, split, metrics):
    if not self.active:
      return
    row = {'step': int(step), 'split': split, **{k: _scalar(v) for k, v in metrics.items()}}
    with self.path.open('a') as f:
      f.write(json.dumps(row) + '\n')
    if self.tb is not None:
      for k, v in row.items():
        if k not in ('step', 'split') and isinstance(v, (int, float)):
          self.tb.add_scalar(f'{split}/{k}', v, int(step))
      self.tb.flush()

  def truncate_after(self, step):
    """Drops rows logged after `step` (and a line half-written by a killed run)."""
    if not self.path.exists():
      return
    rows = [json.dumps(r) + '\n' for r in _parse(self.path) if r['step'] <= step]
    tmp = self.path.parent / (self.path.name + '.tmp')
    tmp.write_text(''.join(rows))
    tmp.replace(self.path)

  def close(self):
    if self.tb is not None:
      self.tb.close()


def _parse(path):
  rows = []
  with epath.Path(str(path)).open() as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:  # the last line of a run killed mid-write
        continue
  return rows


def read_metrics(workdir):
  """All rows of a run's metrics.jsonl."""
  return _parse(epath.Path(str(workdir)) / 'metrics.jsonl')
