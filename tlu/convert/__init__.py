"""Checkpoints from other libraries -> tlu variables and a model config, from files on disk.

  convert('torchvision', 'resnet50.pth', 'resnet50')      torchvision ResNet state dicts
  convert('timm', 'model.safetensors', 'vit_b16')         timm ResNets and ViTs
  convert('big_vision', 'vit_s16_i1k_300ep.npz', 'vit_s16')  big_vision / vision_transformer ViTs

Nothing is downloaded: the user fetches the file once (docs/pretrained.md lists where), and
`python -m experiments.convert` writes it as a tlu run directory (`tlu.convert.run`) that
every stage takes as `--config.source`. The model config records the input convention
the weights were trained with (`input_range`, `input_mean`, `input_std`) and the image
size, so tlu feeds the converted model what its authors fed it. Conversion is exact or
refused: every tensor of the file goes into a tlu leaf of exactly its shape (only
`num_batches_tracked` may go unused), or `ConvertError` says which key is missing, which
is extra, or which shape differs and what architecture the file looks like.
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp

from tlu.convert import core, files, resnet, vit
from tlu.convert.core import ConvertError
from tlu.convert.files import FileFormatError
from tlu.models import build_model, heads as heads_lib
from tlu.transfer.paths import flatten
from tlu.transfer.surgery import TransplantReport

FORMATS = ('torchvision', 'timm', 'big_vision')
FAMILIES = {'torchvision': ('resnet',), 'timm': ('resnet', 'vit'), 'big_vision': ('vit',)}
RESNETS = ('resnet18', 'resnet34', 'resnet50', 'resnet101')
VITS = tuple(f'vit_{s.lower()}{p}' for s in vit.vit_lib.VARIANTS for p in (16, 32))
# Overrides of an architecture's sizes a user may give (tests use small widths).
SIZE_KEYS = {'resnet': ('width',), 'vit': ('width', 'depth', 'mlp_dim', 'num_heads')}


@dataclasses.dataclass
class Converted:
  """variables: {'params': {'backbone', 'head'?}, 'batch_stats'} float32 numpy; model: the tlu
  model config (a dict, JSON-able); num_classes: the file's classifier outputs (0: none);
  report: a TransplantReport, target paths <- file keys."""
  variables: dict
  model: dict
  num_classes: int
  report: TransplantReport


def family_of(arch):
  if arch in RESNETS:
    return 'resnet'
  if arch in VITS:
    return 'vit'
  raise ConvertError(f'arch {arch!r}: tlu converts {", ".join(RESNETS + VITS)}')


def _published_inputs(path):
  """mean, std, image size of a timm / Hugging Face `config.json` beside the file ({} if none)."""
  p = os.path.join(os.path.dirname(os.path.abspath(path)), 'config.json')
  try:
    with open(p) as f:
      cfg = json.load(f).get('pretrained_cfg', {})
  except (OSError, ValueError, AttributeError):
    return {}
  out = {}
  if 'mean' in cfg and 'std' in cfg:
    out.update(input_mean=tuple(cfg['mean']), input_std=tuple(cfg['std']))
  if 'input_size' in cfg:
    out['image_size'] = int(cfg['input_size'][-1])
  return out


def input_convention(fmt, family, path):
  """The convention of a format's published weights (docs/pretrained.md)."""
  if fmt == 'big_vision':   # big_vision's pp: value_range(-1, 1)
    return dict(input_range=(-1.0, 1.0), input_mean=(0.0,), input_std=(1.0,))
  if fmt == 'timm' and family == 'vit':   # augreg ViTs: mean = std = 0.5, i.e. [-1, 1]
    out = dict(input_range=(0.0, 1.0), input_mean=(0.5, 0.5, 0.5), input_std=(0.5, 0.5, 0.5))
  else:
    out = dict(input_range=(0.0, 1.0), input_mean=resnet.IMAGENET_MEAN,
               input_std=resnet.IMAGENET_STD)
  if fmt == 'timm':
    published = _published_inputs(path)
    out.update({k: v for k, v in published.items() if k != 'image_size'})
  return out


def _target_shapes(model_cfg, num_classes, image_size):
  heads = {'head': heads_lib.classifier(num_classes)} if num_classes else {}
  model = build_model(model_cfg, heads)
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, image_size, image_size, 3), jnp.float32))
  return {f'{col}/{p}': v.shape for col, tree in shapes.items() for p, v in flatten(tree).items()}


def convert(fmt, path, arch, overrides=None):
  """The tlu version of checkpoint file `path` in format `fmt` holding architecture `arch`.

  overrides: model config values that replace the architecture's or the file's: sizes
  (SIZE_KEYS), `image_size` (a ViT's position embeddings are resampled to it),
  `input_mean` / `input_std` / `input_range`. Returns `Converted`. Raises ConvertError,
  FileFormatError (both ValueError) or FileNotFoundError.
  """
  if fmt not in FORMATS:
    raise ConvertError(f'format {fmt!r}: use one of {FORMATS}')
  family = family_of(arch)
  if family not in FAMILIES[fmt]:
    raise ConvertError(f'{fmt} files hold {" and ".join(f + "s" for f in FAMILIES[fmt])} for '
                       f'tlu; arch {arch!r} is a {family}')
  overrides = {k: v for k, v in (overrides or {}).items() if v is not None and v != ()}
  unknown = set(overrides) - set(SIZE_KEYS[family]) - {
      'image_size', 'input_mean', 'input_std', 'input_range'}
  if unknown:
    raise ConvertError(f'{sorted(unknown)} cannot be set for a {family}')
  arrays = files.read(path)
  what = f'{arch} ({fmt} layout)'
  model = {'name': arch, 'dtype': 'float32', **input_convention(fmt, family, path)}
  if family == 'resnet':
    model.update(stem='imagenet', width=64, image_size=224)
    model.update(overrides)
    num_classes = resnet.num_classes(arrays)
    rules = resnet.rules(resnet.depth_of(arch), model['width'], bool(num_classes))
    shapes = _target_shapes(model, num_classes, 64)
    guess = lambda: resnet.guess(arrays)
    ignorable = resnet.ignorable
  else:
    if fmt == 'big_vision':
      arrays = vit.big_vision_arrays(arrays)
    info = (vit.timm_info if fmt == 'timm' else vit.big_vision_info)(arrays)
    sizes = vit.vit_lib.variant(f'{arch[4].upper()}/{arch[5:]}')
    if info['patch'] != sizes['patch_size']:
      raise ConvertError(f'the file has {info["patch"]}x{info["patch"]} patches, {arch} '
                         f'{sizes["patch_size"]}x{sizes["patch_size"]}')
    model.update({k: v for k, v in sizes.items() if k != 'patch_size'})
    model.update(image_size=info['grid'] * info['patch'], pool=info['pool'],
                 posemb=info.get('posemb', 'learn'),
                 representation_size=info['representation_size'],
                 approximate_gelu=fmt == 'big_vision')
    model.update(overrides)
    grid = model['image_size'] // info['patch']
    num_classes = info['num_classes']
    shapes = _target_shapes(model, num_classes, grid * info['patch'])
    if fmt == 'timm':
      rules = vit.timm_rules(arrays, model['depth'], model['num_heads'], grid)
      guess, ignorable = (lambda: vit.timm_guess(arrays)), (lambda k: False)
    else:
      rules = vit.big_vision_rules(arrays, shapes, grid)
      guess, ignorable = (lambda: vit.big_vision_guess(arrays)), (lambda k: False)
  variables, report = core.apply_rules(arrays, rules, shapes, what=what, ignorable=ignorable,
                                       guess=guess)
  return Converted(variables, model, num_classes, report)


__all__ = ['ConvertError', 'Converted', 'FileFormatError', 'FORMATS', 'convert']
