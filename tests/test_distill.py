"""SimCLRv2 distillation (tlu/methods/distill.py): eq. 2 against a numpy transcription, the
frozen teacher (zero gradient, state unchanged), its checks, exact resume with a teacher run,
and a tiny end-to-end sweep whose student agrees with its teacher above chance."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import methods_check
from conftest import run_stage
from tlu import methods
from tlu.methods.distill import distillation_loss
from tlu.models import build_model
from tlu.train import mesh as mesh_lib, task
from tlu.train.checkpoint import restore_params
from tlu.transfer.pretrained import load_pretrained
from method_block import check_block

K, B, MU = 3, 8, 2


def np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_eq2(student, teacher, tau):
  """- (1/N) sum_i sum_y P^T(y|x_i; tau) log P^S(y|x_i; tau), float64."""
  p_t = np.exp(np_log_softmax(teacher / tau))
  return -np.mean(np.sum(p_t * np_log_softmax(student / tau), -1))


@pytest.mark.parametrize('tau', [1.0, 0.5, 4.0])
def test_the_loss_is_eq_2(tau):
  rng = np.random.default_rng(0)
  s, t = rng.normal(0, 3, (2, 12, 5))
  got = distillation_loss(jnp.asarray(s, jnp.float32), jnp.asarray(t, jnp.float32), tau)
  np.testing.assert_allclose(float(got), np_eq2(s, t, tau), rtol=1e-5)
  # At the teacher's own logits the loss is the teacher's entropy, its minimum over students.
  np.testing.assert_allclose(float(distillation_loss(t, t, tau)),
                             -np.mean(np.sum(np.exp(np_log_softmax(t / tau))
                                             * np_log_softmax(t / tau), -1)), rtol=1e-5)


@pytest.fixture(scope='module')
def teacher_run(tmp_path_factory):
  """A tiny supervised run (MLP widths (32,)) on methods_check's 3-class 8x8 data."""
  work = str(tmp_path_factory.mktemp('teacher') / 'run')
  cfg = methods_check.config('supervised')
  task.fit_task(task.Trainer(mesh_lib.make_mesh(jax.devices()[:1])), cfg, work,
                methods_check.splits(), summary_prefix='')
  return work


def student_config(teacher, **overrides):
  cfg = methods_check.config('distill')
  cfg.model.widths, cfg.model.features = (8,), 6   # a smaller student than its teacher
  cfg.method.teacher, cfg.method.teacher_step = teacher, None
  cfg.method.update(overrides)
  return cfg


def test_the_loss_and_its_gradients_use_the_frozen_teacher(teacher_run):
  cfg = student_config(teacher_run)
  method, model, _ = task.build_method(cfg, methods_check.splits())
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  extra = method.init_extra(variables, None)
  tv, _, _ = load_pretrained(teacher_run)
  np.testing.assert_array_equal(extra['teacher']['params']['head']['kernel'],
                                tv['params']['head']['kernel'])
  rng = np.random.default_rng(3)
  batch = {'image': rng.integers(0, 256, (B, 8, 8, 1), dtype=np.uint8),
           'label': rng.integers(0, K, B).astype(np.int32),
           'unlabelled_image': rng.integers(0, 256, (MU * B, 8, 8, 1), dtype=np.uint8),
           'unlabelled_index': np.arange(MU * B, dtype=np.int32)}
  key = jax.random.key(5)

  @jax.jit
  def loss(params, teacher):
    state = {'batch_stats': variables['batch_stats'], 'step': jnp.int32(0),
             'extra': {'teacher': teacher}}
    return method.loss_fn(params, state, batch, key).loss

  # The same views, the student and the teacher run here by hand (the teacher: a separate
  # model of its own config, inference mode); eq. 2 and CE in numpy.
  k_lb, k_u = jax.random.split(key)
  x = method.weak(k_lb, jnp.asarray(batch['image'], jnp.float32) / 255.0)
  u = method.weak(k_u, jnp.asarray(batch['unlabelled_image'], jnp.float32) / 255.0)
  out, _ = model.apply(variables, jnp.concatenate([x, u]), train=True, heads=('head',),
                       mutable=['batch_stats'])
  student = np.asarray(out['head'], np.float64)
  teacher_model = build_model(load_pretrained(teacher_run)[1],
                              methods.get('supervised').heads(cfg.method, K))
  t_logits = np.asarray(teacher_model.apply(tv, u, heads=('head',))['head'], np.float64)
  ce = -np.mean(np_log_softmax(student[:B])[np.arange(B), batch['label']])
  expected = 0.5 * ce + 1.0 * np_eq2(student[B:], t_logits, 2.0)   # example_config's weights
  np.testing.assert_allclose(float(loss(variables['params'], extra['teacher'])), expected,
                             rtol=1e-5)
  g_student, g_teacher = jax.jit(jax.grad(loss, argnums=(0, 1)))(variables['params'], extra['teacher'])
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(g_teacher))
  assert len(jax.tree.leaves(g_teacher)) == len(jax.tree.leaves(extra['teacher']))
  assert max(float(np.abs(g).max()) for g in jax.tree.leaves(g_student)) > 1e-4


def test_resume_with_a_teacher_run_is_exact_and_the_teacher_stays_frozen(teacher_run, tmp_path):
  cfg, data = student_config(teacher_run), methods_check.splits()
  trainer = task.Trainer(mesh_lib.make_mesh(jax.devices()[:1]))
  straight = methods_check.final(trainer, cfg, str(tmp_path / 'straight'), data)
  calls = iter(range(10**6))
  stopped = methods_check.final(trainer, cfg, str(tmp_path / 'resumed'), data,
                                should_stop=lambda: next(calls) >= 1)
  resumed = methods_check.final(trainer, cfg, str(tmp_path / 'resumed'), data)
  assert stopped['stopped'] and 'resuming from the checkpoint of step' in resumed['stderr']
  assert methods_check.max_diff(straight['tree'], resumed['tree']) == 0.0
  tv, _, _ = load_pretrained(teacher_run)
  _, _, extra, _ = straight['tree']
  for path in (('params', 'backbone'), ('params', 'head')):
    a, b = extra['teacher'][path[0]][path[1]], tv[path[0]][path[1]]
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_bad_teachers_and_values_are_refused_by_the_check(teacher_run, tmp_path):
  check = lambda **kw: check_block(methods.get('distill'),
      ml_collections.ConfigDict({**methods.get('distill').example_config(), **kw}))
  with pytest.raises(ValueError, match='teacher run /nonexistent: source workdir .* not exist'):
    check(teacher='/nonexistent')
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'empty' / 'config.json').write_text('{"model": {"name": "mlp"}}')
  with pytest.raises(ValueError, match='has no checkpoints'):
    check(teacher=str(tmp_path / 'empty'))
  with pytest.raises(ValueError, match='no checkpoint for step 7'):
    check(teacher=teacher_run, teacher_step=7)
  with pytest.raises(ValueError, match=r'method.temperature=0.0: must be a finite number > 0'):
    check(temperature=0.0)
  with pytest.raises(ValueError, match=r'method.label_weight=-1.0: must be a finite number >= 0'):
    check(label_weight=-1.0)
  check(teacher=teacher_run)


def test_a_teacher_of_other_classes_does_not_fit(teacher_run):
  cfg = student_config(teacher_run)
  data = methods_check.splits()
  data.num_classes = 4
  method, model, _ = task.build_method(cfg, data)
  with pytest.raises(ValueError, match='predicts 3 classes; the task has 4'):
    method.init_extra(model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1))), None)


# ---------------------------------------------------------------- end to end: train, then semi

@pytest.fixture(scope='module')
def sweep(tmp_path_factory, data_dir):
  root = tmp_path_factory.mktemp('distill')
  teacher = root / 'teacher'
  run_stage('train', f'--workdir={teacher}', '--config=configs/digits_supervised.py',
            f'--config.dataset.data_dir={data_dir}', '--config.steps=150',
            '--config.model.widths=(8,16)', '--config.model.features=32',
            '--config.progress=False', check=True)
  work = root / 'semi'
  run_stage('semi', f'--workdir={work}', '--config=configs/mnist_semi.py:tiny',
            f'--config.dataset.data_dir={data_dir}', '--config.methods=("distill",)',
            f'--config.distill.teacher={teacher}', '--config.task.steps=150',
            '--config.task.model.widths=(4,8)', '--config.task.model.features=16',
            '--config.task.optimizer.lr=0.1', check=True)
  return teacher, work / 'distill' / 'lpc4_seed0', data_dir


def test_the_student_learns_to_agree_with_its_teacher(sweep):
  teacher, cell, data_dir = sweep
  from configs import mnist_semi  # pylint: disable=import-outside-toplevel
  config = mnist_semi.get_config('tiny')
  config.dataset.data_dir = data_dir
  test = task.task_splits(config.dataset).test
  images = np.stack([e['image'] for e in test]).astype(np.float32) / 255.0
  head = methods.get('supervised').heads(ml_collections.ConfigDict(), 10)
  t_vars, t_model_cfg, _ = load_pretrained(str(teacher))
  s_vars, _ = restore_params(str(cell / 'checkpoints'))   # a cell has no config.json
  s_model_cfg = {'name': 'cnn', 'use_bn': True, 'widths': (4, 8), 'features': 16,
                 'pool': 'flatten'}   # the sweep's task.model, as overridden above
  predict = {name: np.argmax(build_model(m, head).apply(v, images, heads=('head',))['head'], -1)
             for name, m, v in (('teacher', t_model_cfg, t_vars),
                                ('student', s_model_cfg, s_vars))}
  agreement = float(np.mean(predict['student'] == predict['teacher']))
  assert agreement > 0.5, agreement   # chance: about 0.1 on ten classes; no labels read (label_weight=0)


def test_a_missing_teacher_is_one_line_and_exit_2(tmp_path, data_dir):
  work = tmp_path / 'w'
  proc = run_stage('semi', f'--workdir={work}', '--config=configs/mnist_semi.py:tiny',
                   f'--config.dataset.data_dir={data_dir}', '--config.methods=("distill",)',
                   '--config.distill.teacher=/nonexistent/run')
  assert proc.returncode == 2, proc.stderr
  assert 'teacher run /nonexistent/run' in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1 and not work.exists()


def test_distill_is_in_the_registry_the_resume_test_covers():
  assert 'distill' in methods.names()
  methods.get('distill').check(ml_collections.ConfigDict(
      methods.get('distill').example_config()))
