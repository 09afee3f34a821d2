"""`/`-joined leaf paths: the one vocabulary of surgery, freezing masks and labels.

Parameters are plain nested dicts, so every tree operation in `tlu.transfer`
names a leaf by its keys joined with `/`, relative to its collection
(`backbone/stage1_block0/conv1/kernel`), and selects leaves with full-match
regexes, as big_vision does with its `(regex, ...)` lists.
"""

import re

import jax
from flax import traverse_util

SEP = '/'


def flatten(tree):
  """Nested dict -> `{path: leaf}` with `/`-joined paths (empty subtrees dropped)."""
  return traverse_util.flatten_dict(tree, sep=SEP)


def unflatten(flat):
  """`{path: leaf}` -> nested dict; the inverse of `flatten`."""
  return traverse_util.unflatten_dict(flat, sep=SEP)


def match_any(path, patterns):
  """True if any regex in `patterns` matches the whole of `path`.

  A single string is taken as one pattern (not as a sequence of characters).
  """
  if isinstance(patterns, str):
    patterns = (patterns,)
  return any(re.fullmatch(p, path) for p in patterns)


def _key_name(key):
  for attr in ('key', 'name', 'idx'):  # DictKey, GetAttrKey, SequenceKey
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def path_of(key_path):
  """A jax key path (from `jax.tree_util.tree_map_with_path`) -> `/`-joined path."""
  return SEP.join(_key_name(k) for k in key_path)


def map_with_paths(fn, tree, *rest):
  """`jax.tree.map` whose `fn(path, leaf, *rest_leaves)` also gets the leaf's path.

  Unlike `unflatten(flatten(...))` this keeps the tree's exact structure
  (empty subtrees included), which optax needs of label and mask trees.
  """
  return jax.tree_util.tree_map_with_path(
      lambda kp, x, *r: fn(path_of(kp), x, *r), tree, *rest)
