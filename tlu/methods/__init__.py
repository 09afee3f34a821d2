"""Methods, found by name: `tlu.methods.get('simclr')` imports `tlu/methods/simclr.py`.

A method is one file that defines one `tlu.methods.base.Method` subclass decorated
with `@register`; its module name is its name. Nothing else lists the methods.
"""

import importlib
import pkgutil

from tlu.methods.base import Method, register  # noqa: F401

_NOT_METHODS = ('base',)


def names():
  """Every method file in this package, sorted."""
  return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)
                      if m.name not in _NOT_METHODS and not m.name.startswith('_')))


def get(name):
  """The Method subclass called `name`; ValueError naming the known ones if there is none."""
  if name not in names():
    raise ValueError(f'unknown method {name!r}; known: {", ".join(names())}')
  module = importlib.import_module(f'{__name__}.{name}')
  return module.METHOD
