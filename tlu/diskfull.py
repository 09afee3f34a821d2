"""A full disk (or quota) met while a run or a stage writes: `DiskFull` names what and where.

Writers wrap their writes in `writing(what, where)`, which turns a disk-full error (an
OSError with ENOSPC or EDQUOT, or a library's error whose message or cause says so: orbax
and tensorstore raise their own types) into DiskFull; the launcher makes it one line and
exit 74 (sysexits' EX_IOERR). Nothing is half-written under a name that a later run reads
as complete: files are written to a temporary name and renamed, checkpoints are promoted by
orbax only once complete, and the writers remove their temporary files on the way out.
"""

import contextlib
import errno

_CODES = (errno.ENOSPC, errno.EDQUOT)
_WORDS = ('no space left on device', 'disk quota exceeded', 'not enough disk space')  # tfds's check


class DiskFull(OSError):
  """No space left where `where` is: `what` (a file or a checkpoint) could not be written."""

  def __init__(self, what, where):
    super().__init__(errno.ENOSPC, f'no space left on device: cannot write {what} in {where}; '
                     'free space and re-run the same command to continue')
    self.what, self.where = what, where

  def __str__(self):
    return self.strerror


def is_disk_full(error):
  """Whether `error` (an exception or a message), or one it was raised from, says the disk
  (or quota) is full."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, DiskFull) or (isinstance(error, OSError) and error.errno in _CODES):
      return True
    if any(w in str(error).lower() for w in _WORDS):
      return True
    error = getattr(error, '__cause__', None) or getattr(error, '__context__', None)
  return False


def message(error):
  """The one line of a disk-full `error`: DiskFull's, or the first line of a library's."""
  if isinstance(error, DiskFull):
    return str(error)
  lines = [line for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
  return f'no space left on device ({lines[0][:200]}); free space and re-run the same command'


@contextlib.contextmanager
def writing(what, where):
  """Raises DiskFull(what, where) from a disk-full error inside the block."""
  try:
    yield
  except DiskFull:
    raise
  except Exception as e:  # pylint: disable=broad-except
    if is_disk_full(e):
      raise DiskFull(what, where) from None
    raise
