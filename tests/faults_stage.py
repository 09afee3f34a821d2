"""Runs `python -m experiments.<stage>` with one fault point, for tests/test_faults.py.

  python tests/faults_stage.py fill <step> <ballast file> <stage> [flags...]
      fills the disk (writes <ballast file> until it is full) just before the checkpoint
      of <step> is written, so that orbax meets a real ENOSPC.
  python tests/faults_stage.py hold <step> <marker file> <stage> [flags...]
      the training loop waits after <step> (having created <marker file>) until a stop is
      requested (a signal), so a test can send SIGINT or start a second command then.
  python tests/faults_stage.py stall <step> <marker file> <stage> [flags...]
      as hold, and a checkpoint begun after the stop request is never finished (orbax's
      rename into the step waits), as on a very slow disk.
"""

import asyncio
import errno
import runpy
import sys
import time

from orbax.checkpoint._src.path import atomicity

from tlu.train import checkpoint, loop, stop


def fill(path):
  with open(path, 'wb', buffering=0) as f:
    try:
      while True:
        f.write(b'\0' * (1 << 16))
    except OSError as e:
      assert e.errno == errno.ENOSPC, e


def main():
  mode, at, path, stage = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
  if mode == 'fill':
    save = checkpoint.Checkpointer.save

    def fill_then_save(self, step, *args, **kwargs):
      if int(step) == at:
        self.manager.wait_until_finished()   # the previous checkpoint is complete
        fill(path)
      return save(self, step, *args, **kwargs)

    checkpoint.Checkpointer.save = fill_then_save
  else:
    polled = loop._stop_requested  # pylint: disable=protected-access

    def hold(should_stop, step, every):
      deadline = time.monotonic() + 120
      if step == at:
        open(path, 'w').close()
      while step == at and not should_stop() and time.monotonic() < deadline:
        time.sleep(0.02)
      return polled(should_stop, step, every)

    loop._stop_requested = hold  # pylint: disable=protected-access
  if mode == 'stall':
    finalize = atomicity.AtomicRenameTemporaryPath.finalize

    async def stalled(self, *args, **kwargs):
      while stop.REQUESTED.is_set():
        await asyncio.sleep(0.05)
      return await finalize(self, *args, **kwargs)

    atomicity.AtomicRenameTemporaryPath.finalize = stalled
  sys.argv = [f'experiments/{stage}.py'] + sys.argv[5:]
  runpy.run_module(f'experiments.{stage}', run_name='__main__', alter_sys=True)


if __name__ == '__main__':
  main()
