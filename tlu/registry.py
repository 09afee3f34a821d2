"""One way to register a plug-in: an explicit decorator that names it into a registry.

Every plug-in family (methods, models, evaluators, strategies, optimizers, schedules,
validators, dataset formats) has one `Registry`. A plug-in module says

    METHODS = Registry('method', 'tlu.methods')     # in the family's package
    @METHODS.register('fixmatch')
    class FixMatch(Method): ...

`get(name)` first imports every module of the family's package (so a new plug-in is
still one new file, listed nowhere else), then looks the name up; an unknown name is a
ValueError that lists the known ones (the launcher turns it into one line, exit 2).
Modules of the package that register nothing are shared building blocks.
"""

import importlib
import pkgutil


class Registry:
  """name -> plug-in (a class or a function) for one family.

  kind: what the plug-ins are, for messages ('method', 'evaluator', ...).
  package: dotted name of the package whose modules are imported before a lookup, or
    None when the plug-ins all live in already-imported modules.
  """

  def __init__(self, kind, package=None):
    self.kind, self.package = kind, package
    self._entries, self._ranges = {}, {}
    self._loaded = package is None

  def register(self, name, ranges=None):
    """Decorator: registers `obj` under `name` and returns it unchanged.

    A class gets `obj.name = name`. Registering a taken name is a ValueError. `ranges`
    ({key: tlu.checks.Range}, for a plug-in that is a function): the ranges of the keys
    of its config block, read back by `ranges(name)` (a class declares its own `ranges`).
    """

    def decorate(obj):
      if name in self._entries and self._entries[name] is not obj:
        raise ValueError(f'{self.kind} {name!r} is registered twice')
      self._entries[name] = obj
      if isinstance(obj, type):
        obj.name = name
      if ranges is not None:
        self._ranges[name] = dict(ranges)
      return obj

    return decorate

  def _load(self):
    if not self._loaded:
      package = importlib.import_module(self.package)
      for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith('_'):
          importlib.import_module(f'{self.package}.{module.name}')
      self._loaded = True

  def names(self):
    """The registered names, sorted."""
    self._load()
    return tuple(sorted(self._entries))

  def get(self, name):
    """The plug-in registered as `name`; ValueError naming the known ones otherwise."""
    self._load()
    if name not in self._entries:
      raise ValueError(f'unknown {self.kind} {name!r}; known: {", ".join(self.names())}')
    return self._entries[name]

  def ranges(self, name):
    """{key: tlu.checks.Range} of the plug-in `name`'s config block ({} if it declares none)."""
    obj = self.get(name)
    return self._ranges.get(name, getattr(obj, 'ranges', {}))

  def __contains__(self, name):
    self._load()
    return name in self._entries
