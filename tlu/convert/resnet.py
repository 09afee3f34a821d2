"""ResNets in torch layout (torchvision's and timm's `resnet{18,34,50,101}` state dicts) -> tlu.

  conv1 / bn1                              -> backbone/stem_conv, stem_bn
  layer{s}.{b}.conv{i} / bn{i}             -> backbone/stage{s}_block{b}/conv{i}, bn{i}
  layer{s}.{b}.downsample.0 / .1           -> .../proj_conv, proj_bn
  fc                                       -> head (a Dense classifier), if the file has one
Conv weights go from (out, in, kh, kw) to (kh, kw, in, out), Linear weights are transposed,
BatchNorm weight/bias/running_mean/running_var become scale/bias (params) and mean/var
(batch_stats); `num_batches_tracked` is not needed. timm's plain ResNets (`resnet50.a1_in1k`,
...) use torchvision's names; its deep-stem and anti-aliased variants (resnet50d, ...) have
other keys and are refused.
"""

import re

from tlu.convert import core
from tlu.models.resnet import STAGE_SIZES

# The input convention of torchvision's and timm's ImageNet ResNets.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def depth_of(arch):
  return int(arch[len('resnet'):])


def rules(depth, width, with_head):
  """The Rules of a torch-layout ResNet-`depth` of first-stage width `width`."""
  del width   # shapes are checked against the tlu model
  bottleneck = depth >= 50
  out = [core.conv_oihw('params/backbone/stem_conv/kernel', 'conv1.weight'),
         *core.batch_norm('backbone/stem_bn', 'bn1')]
  convs = 3 if bottleneck else 2
  for s, blocks in enumerate(STAGE_SIZES[depth], start=1):
    for b in range(blocks):
      tlu, src = f'backbone/stage{s}_block{b}', f'layer{s}.{b}'
      for i in range(1, convs + 1):
        out.append(core.conv_oihw(f'params/{tlu}/conv{i}/kernel', f'{src}.conv{i}.weight'))
        out.extend(core.batch_norm(f'{tlu}/bn{i}', f'{src}.bn{i}'))
      if b == 0 and (s > 1 or bottleneck):
        out.append(core.conv_oihw(f'params/{tlu}/proj_conv/kernel', f'{src}.downsample.0.weight'))
        out.extend(core.batch_norm(f'{tlu}/proj_bn', f'{src}.downsample.1'))
  if with_head:
    out += [core.dense_oi('params/head/kernel', 'fc.weight'),
            core.copy('params/head/bias', 'fc.bias')]
  return out


def ignorable(key):
  return key.endswith('num_batches_tracked')


def num_classes(arrays):
  return int(arrays['fc.weight'].shape[0]) if 'fc.weight' in arrays else 0


def guess(arrays):
  """What ResNet the file looks like ('' if it does not look like one)."""
  if 'conv1.weight' not in arrays:
    if 'conv1.0.weight' in arrays:
      return 'it has a deep stem (conv1.0, as timm\'s resnet50d): tlu converts plain ResNets'
    return 'it does not look like a torch-layout ResNet (no conv1.weight)'
  blocks = {}
  for key in arrays:
    m = re.match(r'layer(\d)\.(\d+)\.', key)
    if m:
      blocks[int(m.group(1))] = max(blocks.get(int(m.group(1)), 0), int(m.group(2)) + 1)
  stages = tuple(blocks.get(s, 0) for s in range(1, 5))
  bottleneck = any(k.endswith('.conv3.weight') for k in arrays)
  width = int(arrays['conv1.weight'].shape[0])
  for depth, sizes in STAGE_SIZES.items():
    if sizes == stages and (depth >= 50) == bottleneck:
      return f'the file looks like a resnet{depth}' + (f' of width {width}' if width != 64 else '')
  return f'its stages have {stages} blocks{" (bottlenecks)" if bottleneck else ""}'
