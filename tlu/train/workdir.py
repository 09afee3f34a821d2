"""The run-directory contract, through `etils.epath` so a workdir may be local or `gs://`.

config.json (the resolved config), summary.json (final metrics), report.md and pictures;
every file is written whole or not at all (write to a temporary name, then rename; the
temporary file is removed when writing fails), and a full disk raises
`tlu.diskfull.DiskFull` naming the file.
"""

import contextlib
import json
import os

import jax
from etils import epath

from tlu import diskfull


class WorkdirError(ValueError):
  """A workdir that cannot be used; the message says why and what to do."""


def path(*parts):
  """An epath.Path of parts[0] / parts[1] / ...; local paths are made absolute (orbax needs it)."""
  root = str(parts[0])
  root = root if '://' in root else os.path.abspath(root)
  return epath.Path(root).joinpath(*map(str, parts[1:]))


@contextlib.contextmanager
def open_atomic(p, mode='wb'):
  """A file object to write `p` with: renamed into `p` when the block ends, removed if it fails."""
  p = epath.Path(p)
  tmp = p.parent / f'.{p.name}.tmp'
  try:
    with diskfull.writing(p.name, p.parent):
      with tmp.open(mode) as f:
        yield f
      tmp.replace(p)
  except BaseException:
    with contextlib.suppress(OSError):
      tmp.unlink()
    raise


def write_text(p, text):
  """Atomic: a reader never sees half a file, a crash never leaves one."""
  with open_atomic(p, 'w') as f:
    f.write(text)


def write_json(p, obj):
  write_text(p, json.dumps(obj, indent=2, sort_keys=True) + '\n')


def read_json(p):
  """A JSON file's content; WorkdirError naming the file if it is not valid JSON."""
  p = epath.Path(p)
  try:
    return json.loads(p.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise WorkdirError(f'{p} is not valid JSON ({e}); repair or remove it') from None


def done(run_dir):
  """A finished run (or cell): its summary.json exists."""
  return path(run_dir, 'summary.json').exists()


def _diff(old, new, prefix=''):
  out = []
  for k in sorted(set(old) | set(new)):
    a, b = old.get(k, '<absent>'), new.get(k, '<absent>')
    if isinstance(a, dict) and isinstance(b, dict):
      out += _diff(a, b, f'{prefix}{k}.')
    elif a != b:
      out.append(f'{prefix}{k}: {a!r} -> {b!r}')
  return out


def check(workdir, config, sweep_keys=()):
  """Refuses a workdir that is not a directory or holds a run with another config.

  config: the resolved config as a dict. sweep_keys: top-level keys that only
  choose which independent cells a sweep runs (seeds, methods): they may change.
  """
  workdir = epath.Path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise WorkdirError(f'workdir {workdir} exists and is not a directory')
  p = workdir / 'config.json'
  if not p.exists():
    return
  old, new = read_json(p), dict(config)
  for k in sweep_keys:
    old.pop(k, None)
    new.pop(k, None)
  diffs = _diff(old, new)
  if diffs:
    raise WorkdirError(f'{workdir} holds a run with a different config ({"; ".join(diffs[:3])}'
                       f'{"; ..." if len(diffs) > 3 else ""}); use another --workdir')


def make(workdir):
  """Creates `workdir` (and its parents): DiskFull on a full disk, WorkdirError otherwise."""
  workdir = epath.Path(workdir)
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    if diskfull.is_disk_full(e):
      raise diskfull.DiskFull('the workdir', workdir.parent) from None
    raise WorkdirError(f'cannot create workdir {workdir}: {e.strerror or e}') from None


def claim(workdir, config, sweep_keys=()):
  """Checks, then creates the workdir and writes config.json (process 0)."""
  check(workdir, config, sweep_keys)
  workdir = epath.Path(workdir)
  p = workdir / 'config.json'
  if jax.process_index() == 0:
    make(workdir)
    if sweep_keys or not p.exists():
      write_json(p, config)
