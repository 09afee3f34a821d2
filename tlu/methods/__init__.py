"""Methods, found by name: `tlu.methods.get('simclr')` imports `tlu/methods/simclr.py`.

A method is one file that defines one `tlu.methods.base.Method` subclass decorated
with `@register`; its module name is its name. Nothing else lists the methods.
"""

import sys

from tlu import plugins
from tlu.methods.base import Method, register  # noqa: F401

_NOT_METHODS = ('base', 'output')


def names():
  """Every method file in this package, sorted."""
  return plugins.names(sys.modules[__name__], _NOT_METHODS)


def get(name):
  """The Method subclass called `name`; ValueError naming the known ones if there is none."""
  return plugins.load(sys.modules[__name__], name, 'method', _NOT_METHODS).METHOD
