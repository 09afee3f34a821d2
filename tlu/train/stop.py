"""Requests to stop a run, SIGTERM and Ctrl-C, caught from `install()` on (no jax imported).

SIGTERM (TPU preemption, `kill`) sets `REQUESTED`, which the training loop polls: it saves
a checkpoint of the step it is at and stops (the launcher exits 143). A first Ctrl-C does
the same while `tlu.train.loop.run` is on the main thread's stack (and sets `INTERRUPTED`:
the launcher then ends with status 130). Any other Ctrl-C ends the process at once,
whatever the main thread is doing (imports, a compile, an evaluation, a checkpoint being
written), as a kill would: every file is written whole or not at all, and a checkpoint
being written is abandoned (orbax writes it in `<step>.orbax-checkpoint-tmp` and renames
it into `<step>` only once complete; the next run removes it). A watcher thread reads
each press from the signal module's wakeup fd, so it acts even while the main thread is
inside a long C call; it runs the `on_abandon` callbacks (the workdir lock's release),
prints one line and ends the process by SIGINT.

A process that stops on Ctrl-C ends by SIGINT, as Python's own does on an uncaught
KeyboardInterrupt, so the shell reports 130 and a script around the command stops too
(`subprocess` sees -2).
"""

import os
import signal
import sys
import threading
import time

REQUESTED = threading.Event()     # SIGTERM or Ctrl-C: the loop saves and stops
INTERRUPTED = threading.Event()   # the request came from Ctrl-C
_ON_ABANDON = []
_PRESSES = []    # one entry per Ctrl-C
_WATCHER = []    # [True] once the watcher thread runs


def on_abandon(callback):
  """Registers `callback()`, run (errors ignored) before a Ctrl-C ends the process at once."""
  _ON_ABANDON.append(callback)


def _in_loop(frame):
  loop = sys.modules.get('tlu.train.loop')
  code = getattr(getattr(loop, 'run', None), '__code__', None)
  while frame is not None:
    if frame.f_code is code:
      return True
    frame = frame.f_back
  return False


def _on_sigterm(signum, frame):
  del signum, frame
  REQUESTED.set()


def _press(in_loop):
  """One Ctrl-C: the first, in a training loop, asks it to save and stop; any other ends the
  process now."""
  _PRESSES.append(in_loop)
  if len(_PRESSES) == 1 and in_loop:
    INTERRUPTED.set()
    REQUESTED.set()
  else:
    _abandon(b'error: interrupted twice: stopped at once, a checkpoint being written is '
             b'abandoned; re-run the same command to resume from the last complete one'
             if len(_PRESSES) > 1 else
             b'error: interrupted (Ctrl-C); re-run the same command to continue')


def _on_sigint(signum, frame):
  del signum
  if not _WATCHER:   # no watcher thread: this handler decides, when the main thread can run it
    _press(_in_loop(frame))


def die_by_sigint():
  """Ends the process now by SIGINT (status 130 in a shell), from any thread."""
  try:
    import ctypes  # pylint: disable=import-outside-toplevel
    libc = ctypes.CDLL(None)
    libc.signal.argtypes, libc.signal.restype = (ctypes.c_int, ctypes.c_void_p), ctypes.c_void_p
    libc.signal(signal.SIGINT, None)   # SIG_DFL: Python's handler would only set a flag
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
  finally:
    os._exit(128 + signal.SIGINT)  # pylint: disable=protected-access


def _abandon(line):
  for callback in list(_ON_ABANDON):
    try:
      callback()
    except Exception:  # pylint: disable=broad-except
      pass
  os.write(2, line + b'\n')
  die_by_sigint()


def _watch(fd):
  main = threading.main_thread().ident
  while True:
    try:
      data = os.read(fd, 512)
    except OSError:
      return
    for _ in range(data.count(bytes([signal.SIGINT]))):
      _press(_in_loop(sys._current_frames().get(main)))  # pylint: disable=protected-access


def _start_watcher():
  try:
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
  except (ValueError, OSError):   # not the main thread: `_on_sigint` decides
    return
  threading.Thread(target=_watch, args=(read,), daemon=True, name='tlu-ctrl-c').start()
  _WATCHER[:] = [True]


_SAID = []


def interrupted(line):
  """Prints `line` (the one line of a stop on Ctrl-C) and raises KeyboardInterrupt: uncaught,
  the interpreter ends by SIGINT after its shutdown, without a traceback (`install`)."""
  print(line, file=sys.stderr, flush=True)
  _SAID.append(line)
  raise KeyboardInterrupt


def _excepthook(kind, value, tb, previous=sys.excepthook):
  if not issubclass(kind, KeyboardInterrupt):
    previous(kind, value, tb)
  elif not _SAID:
    print('error: interrupted (Ctrl-C); re-run the same command to continue', file=sys.stderr)


def install():
  """Installs the handlers (main thread) and the watcher (again in a forked child)."""
  signal.signal(signal.SIGTERM, _on_sigterm)
  signal.signal(signal.SIGINT, _on_sigint)
  sys.excepthook = _excepthook
  _start_watcher()
  os.register_at_fork(after_in_child=_start_watcher)
