"""Parameter-tree surgery: fill a freshly initialised target tree from a source checkpoint.

Parameter transfer starts from the target model's fresh initialisation and
overwrites the leaves the source can supply (shared layers); the rest keep their
fresh values (specific layers, e.g. a new head). Which leaf comes from where is
decided by `/`-joined paths and regex rules (big_vision's `load(...,
dont_load=...)`), and every decision is written to a `TransplantReport`, because
a silently skipped or mis-mapped leaf is the most common transfer bug. Shapes
and dtypes must agree unless an adapter is named explicitly.
"""

import dataclasses
import re
from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from tlu.transfer.paths import SEP, flatten, map_with_paths, match_any

IDENTITY_RULES = (('(.*)', r'\1'),)
ADAPTERS = ('in_channels', 'reinit_mismatched', 'head')  # 'head': alias of 'reinit_mismatched'


class TransplantError(ValueError):
  """A source leaf does not fit the target leaf it was mapped to."""


@dataclasses.dataclass
class TransplantReport:
  """What `transplant` did to every leaf.

  Paths carry the collection prefix (`params/...`, `batch_stats/...`) when a
  whole variables dict was transplanted, and none when a single tree was.

  Attributes:
    copied: `(target_path, source_path)` for every leaf copied unchanged.
    adapted: `(target_path, source_path, how)` for every leaf an adapter
      changed, e.g. `'in_channels 1->3'`.
    kept_fresh: `(target_path, reason)` for every leaf that keeps its fresh
      value; reason is `'dont_load'`, `'no rule'` (no rule names an existing
      source leaf) or `'reinit_mismatched'` (shape differs, adapter asked for).
    unused_source: source paths whose values went into no target leaf.
  """
  copied: list = dataclasses.field(default_factory=list)
  adapted: list = dataclasses.field(default_factory=list)
  kept_fresh: list = dataclasses.field(default_factory=list)
  unused_source: list = dataclasses.field(default_factory=list)

  def summary(self):
    return (f'transplant: {len(self.copied)} copied, {len(self.adapted)} adapted, '
            f'{len(self.kept_fresh)} kept fresh, {len(self.unused_source)} source unused')

  def table(self):
    """One fixed-width line per leaf: status, target path, source path or reason."""
    rows = ([('copied', t, s) for t, s in self.copied] +
            [('adapted', t, f'{s} ({how})') for t, s, how in self.adapted] +
            [('kept fresh', t, reason) for t, reason in self.kept_fresh] +
            [('unused', '-', s) for s in self.unused_source])
    header = ('status', 'target', 'source / reason')
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(2)]
    fmt = lambda r: f'{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}'.rstrip()
    lines = [self.summary(), fmt(header), fmt(('-' * widths[0], '-' * widths[1], '-' * 15))]
    return '\n'.join(lines + [fmt(r) for r in rows])

  def to_json(self):
    """A JSON-serialisable dict (for `transplant.json` in the workdir)."""
    return {
        'copied': [{'target': t, 'source': s} for t, s in self.copied],
        'adapted': [{'target': t, 'source': s, 'how': how} for t, s, how in self.adapted],
        'kept_fresh': [{'target': t, 'reason': r} for t, r in self.kept_fresh],
        'unused_source': list(self.unused_source),
    }


def _is_variables(tree):
  """A Flax variables dict (`{'params': ..., 'batch_stats': ...}`) vs a single collection."""
  return isinstance(tree, Mapping) and 'params' in tree


def _shape_dtype(x):
  return tuple(np.shape(x)), np.dtype(x.dtype if hasattr(x, 'dtype') else np.result_type(x))


def _in_channels_change(path, src_shape, tgt_shape):
  """(cin_src, cin_tgt) if only a conv kernel's input-channel axis (-2) differs as 1<->n."""
  if not path.endswith('kernel') or len(src_shape) < 3 or len(src_shape) != len(tgt_shape):
    return None
  same_rest = src_shape[:-2] + src_shape[-1:] == tgt_shape[:-2] + tgt_shape[-1:]
  cin_src, cin_tgt = src_shape[-2], tgt_shape[-2]
  return (cin_src, cin_tgt) if same_rest and 1 in (cin_src, cin_tgt) else None


def adapt_in_channels(kernel, cin):
  """Conv kernel `(*window, cin_src, cout)` -> `(*window, cin, cout)`, one side being 1.

  1 -> n repeats the kernel over the new channels and divides by n, so an image
  whose n channels all equal the grey image gets the same response; n -> 1 sums
  over input channels, so a grey image gets the response the source gave to
  that grey value repeated in every channel.
  """
  kernel = jnp.asarray(kernel)
  cin_src = kernel.shape[-2]
  if cin_src == cin:
    return kernel
  if cin_src == 1:
    return (jnp.repeat(kernel, cin, axis=-2) / cin).astype(kernel.dtype)
  if cin == 1:
    return kernel.sum(axis=-2, keepdims=True).astype(kernel.dtype)
  raise ValueError(f'in_channels adapter maps 1 <-> n channels, not {cin_src} -> {cin}')


def _mismatch(tgt_path, tgt, src_path, src, what, hint):
  (ts, td), (ss, sd) = tgt, src
  return TransplantError(
      f'cannot transplant source {src_path!r} (shape {ss}, dtype {sd}) into target '
      f'{tgt_path!r} (shape {ts}, dtype {td}): {what} differ; {hint}')


def _candidates(path, rules):
  """Source paths the rules propose for `path`, in rule order."""
  for regex, template in rules:
    m = re.fullmatch(regex, path)
    if m is not None:
      yield m.expand(template)


def _transplant_tree(source, target, rules, dont_load, adapters, report, prefix):
  """`transplant` for one collection; appends to `report`, paths prefixed by `prefix`."""
  src_flat = flatten(source) if source else {}
  used = set()

  def fill(path, fresh):
    if match_any(path, dont_load):
      report.kept_fresh.append((prefix + path, 'dont_load'))
      return fresh
    src_path = next((s for s in _candidates(path, rules) if s in src_flat), None)
    if src_path is None:
      report.kept_fresh.append((prefix + path, 'no rule'))
      return fresh
    value = src_flat[src_path]
    tgt, src = _shape_dtype(fresh), _shape_dtype(value)
    names = (prefix + path, tgt, prefix + src_path, src)
    if tgt[1] != src[1]:
      raise _mismatch(*names, 'dtypes', 'cast the source checkpoint to the target dtype first')
    if tgt[0] != src[0]:
      cin = _in_channels_change(path, src[0], tgt[0])
      if cin is not None and 'in_channels' in adapters:
        used.add(src_path)
        report.adapted.append((prefix + path, prefix + src_path, f'in_channels {cin[0]}->{cin[1]}'))
        return adapt_in_channels(value, cin[1])
      if 'reinit_mismatched' in adapters or 'head' in adapters:
        report.kept_fresh.append((prefix + path, 'reinit_mismatched'))
        return fresh
      hint = ("pass adapters=('in_channels',) to adapt this conv kernel" if cin is not None else
              "fix the rules, add the target path to dont_load, or pass "
              "adapters=('reinit_mismatched',) to keep its fresh value")
      raise _mismatch(*names, 'shapes', hint)
    used.add(src_path)
    report.copied.append((prefix + path, prefix + src_path))
    return value

  new = map_with_paths(fill, target)
  report.unused_source.extend(prefix + p for p in src_flat if p not in used)
  return new


def transplant(source, target, rules=IDENTITY_RULES, dont_load=(), adapters=()):
  """Copies source leaves into a fresh target tree, leaf by leaf, by path rules.

  For every target leaf path, in order:
    1. if a `dont_load` regex full-matches it, the target's fresh leaf is kept;
    2. otherwise the first rule `(target_regex, source_template)` whose regex
       full-matches the path *and* whose expansion (`\\1`-style backrefs, as in
       `re.Match.expand`) names an existing source leaf supplies the value, e.g.
       `('backbone/(.*)', r'encoder/\\1')` renames `encoder` to `backbone`;
    3. no such rule: the fresh leaf is kept.
  Shapes and dtypes must match exactly (`TransplantError` otherwise), except for
  the adapters named in `adapters`:
    - `'in_channels'`: a conv kernel `(*window, cin_src, cout)` whose input
      channels go 1 -> n (repeat / n) or n -> 1 (sum), see `adapt_in_channels`;
    - `'reinit_mismatched'` (alias `'head'`): a leaf whose shape differs keeps
      its fresh value (a classifier of another size).
  A dtype mismatch always raises.

  Args:
    source: the pretrained tree: one collection (`{'backbone': ..., ...}`) or a
      variables dict (`{'params': ..., 'batch_stats': ...}`). Leaves: arrays.
    target: the freshly initialised tree of the new model, same kinds as source.
      A variables dict is recognised by its `'params'` key; every top-level key
      is then a collection and is transplanted from the source collection of the
      same name (a single-collection source counts as `{'params': source}`).
    rules: sequence of `(target_regex, source_template)`; default: same path.
    dont_load: regexes of target paths that keep their fresh value.
    adapters: names from `ADAPTERS`.

  Rules and `dont_load` always see paths relative to the collection
  (`backbone/Conv_0/kernel`, never `params/backbone/...`), so one rule moves a
  layer's `params` and its `batch_stats` together; the report's paths carry the
  collection prefix when a variables dict is given.

  Returns:
    `(new_tree, report)`: `new_tree` has the target's structure, shapes and
    dtypes, holding source leaves (the same array objects, not copies) where
    copied; `report` is a `TransplantReport`.
  """
  adapters = (adapters,) if isinstance(adapters, str) else tuple(adapters)
  unknown = [a for a in adapters if a not in ADAPTERS]
  if unknown:
    raise ValueError(f'unknown adapters {unknown}; known: {ADAPTERS}')
  rules = tuple((regex, template) for regex, template in rules)
  dont_load = (dont_load,) if isinstance(dont_load, str) else tuple(dont_load)
  report = TransplantReport()
  if not _is_variables(target):
    source = source['params'] if _is_variables(source) else source
    return _transplant_tree(source, target, rules, dont_load, adapters, report, ''), report
  source = source if _is_variables(source) else {'params': source}
  new = {col: _transplant_tree(source.get(col), tree, rules, dont_load, adapters, report,
                               col + SEP)
         for col, tree in target.items()}
  for col in source:
    if col not in target:
      report.unused_source.extend(col + SEP + p for p in flatten(source[col]))
  return new, report
