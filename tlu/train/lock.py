"""One run per workdir: `<workdir>/run.lock` names the process that runs there.

The lock file holds the holder's process id, host, boot id, start time (the clock ticks
since boot of /proc/<pid>/stat, which tell a live process from a later one with the same
id) and command line; it is created with an atomic exclusive create on a local disk. A
command refuses a workdir (`Busy`, one line) while a live process holds its lock, or the
lock of a folder above it (a pipeline's sub-workdirs, a sweep's cells) or below it (three
levels), so the same run cannot be written by two processes. A lock on this host whose
process is gone is stale: it is taken over with a one-line note. A lock written on another
host is honoured (this host cannot see that process); the line says how to remove it.
Locks held by this process cover the folders below them: a pipeline holds one lock for
every stage it runs. Multi-host, process 0 holds the lock and the others check that it
names the same run. On gs:// (no exclusive create) see docs/tpu.md.
"""

import contextlib
import json
import os
import socket
import sys
import time

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

from tlu import diskfull
from tlu.train import stop
from tlu.train.workdir import WorkdirError, make as make_workdir, path as workdir_path

NAME = 'run.lock'
_HELD = {}      # str(workdir) -> the record this process wrote there
_CREATED = {}   # str(workdir) -> the folders its lock created, deepest first


class Busy(WorkdirError):
  """Another live run holds the workdir (or a folder above or below it)."""


def _boot_id():
  try:
    return epath.Path('/proc/sys/kernel/random/boot_id').read_text().strip()
  except OSError:
    return ''


def _start_ticks(pid):
  """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); None: no process."""
  try:
    stat = epath.Path(f'/proc/{pid}/stat').read_text()
  except OSError:
    return None
  return int(stat[stat.rindex(')') + 2:].split()[19])


def record():
  """This process as a lock names it."""
  return {'pid': os.getpid(), 'host': socket.gethostname(), 'boot_id': _boot_id(),
          'start_ticks': _start_ticks(os.getpid()),
          'started': time.strftime('%Y-%m-%d %H:%M:%S %z'), 'command': ' '.join(sys.argv)[:1000]}


def alive(holder):
  """Whether the process a lock names may still run: False only if it is known gone."""
  if holder.get('host') != socket.gethostname():
    return True
  if holder.get('boot_id') and holder['boot_id'] != _boot_id():
    return False
  ticks = _start_ticks(holder.get('pid'))
  if ticks is None and not epath.Path('/proc/self').is_dir():   # no /proc: ask the kernel
    try:
      os.kill(holder['pid'], 0)
      return True
    except ProcessLookupError:
      return False
    except PermissionError:
      return True
  return ticks is not None and ticks == holder.get('start_ticks')


def describe(holder):
  return (f"process {holder.get('pid')} on host {holder.get('host')}, started "
          f"{holder.get('started')}")


def _read(p):
  try:
    return json.loads(epath.Path(p).read_text())
  except (OSError, ValueError):
    return None


def _busy(workdir, lock_file, holder):
  where = '' if epath.Path(lock_file).parent == epath.Path(workdir) else (
      f' (its lock {lock_file})')
  remote = holder.get('host') != socket.gethostname()
  hint = (f'; if that run is over, remove {lock_file}' if remote
          else '; wait for it to finish or stop it, or use another --workdir')
  return Busy(f'{workdir} is in use by {describe(holder)}{where}{hint}')


def _others(root):
  """The lock files of the folders above `root` and below it (three levels)."""
  parent = root.parent
  while parent != parent.parent:
    yield parent / NAME
    parent = parent.parent
  if root.exists():
    for depth in range(1, 4):
      yield from root.glob('/'.join(['*'] * depth + [NAME]))


def _create(p, content):
  """Exclusive create; False if `p` exists (gs://: check, then write)."""
  if '://' in str(p):
    if p.exists():
      return False
    p.write_text(content)
    return True
  try:
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
  except FileExistsError:
    return False
  try:
    with diskfull.writing(NAME, p.parent), os.fdopen(fd, 'w') as f:
      f.write(content)
  except BaseException:
    os.unlink(p)
    raise
  return True


def _take_over(p, holder):
  """Removes the stale lock `p` unless another process replaced it meanwhile."""
  aside = p.parent / f'{NAME}.stale-{os.getpid()}'
  try:
    p.rename(aside)
  except OSError:
    return
  if _read(aside) == holder:
    print(f'note: {p.parent}: taking over the lock of {describe(holder)}, which no longer '
          'runs', file=sys.stderr)
  else:   # another process's fresh lock: put it back (unless yet another one is there)
    _create(p, aside.read_text())
  aside.unlink()


def _covered(root):
  return any(str(root) == h or str(root).startswith(h.rstrip('/') + '/') for h in _HELD)


def check(workdir):
  """Busy if a live run holds `workdir` or a folder above or below it; writes nothing
  (None: nothing to check). `acquire` checks again as it takes the lock."""
  root = None if workdir is None else workdir_path(workdir)
  if root is None or _covered(root):
    return
  for p in (root / NAME, *_others(root)):
    holder = _read(p)
    if holder is not None and alive(holder):
      raise _busy(root, p, holder)


def _acquire_here(root):
  """Process 0: the record written into root/run.lock; Busy naming the live holder."""
  for other in _others(root):
    holder = _read(other)
    if holder is not None and alive(holder):
      raise _busy(root, other, holder)
  missing = [d for d in (root, *root.parents) if not d.exists()]
  make_workdir(root)
  _CREATED[str(root)] = missing
  mine, p = record(), root / NAME
  for _ in range(5):
    if _create(p, json.dumps(mine, indent=2) + '\n'):
      return mine
    holder = _read(p)
    if holder is None:   # being written right now, or empty after a crash
      time.sleep(0.2)
      holder = _read(p) or {'pid': None, 'host': socket.gethostname()}
    if alive(holder):
      raise _busy(root, p, holder)
    _take_over(p, holder)
  raise Busy(f'{root}: cannot take the lock {p}; remove it if no run uses this workdir')


def _agree(root, mine, error):
  """Multi-host: every process learns process 0's outcome; the others check the lock file."""
  text = json.dumps({'record': mine, 'error': error}).encode()[:4096].ljust(4096)
  text = bytes(multihost_utils.broadcast_one_to_all(np.frombuffer(text, np.uint8))).decode()
  outcome = json.loads(text)
  if outcome['error']:
    raise Busy(outcome['error'])
  if jax.process_index() != 0 and _read(root / NAME) != outcome['record']:
    raise Busy(f'{root / NAME} does not name this run ({describe(outcome["record"])}); is the '
               'workdir on storage every host shares?')
  return outcome['record']


def acquire(workdir):
  """Locks `workdir` for this run; returns whether this call took a lock (release it).

  Raises Busy (a WorkdirError: bad input, exit 2) before anything is written when a live
  run holds it. A workdir at or below one this process holds is covered: nothing is taken.
  """
  root = workdir_path(workdir)
  if _covered(root):
    return False
  mine, error = None, None
  if jax.process_index() == 0:
    try:
      mine = _acquire_here(root)
    except (WorkdirError, OSError) as e:   # multi-host: every process raises it (_agree)
      error = str(e)
      if jax.process_count() == 1:
        raise
  if jax.process_count() > 1:
    mine = _agree(root, mine, error)
  _HELD[str(root)] = mine
  return True


def release(workdir):
  """Removes the lock this process took (process 0), if it still names this process."""
  root = workdir_path(workdir)
  mine = _HELD.pop(str(root), None)
  created = _CREATED.pop(str(root), ())
  if mine is not None and jax.process_index() == 0 and _read(root / NAME) == mine:
    with contextlib.suppress(OSError, ValueError):
      (root / NAME).unlink()
      for d in created:   # a run that wrote nothing leaves nothing
        if any(d.iterdir()):
          break
        d.rmdir()


def release_all():
  for held in list(_HELD):
    release(held)


@contextlib.contextmanager
def held(workdir):
  """`acquire` for the block, released at its end (also on an error or a second Ctrl-C);
  workdir None: nothing is locked (a stage that writes no workdir)."""
  took = workdir is not None and acquire(workdir)
  try:
    yield
  finally:
    if took:
      release(workdir)


stop.on_abandon(release_all)
