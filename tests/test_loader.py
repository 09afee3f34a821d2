"""grain loaders: per-process shards, resumable state, exact one-pass evaluation."""

import numpy as np

from tlu.data import loader, subsets


def _source(n):
  return [{'image': np.full((2, 2, 1), i, np.uint8), 'label': np.int64(i)} for i in range(n)]


def test_processes_split_each_epoch_without_overlap():
  src = _source(24)
  per_proc = [loader.train_iterator(src, 8, seed=3, process_index=p, process_count=2)
              for p in range(2)]
  epoch = [next(it)['label'] for _ in range(3) for it in per_proc]  # 3 steps x 2 procs x 4
  seen = np.concatenate(epoch)
  assert sorted(seen.tolist()) == list(range(24))


def test_epochs_are_reshuffled_and_seeded():
  it_a = loader.train_iterator(_source(16), 16, seed=0)
  it_b = loader.train_iterator(_source(16), 16, seed=0)
  e1, e2 = next(it_a)['label'], next(it_a)['label']
  assert sorted(e1.tolist()) == sorted(e2.tolist()) == list(range(16))
  assert not np.array_equal(e1, e2)
  np.testing.assert_array_equal(e1, next(it_b)['label'])


def test_iterator_state_resumes_exactly():
  it = loader.train_iterator(_source(10), 4, seed=1)
  next(it)
  state = it.get_state()
  expected = [next(it)['label'] for _ in range(5)]
  fresh = loader.train_iterator(_source(10), 4, seed=1)
  fresh.set_state(state)
  got = [next(fresh)['label'] for _ in range(5)]
  np.testing.assert_array_equal(np.stack(expected), np.stack(got))


def test_a_batch_spanning_many_epochs_holds_each_epoch_once():
  # 5 examples, batches of 12: the stream is still one fresh permutation per epoch.
  it = loader.train_iterator(_source(5), 12, seed=2)
  stream = np.concatenate([next(it)['label'] for _ in range(5)])   # 60 = 12 epochs
  epochs = stream.reshape(12, 5)
  assert all(sorted(e.tolist()) == list(range(5)) for e in epochs)
  assert len({tuple(e) for e in epochs}) > 1


def test_streamed_reads_give_the_in_memory_batches(monkeypatch):
  in_memory = loader.train_iterator(_source(10), 4, seed=1)
  expected = [next(in_memory) for _ in range(6)]
  monkeypatch.setattr(loader, 'CACHE_BYTES', 0)   # too big to cache: grain reads per batch
  streamed = loader.train_iterator(_source(10), 4, seed=1)
  assert loader._Examples(_source(10), ('label',)).arrays is None
  for want in expected:
    got = next(streamed)
    for key in ('image', 'label'):
      np.testing.assert_array_equal(got[key], want[key])


def test_paired_batches_draw_both_domains_independently():
  source, target = _source(8), _source(6)
  it = loader.paired_iterator(source, target, 8, seed=0)
  first = next(it)
  assert sorted(first['label'].tolist()) == list(range(8))
  assert sorted(first['target_image'][:6, 0, 0, 0].tolist()) == list(range(6))
  assert 'target_label' not in first
  halves = [loader.paired_iterator(source, target, 8, seed=0, process_index=p, process_count=2)
            for p in range(2)]
  both = [next(h) for h in halves]
  np.testing.assert_array_equal(np.sort(np.concatenate([b['label'] for b in both])),
                                np.sort(first['label']))
  # Seeds are independent replicates: seed 0's target order is not seed 1's source order.
  same = _source(8)
  t0 = [next(it)['target_image'][:, 0, 0, 0] for it in [loader.paired_iterator(same, same, 8, seed=0)]
        for _ in range(4)]
  s1 = [next(it)['label'] for it in [loader.paired_iterator(same, same, 8, seed=1)] for _ in range(4)]
  assert not all(np.array_equal(a, b) for a, b in zip(t0, s1))


def test_task_view_relabels_and_keeps_few_labels():
  src = [{'image': np.zeros((1,), np.uint8), 'label': np.int64(i % 4)} for i in range(40)]
  view = subsets.TaskView(src, classes=(2, 3), labels_per_class=3, seed=0)
  assert len(view) == 6
  originals = [src[int(i)]['label'] for i in view.indices]
  assert sorted(originals) == [2, 2, 2, 3, 3, 3]
  assert [int(view[i]['label']) for i in range(6)] == [int(o) - 2 for o in originals]
  other_seed = subsets.TaskView(src, classes=(2, 3), labels_per_class=3, seed=1)
  assert not np.array_equal(view.indices, other_seed.indices)
  it = loader.train_iterator(view, 6, seed=0)
  assert sorted(next(it)['label'].tolist()) == [0, 0, 0, 1, 1, 1]


def test_eval_batches_cover_the_split_once_with_padding():
  src = _source(11)
  labels = []
  for p in range(2):
    batches = list(loader.eval_batches(src, 4, process_index=p, process_count=2))
    assert all(b['image'].shape == (2, 2, 2, 1) for b in batches)
    labels += [b['label'][b['mask']] for b in batches]
  assert sorted(np.concatenate(labels).tolist()) == list(range(11))


def test_fit_image_resizes_crops_and_converts_channels():
  from tlu.data.preprocess import fit_image  # pylint: disable=import-outside-toplevel
  img = np.zeros((20, 40, 1), np.uint8)
  img[:, 20:] = 200  # right half bright
  out = fit_image(img, size=10, channels=3)
  assert out.shape == (10, 10, 3) and out.dtype == np.uint8
  # shorter side 20 -> 10, width 40 -> 20, centre crop keeps columns 5..14 of the 20.
  assert np.all(out[:, :4] == 0) and np.all(out[:, 6:] == 200)
  assert np.all(out[..., 0] == out[..., 2])
  rgb = np.zeros((4, 4, 3), np.uint8)
  rgb[..., 0] = 100
  np.testing.assert_array_equal(fit_image(rgb, channels=1)[..., 0], round(0.299 * 100))
