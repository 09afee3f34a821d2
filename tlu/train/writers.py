"""Metrics to metrics.jsonl and TensorBoard (tensorboardX: no TensorFlow), from process 0 only.

TensorBoard events are written on the calling thread (tensorboardX's event-file writer
without its queue thread), so a full disk raises `tlu.diskfull.DiskFull` where the loop
writes, naming the file, instead of killing a background thread.
"""

import json
import time

import jax
import numpy as np
from etils import epath

from tlu import diskfull
from tlu.train import workdir as workdir_lib


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
      # pylint: disable-next=import-outside-toplevel
      from tensorboardX.event_file_writer import EventsWriter
      from tensorboardX.proto.event_pb2 import Event, SessionLog  # pylint: disable=C0415
      self.tb_dir = epath.Path(str(workdir)) / 'tb'
      with diskfull.writing('TensorBoard events', self.tb_dir):
        self.tb_dir.mkdir(parents=True, exist_ok=True)
        self.tb = EventsWriter(str(self.tb_dir / 'events'))
        # As tensorboardX's purge_step: TensorBoard drops the events logged after the resume step.
        self.tb.write_event(Event(step=resume_step + 1, wall_time=time.time(),
                                  session_log=SessionLog(status=SessionLog.START)))
        self.tb.flush()

  def write(self, step, split, metrics):
    if not self.active:
      return
    row = {'step': int(step), 'split': split, **{k: _scalar(v) for k, v in metrics.items()}}
    with diskfull.writing(self.path.name, self.path.parent), self.path.open('a') as f:
      f.write(json.dumps(row) + '\n')
    if self.tb is not None:
      from tensorboardX import summary  # pylint: disable=import-outside-toplevel
      from tensorboardX.proto.event_pb2 import Event  # pylint: disable=import-outside-toplevel
      from tensorboardX.proto.summary_pb2 import Summary  # pylint: disable=import-outside-toplevel
      values = [v for k, x in row.items() if k not in ('step', 'split') and
                isinstance(x, (int, float)) for v in summary.scalar(f'{split}/{k}', x).value]
      with diskfull.writing('TensorBoard events', self.tb_dir):
        self.tb.write_event(Event(step=int(step), wall_time=time.time(),
                                  summary=Summary(value=values)))
        self.tb.flush()

  def truncate_after(self, step):
    """Drops rows logged after `step` (and a line half-written by a killed run)."""
    if not self.path.exists():
      return
    rows = [json.dumps(r) + '\n' for r in _parse(self.path) if r['step'] <= step]
    workdir_lib.write_text(self.path, ''.join(rows))

  def close(self):
    if self.tb is not None:
      with diskfull.writing('TensorBoard events', self.tb_dir):
        self.tb.close()
      self.tb = None


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
