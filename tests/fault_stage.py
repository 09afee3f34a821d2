"""Runs `python -m experiments.<stage>` and kills itself (SIGKILL) while a checkpoint is written.

  python tests/fault_stage.py <step> <stage> [flags...]

The checkpoint of `step` is started (orbax writes it asynchronously) and the process
is killed at once, so the run dies with that checkpoint half-written: the moment a
preempted or crashed host is most likely to leave a damaged run directory.
"""

import os
import runpy
import signal
import sys

from tlu.train import checkpoint


def main():
  kill_at, stage = int(sys.argv[1]), sys.argv[2]
  save = checkpoint.Checkpointer.save

  def save_then_die(self, step, *args, **kwargs):
    saved = save(self, step, *args, **kwargs)
    if int(step) == kill_at:
      os.kill(os.getpid(), signal.SIGKILL)
    return saved

  checkpoint.Checkpointer.save = save_then_die
  sys.argv = [f'experiments/{stage}.py'] + sys.argv[3:]
  runpy.run_module(f'experiments.{stage}', run_name='__main__', alter_sys=True)


if __name__ == '__main__':
  main()
