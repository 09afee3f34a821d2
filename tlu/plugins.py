"""Plug-ins found by module name: a package whose modules each define one thing.

`tlu.methods` and `tlu.evaluators` are such packages: adding a file adds a plug-in,
and nothing else lists them (big_vision's evaluators are found the same way).
"""

import importlib
import pkgutil


def names(package, exclude=()):
  """The plug-in module names of `package` (a module object), sorted."""
  return tuple(sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                      if m.name not in exclude and not m.name.startswith('_')))


def load(package, name, kind, exclude=()):
  """The module `package.name`; ValueError naming the known `kind`s if there is none."""
  known = names(package, exclude)
  if name not in known:
    raise ValueError(f'unknown {kind} {name!r}; known: {", ".join(known)}')
  return importlib.import_module(f'{package.__name__}.{name}')
