"""Supervised ResNet-50 on ImageNet-1k (TFDS `imagenet2012`): the source of configs/resnet50_transfer.py.

Published: 76.1% top-1 (torchvision's ResNet-50 v1 recipe, He et al. 2016); not measured
here (the data needs a manual download).
Protocol: 90 epochs at global batch 1024, SGD momentum 0.9 (Nesterov), peak lr
0.1 x B/256 with 5 warm-up epochs then cosine, weight decay 1e-4 on kernels,
no label smoothing; bfloat16 compute, float32 parameters. Train images are fitted
on the host to 224x224 (shorter side to 224, centre crop), then an on-device
random-resized crop (scale 0.08-1) + flip; validation: the same 224 centre crop
(the usual protocol resizes to 256 first: expect up to ~1 point lower).
Hardware: ~7 h on a TPU v4-32 slice, ~1 day on 8 A100s. Data (manual download,
https://image-net.org): either TFDS `imagenet2012` (`tfds build imagenet2012
--file_format=array_record`, needs TensorFlow), or, without TensorFlow, the ILSVRC2012 train
and validation images extracted to `train/<wnid>/` and `validation/<wnid>/` and prepared once:
  python -m experiments.prepare --config=configs/prepare.py:image_folder --config.path=<folder> \
      --config.name=imagenet_folder --config.image_size=256 --config.encoding=jpeg
then `--config.dataset.name=imagenet_folder`.
"""

from configs import digits_supervised

IMAGES = 1_281_167


def get_config(arg=None):
  del arg
  c = digits_supervised.get_config()
  c.dataset = digits_supervised.dataset('imagenet2012', image_size=224, channels=3)
  c.dataset.eval_split = 'validation'
  c.model.name, c.model.stem, c.model.dtype = 'resnet50', 'imagenet', 'bfloat16'
  c.model.width = 64
  del c.model['use_bn'], c.model['features'], c.model['widths']
  c.batch_size = 1024
  c.steps = 90 * IMAGES // c.batch_size
  c.optimizer.update(dict(name='sgd', lr=0.1, lr_scaling='linear', base_batch_size=256,
                          momentum=0.9, weight_decay=1e-4, schedule='cosine',
                          warmup_steps=5 * IMAGES // c.batch_size))
  c.augment = 'supervised_imagenet'
  c.eval_batch_size = 1000
  c.log_every, c.eval_every, c.checkpoint_every = 100, 5000, 2000
  return c
