"""Requests to stop a run, SIGTERM and Ctrl-C, caught from `install()` on (no jax imported).

SIGTERM (TPU preemption, `kill`) sets `REQUESTED`, which the training loop polls: it saves
a checkpoint of the step it is at and stops (the launcher exits 143). A first Ctrl-C does
the same while `tlu.train.loop.run` is on the main thread's stack (and sets `INTERRUPTED`:
the launcher's status is then 130); anywhere else it raises KeyboardInterrupt where the
main thread is, since nothing is being saved and every file is written whole or not at
all. A second Ctrl-C ends the process at once, whatever the main thread is doing (a
compile, a device copy, a checkpoint being written): a watcher thread reads it from the
signal module's wakeup fd, runs the `on_abandon` callbacks (the workdir lock's release),
prints one line and ends the process by SIGINT. A checkpoint being written is then
abandoned: orbax writes it in `<step>.orbax-checkpoint-tmp-*` and renames it into `<step>`
only once complete; the next run removes it.

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


def on_abandon(callback):
  """Registers `callback()`, run (errors ignored) before a second Ctrl-C ends the process."""
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


def _on_sigint(signum, frame):
  del signum
  first = not INTERRUPTED.is_set()
  INTERRUPTED.set()
  if first and not _in_loop(frame):
    raise KeyboardInterrupt
  REQUESTED.set()


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


def _abandon():
  for callback in list(_ON_ABANDON):
    try:
      callback()
    except Exception:  # pylint: disable=broad-except
      pass
  os.write(2, b'error: interrupted twice: stopped at once, a checkpoint being written is '
              b'abandoned; re-run the same command to resume from the last complete one\n')
  die_by_sigint()


def _watch(fd):
  presses = 0
  while True:
    try:
      data = os.read(fd, 512)
    except OSError:
      return
    presses += data.count(bytes([signal.SIGINT]))
    if presses >= 2:
      _abandon()


def _start_watcher():
  try:
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
  except (ValueError, OSError):   # not the main thread: no second-press watcher
    return
  threading.Thread(target=_watch, args=(read,), daemon=True, name='tlu-ctrl-c').start()


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
