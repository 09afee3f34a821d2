"""Images/s of `experiments.prepare` on a folder of JPEGs against a single-process loop, and
the peak memory of all its processes together (Linux: read from /proc).

  python -m benchmarks.prepare [--sizes 20000,100000] [--image_size 64] [--workers 0]
      [--root /tmp/tlu_prepare_bench] [--loop_sizes 20000]   # the loop at these sizes only

Source: `--sizes` generated 256x256 RGB JPEGs (quality 90, ~20 KB each: seeded crops of
scikit-image's colour photographs, resized), ten class folders, written in parallel once
into `<root>/images` and reused (the folder of each size holds hard links to the first N).
Each size is prepared twice, each in a fresh child process (imports not timed):
  tlu   `tlu.data.prepare.run.prepare('image_folder', ...)`, what `python -m
        experiments.prepare --config=configs/prepare.py:image_folder` runs: worker
        processes decode and resize, the parent writes the TFDS array_record dataset;
  loop  one process, the same work file by file over the same files: Pillow decode, the
        shorter side to `image_size` (bilinear) and a centre crop, PNG encode (zlib level 1,
        as tlu stores), the TFDS example serialized and appended to one array_record file.
Peak memory: the largest sum, over samples every 50 ms, of the resident set (RSS) of the
child and all its descendants (a forked worker's shared pages count once per process, so
this overstates what the machine holds), and, every 500 ms, of their proportional set (PSS,
shared pages split between the processes that map them). Streaming holds when the peak at
the largest size is within 50 MB of the peak at the smallest.
CPU: milliseconds of CPU per image of the child's main process and of its workers (os.times,
the workers joined), and the speed-up they leave room for when every core is ours (the
loop's CPU x cores / tlu's CPU): where other work shares the cores the wall-clock ratio falls
toward 1x, this bound does not. One line per size, then the streaming check; target
(issue 25): tlu >= 1.7x the loop's images/s on a 2-core machine.
"""

import argparse
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
from PIL import Image

TARGET_SPEEDUP, STREAMING_MB, CLASSES, SOURCE_SIZE = 1.7, 50, 10, 256
PAGE = os.sysconf('SC_PAGE_SIZE')
PHOTOS = ('astronaut.png', 'chelsea.png', 'coffee.png', 'motorcycle_left.png', 'rocket.jpg',
          'ihc.png', 'hubble_deep_field.jpg', 'retina.jpg')
_photos = []


def _image(i):
  """JPEG i: a seeded square crop (half to all of the shorter side) of one photograph."""
  if not _photos:
    import skimage  # pylint: disable=import-outside-toplevel
    root = os.path.join(os.path.dirname(skimage.__file__), 'data')
    _photos.extend(Image.open(os.path.join(root, f)).convert('RGB') for f in PHOTOS)
  rng = np.random.default_rng(i)
  photo = _photos[i % len(_photos)]
  w, h = photo.size
  side = int(rng.integers(min(w, h) // 2, min(w, h) + 1))
  x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
  return photo.resize((SOURCE_SIZE, SOURCE_SIZE), Image.BILINEAR, box=(x, y, x + side, y + side))


def _path(root, i):
  return os.path.join(root, f'class{i % CLASSES}', f'{i:06d}.jpg')


def _write(span):
  root, start, stop = span
  for i in range(start, stop):
    path = _path(root, i)
    if not os.path.exists(path):   # a rerun writes what an interrupted one did not
      _image(i).save(path + '.part', format='JPEG', quality=90)
      os.replace(path + '.part', path)


def generate(root, n):
  """`<root>/n<n>`: JPEGs 0..n-1 (hard links into `<root>/images`, generated once)."""
  images, folder = os.path.join(root, 'images'), os.path.join(root, f'n{n}')
  if os.path.exists(os.path.join(folder, '.complete')):
    return folder
  for c in range(CLASSES):
    os.makedirs(os.path.join(images, f'class{c}'), exist_ok=True)
  t = time.perf_counter()
  with multiprocessing.get_context('fork').Pool() as pool:
    pool.map(_write, [(images, s, min(s + 1024, n)) for s in range(0, n, 1024)], chunksize=1)
  print(f'{n:,} JPEGs in {images} ({time.perf_counter() - t:.0f} s)', flush=True)
  shutil.rmtree(folder, ignore_errors=True)
  for c in range(CLASSES):
    os.makedirs(os.path.join(folder, f'class{c}'))
  for i in range(n):
    os.link(_path(images, i), _path(folder, i))
  open(os.path.join(folder, '.complete'), 'w').close()
  return folder


def loop(path, out, image_size):
  """The single-process baseline (module docstring); returns the images written."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  from array_record.python import array_record_module  # pylint: disable=import-outside-toplevel
  classes = sorted(d for d in os.listdir(path) if not d.startswith('.'))
  files = [(os.path.join(c, f), k) for k, c in enumerate(classes)
           for f in sorted(os.listdir(os.path.join(path, c)))]
  features = tfds.features.FeaturesDict({
      'image': tfds.features.Image(shape=(image_size, image_size, 3)),
      'label': tfds.features.ClassLabel(names=classes), 'file_name': tfds.features.Text()})
  os.makedirs(out)
  writer = array_record_module.ArrayRecordWriter(os.path.join(out, 'loop.array_record'),
                                                 'group_size:1')
  for name, label in files:
    with Image.open(os.path.join(path, name)) as image:
      image = image.convert('RGB')
      scale = image_size / min(image.size)
      w, h = (max(image_size, round(s * scale)) for s in image.size)
      image = image.resize((w, h), Image.BILINEAR)
      left, top = (w - image_size) // 2, (h - image_size) // 2
      image = image.crop((left, top, left + image_size, top + image_size))
    png = io.BytesIO()
    image.save(png, format='PNG', compress_level=1)
    writer.write(features.serialize_example(
        {'image': png.getvalue(), 'label': label, 'file_name': name}))
  writer.close()
  return len(files)


def child(args):
  """One timed preparation in this process; prints as JSON its seconds, images and CPU
  seconds of this process (`cpu`) and of its worker processes (`workers_cpu`)."""
  if args.child == 'tlu':
    from tlu.data.prepare import run  # pylint: disable=import-outside-toplevel
    t, cpu = time.perf_counter(), os.times()
    report = run.prepare('image_folder', args.path, 'bench', args.out,
                         image_size=args.image_size, workers=args.workers)
    images = sum(report.splits.values())
  else:
    import tensorflow_datasets  # pylint: disable=import-outside-toplevel,unused-import
    t, cpu = time.perf_counter(), os.times()
    images = loop(args.path, args.out, args.image_size)
  seconds, end = time.perf_counter() - t, os.times()   # the workers are joined: counted
  print(json.dumps({'seconds': seconds, 'images': images,
                    'cpu': end.user + end.system - cpu.user - cpu.system,
                    'workers_cpu': end.children_user + end.children_system -
                                   cpu.children_user - cpu.children_system}), flush=True)


def _tree(pid):
  """pid and all its descendants (/proc/<pid>/task/<tid>/children, Linux >= 3.5)."""
  found, todo = [], [pid]
  while todo:
    p = todo.pop()
    found.append(p)
    try:
      for task in os.listdir(f'/proc/{p}/task'):
        with open(f'/proc/{p}/task/{task}/children') as f:
          todo.extend(int(c) for c in f.read().split())
    except OSError:   # exited meanwhile
      pass
  return found


def _rss(pids):
  """Resident bytes summed over pids (/proc/<pid>/statm; an exited process counts 0)."""
  total = 0
  for p in pids:
    try:
      with open(f'/proc/{p}/statm') as f:
        total += int(f.read().split()[1]) * PAGE
    except OSError:
      pass
  return total


def _pss(pids):
  """Proportional bytes summed over pids (/proc/<pid>/smaps_rollup: a page-table walk, ~2 ms
  of CPU per process, so sampled 10x less often than the RSS)."""
  total = 0
  for p in pids:
    try:
      with open(f'/proc/{p}/smaps_rollup') as f:
        total += sum(int(line.split()[1]) * 1024 for line in f if line.startswith('Pss:'))
    except OSError:
      pass
  return total


def measure(kind, path, out, image_size, workers):
  """Runs one preparation in a child; (images/s, seconds, peak RSS, peak PSS, processes,
  CPU ms per image in the child's main process, in its workers)."""
  shutil.rmtree(out, ignore_errors=True)
  cmd = [sys.executable, '-m', 'benchmarks.prepare', '--child', kind, '--path', path,
         '--out', out, '--image_size', str(image_size), '--workers', str(workers)]
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
  peak = [0, 0, 0]
  done = threading.Event()

  def sample():
    k = 0
    while not done.wait(0.05):
      pids = _tree(proc.pid)
      pss = _pss(pids) if k % 10 == 0 else 0
      peak[:] = max(peak[0], _rss(pids)), max(peak[1], pss), max(peak[2], len(pids))
      k += 1

  sampler = threading.Thread(target=sample, daemon=True)
  sampler.start()
  stdout, _ = proc.communicate()
  done.set()
  sampler.join()
  if proc.returncode:
    raise SystemExit(f'{kind} preparation failed (exit {proc.returncode})')
  result = json.loads(stdout.strip().splitlines()[-1])
  shutil.rmtree(out, ignore_errors=True)
  n = result['images']
  return (n / result['seconds'], result['seconds'], peak[0], peak[1], peak[2],
          1e3 * result['cpu'] / n, 1e3 * result['workers_cpu'] / n)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sizes', default='20000,100000')
  parser.add_argument('--image_size', type=int, default=64)
  parser.add_argument('--workers', type=int, default=0, help='tlu workers (0: one per CPU)')
  parser.add_argument('--loop_sizes', default=None,
                      help='sizes that also run the single-process loop (default: all)')
  parser.add_argument('--root', default='/tmp/tlu_prepare_bench')
  parser.add_argument('--child', choices=('tlu', 'loop'), help=argparse.SUPPRESS)
  parser.add_argument('--path', help=argparse.SUPPRESS)
  parser.add_argument('--out', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    return child(args)
  sizes = sorted(int(s) for s in args.sizes.split(','))
  loop_sizes = sizes if args.loop_sizes is None else [int(s) for s in args.loop_sizes.split(',')]
  folders = {n: generate(args.root, n) for n in sizes}
  peaks = {}
  for n in sizes:
    load = os.getloadavg()[0]
    out = os.path.join(args.root, 'out')
    tlu = measure('tlu', folders[n], out, args.image_size, args.workers)
    line = (f'prepare image_folder {n:,} x {SOURCE_SIZE}x{SOURCE_SIZE} JPEG -> '
            f'{args.image_size}x{args.image_size}x3 PNG: tlu {tlu[0]:,.0f} img/s ({tlu[1]:.0f} s, '
            f'{tlu[4]} processes)')
    if n in loop_sizes:
      base = measure('loop', folders[n], out, args.image_size, 0)
      speedup = tlu[0] / base[0]
      cores = len(os.sched_getaffinity(0))
      line += (f' vs single-process loop {base[0]:,.0f} img/s ({base[1]:.0f} s): '
               f'{speedup:.2f}x | target >= {TARGET_SPEEDUP}x: '
               f'{"met" if speedup >= TARGET_SPEEDUP else "NOT met"} | CPU ms/image: tlu '
               f'parent {tlu[5]:.2f} + workers {tlu[6]:.2f}, loop {base[5]:.2f} (all {cores} '
               f'cores ours: at most {min(cores, tlu[4] - 1) * base[5] / (tlu[5] + tlu[6]):.2f}x)')
    peaks[n] = tlu[2:4]
    print(f'{line} | peak memory tlu RSS {tlu[2] / 2**20:,.0f} MB (PSS {tlu[3] / 2**20:,.0f} '
          f'MB){f", loop RSS {base[2] / 2**20:,.0f} MB" if n in loop_sizes else ""} | '
          f'{len(os.sched_getaffinity(0))} cores, load {load:.1f} -> '
          f'{os.getloadavg()[0]:.1f}', flush=True)
  if len(sizes) > 1:
    (rss0, pss0), (rss1, pss1) = peaks[sizes[0]], peaks[sizes[-1]]
    grew = (rss1 - rss0) / 2**20
    print(f'streaming: peak RSS at {sizes[-1]:,} - at {sizes[0]:,} = {grew:+,.0f} MB (PSS '
          f'{(pss1 - pss0) / 2**20:+,.0f} MB) | bound <= {STREAMING_MB} MB: '
          f'{"met" if grew <= STREAMING_MB else "NOT met"}', flush=True)


if __name__ == '__main__':
  main()
