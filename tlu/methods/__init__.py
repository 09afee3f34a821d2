"""Methods, found by name: `tlu.methods.get('simclr')` is the class registered as 'simclr'.

A method is one file of this package that defines one `tlu.methods.base.Method` subclass
decorated with `@METHODS.register('<name>')`. Every module here is imported before a
lookup, so a new method is one new file that nothing else lists; modules that register
nothing are shared building blocks (base, facts, output, layouts, phases, bsp, momentum,
paired).
"""

from tlu.registry import Registry

METHODS = Registry('method', 'tlu.methods')
names, get = METHODS.names, METHODS.get

from tlu.methods.base import Method  # noqa: E402,F401  pylint: disable=wrong-import-position
