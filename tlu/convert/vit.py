"""ViTs in timm's layout (.safetensors) and big_vision's (.npz) -> tlu's ViT (big_vision names).

timm (`vit_{small,base,large}_patch{16,32}_224.*`):
  patch_embed.proj                  -> embedding (conv weight OIHW -> HWIO)
  cls_token + pos_embed[:, :1]      -> cls (timm adds the class token's position embedding
  pos_embed[:, 1:]                  -> pos_embedding   to it; big_vision folds it into cls)
  blocks.{i}.norm1 / norm2          -> Transformer/encoderblock_{i}/LayerNorm_0 / LayerNorm_1
  blocks.{i}.attn.qkv               -> .../MultiHeadDotProductAttention_0/{query,key,value}
                                       ((3D, D) split in three, each -> (D, heads, D/heads))
  blocks.{i}.attn.proj              -> .../out ((D, D) -> (heads, D/heads, D))
  blocks.{i}.mlp.fc1 / fc2          -> .../MlpBlock_0/Dense_0 / Dense_1
  norm                              -> Transformer/encoder_norm
  pre_logits.fc, head               -> pre_logits, head (if the file has them)
timm's ViT computes GELU exactly (erf), so the converted config sets approximate_gelu=False.
Variants with other parts (layer scale `ls1`, `fc_norm` after average pooling, register
tokens, q/k norms) are refused: converting them leaf by leaf would change the function.

big_vision / vision_transformer (.npz of `/`-joined keys, tlu's own names): read as is,
after the fixes big_vision's `vit.fix_old_checkpoints` makes -- pre-linen module numbers
(`MultiHeadDotProductAttention_1`, `LayerNorm_2`, `MlpBlock_3`) renumbered per type,
`Transformer/posembed_input/pos_embedding` or `Transformer/pos_embedding` moved to
`pos_embedding`, a position embedding that includes the class token folded into `cls`
-- and with a `params/` or `opt/target/` prefix removed and a scanned encoder
(`Transformer/encoderblock/...` with a leading layer axis) unstacked. MAP-head models are
refused. A file without `pos_embedding` (big_vision's plain ViT baselines, e.g.
vit_s16_i1k_300ep.npz: mean pooling, sincos2d position embeddings, a pre-logits layer)
converts to posemb='sincos2d'.

Both: the position embeddings are resampled (`tlu.models.vit.resample_posemb`) when the
converted model is asked for another `image_size` than the file's.
"""

import re

import numpy as np

from tlu.convert import core
from tlu.models import vit as vit_lib

ATTENTION = 'MultiHeadDotProductAttention_0'


def _square(n):
  r = int(round(np.sqrt(n)))
  return r * r == n


def _grid(n_tokens, with_cls):
  """Side of the position-embedding grid of `n_tokens` entries (one more with the class token)."""
  return int(round(np.sqrt(n_tokens - 1 if with_cls else n_tokens)))


def _posemb_rule(target_cls, sources, grid, old_grid, cls_in_posemb):
  """Rule for pos_embedding (and cls when the file's posemb holds the class token's entry)."""
  how = []
  if cls_in_posemb:
    how.append(f'cls + {sources[-1]}[:, :1]; {sources[-1]}[:, 1:]')
  if grid != old_grid:
    how.append(f'resampled {old_grid}x{old_grid}->{grid}x{grid}')

  def fn(*xs):
    pe = xs[-1]
    cls_part, pe = (pe[:, :1], pe[:, 1:]) if cls_in_posemb else (None, pe)
    pe = vit_lib.resample_posemb(np.asarray(pe, np.float32), (grid, grid))
    if target_cls:
      return xs[0] + cls_part, pe
    return (pe,)

  targets = ((target_cls,) if target_cls else ()) + ('params/backbone/pos_embedding',)
  return core.Rule(targets, sources, fn, '; '.join(how))


def _variant_guess(width, depth, mlp_dim, patch):
  for size, (w, d, m, _) in vit_lib.VARIANTS.items():
    if (w, d, m) == (width, depth, mlp_dim):
      return f'the file looks like a vit_{size.lower()}{patch}'
  return f'the file holds a ViT of width {width}, depth {depth}, MLP {mlp_dim}, patch {patch}'


# ------------------------------------------------------------------------------ timm

def timm_info(arrays):
  """What a timm ViT file fixes by itself: pool, image size, pre-logits and head sizes."""
  if 'patch_embed.proj.weight' not in arrays or 'pos_embed' not in arrays:
    raise core.ConvertError('the file is not a timm ViT (no patch_embed.proj.weight / pos_embed)')
  patch = int(arrays['patch_embed.proj.weight'].shape[-1])
  with_cls = 'cls_token' in arrays
  n = int(arrays['pos_embed'].shape[1])
  cls_in_posemb = with_cls and _square(n - 1) and not _square(n)
  return dict(pool='tok' if with_cls else 'gap', patch=patch,
              grid=_grid(n, cls_in_posemb), cls_in_posemb=cls_in_posemb,
              representation_size=int(arrays['pre_logits.fc.weight'].shape[0])
              if 'pre_logits.fc.weight' in arrays else 0,
              num_classes=int(arrays['head.weight'].shape[0]) if 'head.weight' in arrays else 0)


def _layer_norm(target, source):
  return [core.copy(f'{target}/scale', f'{source}.weight'),
          core.copy(f'{target}/bias', f'{source}.bias')]


def timm_rules(arrays, depth, num_heads, grid):
  info = timm_info(arrays)
  b = 'params/backbone'
  out = [core.conv_oihw(f'{b}/embedding/kernel', 'patch_embed.proj.weight'),
         core.copy(f'{b}/embedding/bias', 'patch_embed.proj.bias')]
  sources = ('cls_token', 'pos_embed') if info['pool'] == 'tok' else ('pos_embed',)
  if info['pool'] == 'tok' and not info['cls_in_posemb']:
    out.append(core.copy(f'{b}/cls', 'cls_token'))
    sources = ('pos_embed',)
  out.append(_posemb_rule(f'{b}/cls' if len(sources) == 2 else None, sources, grid,
                          info['grid'], info['cls_in_posemb']))
  heads = num_heads
  split = lambda x, h: np.split(x, 3, axis=0)   # (3D, ...) -> q, k, v

  def qkv_kernel(w):
    return tuple(np.transpose(p).reshape(p.shape[1], heads, -1) for p in split(w, heads))

  def qkv_bias(v):
    return tuple(p.reshape(heads, -1) for p in split(v, heads))

  def out_kernel(w):
    return (np.transpose(w).reshape(heads, -1, w.shape[0]),)

  for i in range(depth):
    t, s = f'{b}/Transformer/encoderblock_{i}', f'blocks.{i}'
    qkv = tuple(f'{t}/{ATTENTION}/{n}' for n in ('query', 'key', 'value'))
    out += _layer_norm(f'{t}/LayerNorm_0', f'{s}.norm1')
    out += [core.Rule(tuple(f'{q}/kernel' for q in qkv), (f'{s}.attn.qkv.weight',), qkv_kernel,
                      'qkv split, (out, in) -> (in, heads, head_dim)'),
            core.Rule(tuple(f'{q}/bias' for q in qkv), (f'{s}.attn.qkv.bias',), qkv_bias,
                      'qkv split, -> (heads, head_dim)'),
            core.Rule((f'{t}/{ATTENTION}/out/kernel',), (f'{s}.attn.proj.weight',), out_kernel,
                      '(out, in) -> (heads, head_dim, out)'),
            core.copy(f'{t}/{ATTENTION}/out/bias', f'{s}.attn.proj.bias')]
    out += _layer_norm(f'{t}/LayerNorm_1', f'{s}.norm2')
    for j, fc in ((0, 'fc1'), (1, 'fc2')):
      out += [core.dense_oi(f'{t}/MlpBlock_0/Dense_{j}/kernel', f'{s}.mlp.{fc}.weight'),
              core.copy(f'{t}/MlpBlock_0/Dense_{j}/bias', f'{s}.mlp.{fc}.bias')]
  out += _layer_norm(f'{b}/Transformer/encoder_norm', 'norm')
  if info['representation_size']:
    out += [core.dense_oi(f'{b}/pre_logits/kernel', 'pre_logits.fc.weight'),
            core.copy(f'{b}/pre_logits/bias', 'pre_logits.fc.bias')]
  if info['num_classes']:
    out += [core.dense_oi('params/head/kernel', 'head.weight'),
            core.copy('params/head/bias', 'head.bias')]
  return out


def timm_guess(arrays):
  if 'patch_embed.proj.weight' not in arrays:
    return 'it does not look like a timm ViT'
  parts = [name for key, name in (('ls1', 'layer scale'), ('fc_norm', 'fc_norm'),
                                  ('reg_token', 'register tokens'), ('q_norm', 'q/k norms'))
           if any(key in k for k in arrays)]
  if parts:
    return f'it has {", ".join(parts)}, which tlu\'s ViT does not'
  depth = len({k.split('.')[1] for k in arrays if k.startswith('blocks.')})
  w = arrays['patch_embed.proj.weight']
  mlp = arrays.get('blocks.0.mlp.fc1.weight', np.zeros((0,))).shape[0]
  return _variant_guess(int(w.shape[0]), depth, int(mlp), int(w.shape[-1]))


# ------------------------------------------------------------------------- big_vision

def _renumber_pre_linen(names):
  """{old module name: new} for one scope: `Type_N` renumbered 0, 1, ... per Type in N order
  (flax's convert_pre_linen)."""
  by_type = {}
  for name in names:
    m = re.fullmatch(r'(.+)_(\d+)', name)
    if m:
      by_type.setdefault(m.group(1), []).append((int(m.group(2)), name))
  return {name: f'{typ}_{i}' for typ, items in by_type.items()
          for i, (_, name) in enumerate(sorted(items))}


def big_vision_arrays(arrays):
  """A big_vision / vision_transformer .npz's arrays under tlu's ViT names (see the docstring)."""
  for prefix in ('params/img/', 'params/', 'opt/target/'):
    if f'{prefix}embedding/kernel' in arrays:
      arrays = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
      break
  out = {}
  for key, value in arrays.items():
    m = re.fullmatch(r'Transformer/encoderblock/(.+)', key)
    if m:   # a scanned encoder: one array per leaf with a leading layer axis
      for i, layer in enumerate(value):
        out[f'Transformer/encoderblock_{i}/{m.group(1)}'] = layer
    else:
      out[key] = value
  arrays, fixed = out, {}
  scopes = {}
  for key in arrays:
    m = re.fullmatch(r'(Transformer/encoderblock_\d+)/([^/]+)/(.+)', key)
    if m:
      scopes.setdefault(m.group(1), set()).add(m.group(2))
  renames = {scope: _renumber_pre_linen(names) for scope, names in scopes.items()}
  for key, value in arrays.items():
    m = re.fullmatch(r'(Transformer/encoderblock_\d+)/([^/]+)/(.+)', key)
    if m:
      key = f'{m.group(1)}/{renames[m.group(1)].get(m.group(2), m.group(2))}/{m.group(3)}'
    if key in ('Transformer/posembed_input/pos_embedding', 'Transformer/pos_embedding'):
      key = 'pos_embedding'
    fixed[key] = value
  return fixed


def big_vision_info(arrays):
  """What the file fixes: pool, position embeddings, grid, pre-logits and head sizes. Without
  `pos_embedding` the model used fixed sincos2d embeddings (grid: 224 / patch, a guess
  only for the recorded image size: sincos2d fits any size)."""
  if 'embedding/kernel' not in arrays:
    raise core.ConvertError('the file is not a big_vision ViT (no embedding/kernel)')
  with_cls = 'cls' in arrays
  patch = int(arrays['embedding/kernel'].shape[0])
  learned = 'pos_embedding' in arrays
  n = int(arrays['pos_embedding'].shape[1]) if learned else (224 // patch) ** 2
  cls_in_posemb = learned and with_cls and _square(n - 1) and not _square(n)
  return dict(pool='tok' if with_cls else 'gap', patch=patch,
              posemb='learn' if learned else 'sincos2d',
              grid=_grid(n, cls_in_posemb), cls_in_posemb=cls_in_posemb,
              representation_size=int(arrays['pre_logits/kernel'].shape[-1])
              if 'pre_logits/kernel' in arrays else 0,
              num_classes=int(arrays['head/kernel'].shape[-1])
              if 'head/kernel' in arrays and arrays['head/kernel'].shape[-1] else 0)


def big_vision_rules(arrays, target_shapes, grid):
  """Every tlu leaf from the file key of the same name (head/... from head/...)."""
  info = big_vision_info(arrays)
  out = []
  for target in target_shapes:
    if target in ('params/backbone/pos_embedding', 'params/backbone/cls'):
      continue
    source = target[len('params/backbone/'):] if target.startswith('params/backbone/') \
        else target[len('params/'):]
    out.append(core.copy(target, source))
  with_cls = info['pool'] == 'tok'
  if with_cls and not info['cls_in_posemb']:
    out.append(core.copy('params/backbone/cls', 'cls'))
  if info['posemb'] == 'sincos2d':
    return out
  sources = ('cls', 'pos_embedding') if with_cls and info['cls_in_posemb'] else ('pos_embedding',)
  out.append(_posemb_rule('params/backbone/cls' if len(sources) == 2 else None, sources, grid,
                          info['grid'], info['cls_in_posemb']))
  return out


def big_vision_guess(arrays):
  if any(k.startswith('MAPHead_0/') or k == 'probe' for k in arrays):
    return 'it has a MAP head (pool_type "map"), which tlu\'s ViT does not'
  if 'embedding/kernel' not in arrays:
    return 'it does not look like a big_vision ViT'
  depth = len({k.split('/')[1] for k in arrays if k.startswith('Transformer/encoderblock_')})
  w = arrays['embedding/kernel']
  mlp = arrays.get('Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel', np.zeros((0, 0)))
  return _variant_guess(int(w.shape[-1]), depth, int(mlp.shape[-1]), int(w.shape[0]))
