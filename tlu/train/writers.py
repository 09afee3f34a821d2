"""Metrics to metrics.jsonl and TensorBoard (tensorboardX: no TensorFlow), from process 0 only."""

import json
import os

import jax
import numpy as np


def _scalar(v):
  v = np.asarray(v)
  return v.item() if v.size == 1 else v.tolist()


class MetricWriter:
  """write(step, split, metrics) appends one JSON object per call and logs TB scalars."""

  def __init__(self, workdir, tensorboard=True):
    self.active = jax.process_index() == 0
    self.path = os.path.join(workdir, 'metrics.jsonl')
    self.tb = None
    if self.active and tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
      self.tb = SummaryWriter(os.path.join(workdir, 'tb'))

  def write(self, step, split, metrics):
    if not self.active:
      return
    row = {'step': int(step), 'split': split, **{k: _scalar(v) for k, v in metrics.items()}}
    with open(self.path, 'a') as f:
      f.write(json.dumps(row) + '\n')
    if self.tb is not None:
      for k, v in row.items():
        if k not in ('step', 'split') and isinstance(v, (int, float)):
          self.tb.add_scalar(f'{split}/{k}', v, int(step))
      self.tb.flush()

  def truncate_after(self, step):
    """On resume: drop rows logged after the checkpoint we restart from."""
    if not self.active or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      rows = [line for line in f if line.strip() and json.loads(line)['step'] <= step]
    tmp = self.path + '.tmp'
    with open(tmp, 'w') as f:
      f.writelines(rows)
    os.replace(tmp, self.path)

  def close(self):
    if self.tb is not None:
      self.tb.close()


def read_metrics(workdir):
  """All rows of a run's metrics.jsonl."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f if line.strip()]
