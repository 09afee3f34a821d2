"""Fine-tuning vs linear probe of a pretrained ResNet-50 on a TFDS image dataset (default CIFAR-10 at 224).

`--config=configs/resnet50_transfer.py:<strategy>` (linear_probe, finetune, lp_ft,
scratch; none: all). `--config.source=<workdir of a tlu ResNet-50 run>`, e.g.
configs/imagenet_resnet50.py; without it that ImageNet run is trained first.
`--config.dataset.name=<any TFDS image dataset>` (images are fitted to 224x224 on
the host; set `dataset.classes` to a subset if wanted). CIFAR-10 comes in without
TensorFlow as configs/cifar10_ssl.py says; any other folder, arrays or CSV list through
`python -m experiments.prepare` (configs/prepare.py), then `--config.dataset.name=<its name>`.
Targets (supervised ImageNet ResNet-50 -> CIFAR-10, Table 8 of SimCLR, Chen et al.
2020, following Kornblith et al. 2019): linear evaluation 93.6%, fine-tuned 97.5%.
Not yet measured by this project.
Protocol here: linear probe = frozen backbone (BatchNorm statistics too), fresh
head trained with the fine-tuning optimizer at 10x lr on un-augmented images
(Kornblith et al. use L-BFGS logistic regression on fixed features, cf.
tlu.evaluate.logistic_regression); fine-tune = every layer, 20,000 steps at batch 256,
Nesterov SGD 0.9, lr 0.01 cosine, weight decay 1e-4, crop + flip. Hardware:
~1.5 h per fine-tuning run on one A100 / TPU v4-8.
"""

from configs import digits_supervised, digits_transfer, imagenet_resnet50


def get_config(arg=None):
  c = digits_transfer.get_config(arg)
  c.source_task = imagenet_resnet50.get_config()
  c.dataset = digits_supervised.dataset('cifar10', image_size=224, channels=3)
  c.labels_per_class = (0,)
  c.seeds = (0,)
  c.steps = 20_000
  c.lp_steps = 5_000
  c.batch_size = 256
  c.eval_batch_size = 1000
  c.optimizer.update(dict(name='sgd', lr=0.01, momentum=0.9, weight_decay=1e-4,
                          schedule='cosine', warmup_steps=500))
  c.augment = 'supervised_imagenet'
  c.probe_lr_mult = 10.0
  return c
