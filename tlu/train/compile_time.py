"""JAX's persistent compilation cache, and the seconds a command spends compiling.

`enable_cache(path)` points JAX at a cache directory, so that a resumed, repeated or
similar command loads its compiled programs instead of compiling them again (XLA keys
each entry by the program, its compile options and flags, and the jax/jaxlib version).
`CompileClock` sums JAX's own compile events ("/jax/core/compile/backend_compile_duration",
which covers an XLA compile or a load from the cache) while it is entered, and counts the
cache hits, so a stage can print its compile seconds apart from its step time.
"""

import jax
from jax import monitoring

_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'
_CACHE_HIT_EVENT = '/jax/compilation_cache/cache_hits'


def enable_cache(path, min_compile_time_secs=0.0):
  """Turns on the persistent compilation cache in `path` (created on first write).

  Every program is cached (`min_compile_time_secs` 0: on a CPU most programs compile in
  under JAX's default second, and they are what a small run waits on).
  """
  jax.config.update('jax_compilation_cache_dir', str(path))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', min_compile_time_secs)


class CompileClock:
  """with CompileClock() as clock: ...; then clock.seconds, clock.programs, clock.cache_hits."""

  def __init__(self):
    self.seconds, self.programs, self.cache_hits = 0.0, 0, 0

  def _duration(self, event, duration, **kwargs):
    del kwargs
    if event == _COMPILE_EVENT:
      self.seconds += duration
      self.programs += 1

  def _event(self, event, **kwargs):
    del kwargs
    if event == _CACHE_HIT_EVENT:
      self.cache_hits += 1

  def __enter__(self):
    monitoring.register_event_duration_secs_listener(self._duration)
    monitoring.register_event_listener(self._event)
    return self

  def __exit__(self, *exc):
    monitoring.unregister_event_duration_listener(self._duration)
    monitoring.unregister_event_listener(self._event)

  def line(self, wall_seconds):
    """'compile 3.2 s (14 programs, 9 from the cache) of 10.5 s'."""
    cached = f', {self.cache_hits} from the cache' if self.cache_hits else ''
    return (f'compile {self.seconds:.1f} s ({self.programs} programs{cached}) '
            f'of {wall_seconds:.1f} s')
