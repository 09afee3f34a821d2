"""Runs `python -m experiments.<stage>` command lines for the tests, each in a forked child.

Started once per pytest process (`conftest.run_stage`). It imports what every stage
imports (jax, flax, optax, orbax, grain, tfds, tlu, `experiments.common`) and never
initialises a jax backend; each request forks a child that sets its own XLA_FLAGS
(device count, optimisation level), redirects stdin/stdout/stderr, reseeds the global
random generators (`random`, numpy's) from the OS as a fresh interpreter does, and runs
the stage module as `__main__` with the request's argv, exactly as the interpreter would
after `python -m`; the child then leaves through the interpreter's own shutdown (atexit
handlers, garbage collection, thread joins), so what a real process prints at exit
("Exception ignored in ...", asyncio's "exception was never retrieved") lands in the
captured stderr and a hang at exit is a timeout. The imports (about 2.3 s of CPU per
stage) are paid once instead of once per command line.

What a fork cannot renew: the hash seed (PYTHONHASHSEED is read at start-up). Every child
of one server shares the server's, itself random per pytest process as a fresh
interpreter's is; a check of hash-order independence across two command lines needs
TLU_TEST_FORK=0 (each in its own interpreter), which CI also runs.

Protocol: one JSON object per line on stdin, {"stage", "args", "xla_flags", "timeout"};
one per line on stdout, {"returncode", "stdout", "stderr", "timed_out"}.
"""

import json
import os
import random
import runpy
import signal
import sys
import tempfile
import time
import traceback

sys.path[0] = os.getcwd()   # as after `python -m` (the repository root), not tests/
import experiments.common  # noqa: F401  (the shared imports, paid once)


def _child(request, out_fd, err_fd):
  """In the forked child: run the stage, return its exit status."""
  devnull = os.open(os.devnull, os.O_RDONLY)
  os.dup2(devnull, 0)
  os.dup2(out_fd, 1)
  os.dup2(err_fd, 2)
  os.environ['XLA_FLAGS'] = request['xla_flags']
  random.seed()                  # from os.urandom, as at interpreter start
  sys.modules['numpy'].random.seed()   # numpy's legacy global generator: likewise
  module = f"experiments.{request['stage']}"
  sys.argv = [module, *request['args']]
  code = 0
  try:
    runpy.run_module(module, run_name='__main__', alter_sys=True)
  except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if not isinstance(e.code, int) and e.code is not None:
      print(e.code, file=sys.stderr)
  except BaseException:  # pylint: disable=broad-except
    traceback.print_exc()
    code = 1
  return code


class _ChildExit(SystemExit):
  """Raised in the child to leave the server's loop and shut the interpreter down."""


def _run(request):
  with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
      code = 1
      try:
        code = _child(request, out.fileno(), err.fileno())
      except BaseException:  # pylint: disable=broad-except
        os._exit(1)  # pylint: disable=protected-access  (the child never runs the server loop)
      raise _ChildExit(code)   # up through main(): the interpreter's own exit, as `python -m`
    deadline, timed_out = time.monotonic() + request['timeout'], False
    while True:
      done, status = os.waitpid(pid, os.WNOHANG)
      if done:
        break
      if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        timed_out = True
        break
      time.sleep(0.01)
    out.seek(0)
    err.seek(0)
    return {'returncode': os.waitstatus_to_exitcode(status), 'stdout': out.read(),
            'stderr': err.read(), 'timed_out': timed_out}


def main():
  protocol = os.fdopen(os.dup(1), 'w')
  os.dup2(2, 1)   # stray prints of the server itself stay out of the protocol
  for line in sys.stdin:
    protocol.write(json.dumps(_run(json.loads(line))) + '\n')
    protocol.flush()


if __name__ == '__main__':
  main()
