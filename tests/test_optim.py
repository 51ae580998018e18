"""Optimizers, clipping and schedules against hand computations with concrete numbers."""

import math

import numpy as np
import pytest

from lstmcore import optim


def params_and_grads(*pairs):
    params = {f"p{k}": np.array(p, np.float64) for k, (p, _) in enumerate(pairs)}
    grads = {f"p{k}": np.array(g, np.float64) for k, (_, g) in enumerate(pairs)}
    return params, grads


def test_adam_two_steps_match_a_hand_computation():
    params = {"w": np.array([1.0, -2.0])}
    kept = params["w"]
    opt = optim.Adam(params, lr=0.1)
    # Step 1: m = 0.1 g, v = 0.001 g^2; bias-corrected m/sqrt(v) = sign(g), so p -= 0.1 sign(g).
    opt.step({"w": np.array([0.5, -0.1])})
    np.testing.assert_allclose(params["w"], [0.9, -1.9], rtol=0, atol=1e-7)
    # Step 2, g = (0.25, 0.3): m = 0.9 m + 0.1 g = (0.07, 0.021);
    # v = 0.999 v + 0.001 g^2 = (3.1225e-4, 9.999e-5); m_hat = m / 0.19, v_hat = v / 0.001999;
    # p -= 0.1 m_hat / sqrt(v_hat) = (0.0932180, 0.0494190).
    opt.step({"w": np.array([0.25, 0.3])})
    np.testing.assert_allclose(params["w"], [0.80678204, -1.94941899], rtol=0, atol=1e-7)
    assert params["w"] is kept  # in place


def test_adam_weight_decay_is_l2_on_the_gradient_and_adamw_decays_the_weights():
    # lr 0.1, weight_decay 0.5, p = (1, -2), g = (0.5, -0.1).
    adam = {"w": np.array([1.0, -2.0])}
    optim.Adam(adam, lr=0.1, weight_decay=0.5).step({"w": np.array([0.5, -0.1])})
    # Adam: g + 0.5 p = (1.0, -1.1); the first step moves by lr * sign: (0.9, -1.9).
    np.testing.assert_allclose(adam["w"], [0.9, -1.9], atol=1e-7)
    adamw = {"w": np.array([1.0, -2.0])}
    optim.AdamW(adamw, lr=0.1, weight_decay=0.5).step({"w": np.array([0.5, -0.1])})
    # AdamW: p * (1 - 0.1 * 0.5) = (0.95, -1.9), then -lr * sign(g): (0.85, -1.8).
    np.testing.assert_allclose(adamw["w"], [0.85, -1.8], atol=1e-7)


@pytest.mark.parametrize("nesterov, expected", [(False, [0.9, 0.76]), (True, [0.81, 0.634])])
def test_sgd_momentum_two_steps(nesterov, expected):
    # lr 0.1, momentum 0.9, g = 1 then 0.5: buffer 1 then 0.9 + 0.5 = 1.4.
    # Plain: p = 1 - 0.1, then - 0.14. Nesterov: steps of g + 0.9 buffer = 1.9, then 1.76.
    params = {"w": np.array([1.0])}
    opt = optim.SGD(params, lr=0.1, momentum=0.9, nesterov=nesterov)
    seen = []
    for g in (1.0, 0.5):
        opt.step({"w": np.array([g])})
        seen.append(float(params["w"][0]))
    np.testing.assert_allclose(seen, expected, atol=1e-12)


def test_sgd_weight_decay_and_lr_change():
    params = {"w": np.array([1.0])}
    opt = optim.SGD(params, lr=0.1, weight_decay=0.1)
    opt.step({"w": np.array([1.0])})  # 1 - 0.1 * (1 + 0.1)
    assert params["w"][0] == pytest.approx(0.89)
    opt.lr = 0.0
    opt.step({"w": np.array([5.0])})
    assert params["w"][0] == pytest.approx(0.89)


def test_step_updates_only_its_params_and_needs_their_grads():
    params = {"a": np.zeros(2)}
    opt = optim.SGD(params, lr=0.1)
    opt.step({"a": np.ones(2), "frozen": np.ones(3)})
    np.testing.assert_allclose(params["a"], [-0.1, -0.1])
    with pytest.raises(ValueError, match=r"missing \['a'\]"):
        opt.step({"b": np.zeros(2)})
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        opt.step({"a": np.zeros(3)})


def test_clip_grad_norm_scales_to_the_global_norm_and_returns_it():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert optim.clip_grad_norm(grads, 10.0) == pytest.approx(5.0)
    assert grads["a"][0] == 3.0  # under the limit: untouched
    assert optim.clip_grad_norm(grads, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose([grads["a"][0], grads["b"][0, 0]], [0.6, 0.8], rtol=1e-6)
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm(grads, 0.0)


def lr_sequence(schedule, epochs):
    rates = []
    for _ in range(epochs):
        rates.append(schedule.lr)
        schedule.step()
    return rates


def test_step_lr_sequence():
    opt = optim.SGD({"w": np.zeros(1)}, lr=1.0)
    np.testing.assert_allclose(lr_sequence(optim.StepLR(opt, step_size=2, gamma=0.5), 6), [1, 1, 0.5, 0.5, 0.25, 0.25])
    assert opt.lr == 0.125


def test_cosine_lr_sequence_with_and_without_warmup():
    opt = optim.Adam({"w": np.zeros(1)}, lr=1.0)
    half = (1 + math.cos(math.pi / 4)) / 2
    np.testing.assert_allclose(
        lr_sequence(optim.CosineLR(opt, total_steps=4, min_lr=0.0), 6), [1, half, 0.5, 1 - half, 0, 0], atol=1e-12
    )
    opt = optim.Adam({"w": np.zeros(1)}, lr=1.0)
    np.testing.assert_allclose(
        lr_sequence(optim.CosineLR(opt, total_steps=6, min_lr=0.2, warmup_steps=2), 7),
        [1 / 3, 2 / 3, 1.0, 0.2 + 0.8 * half, 0.6, 0.2 + 0.8 * (1 - half), 0.2],
        atol=1e-12,
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda p: optim.SGD(p, lr=0.0),
        lambda p: optim.SGD(p, lr=-1.0),
        lambda p: optim.SGD(p, lr=0.1, momentum=1.0),
        lambda p: optim.SGD(p, lr=0.1, nesterov=True),
        lambda p: optim.Adam(p, lr=0.1, betas=(1.0, 0.999)),
        lambda p: optim.Adam(p, lr=0.1, betas=(0.9, -0.1)),
        lambda p: optim.Adam(p, eps=-1e-8),
        lambda p: optim.AdamW(p, weight_decay=-0.1),
        lambda p: optim.StepLR(optim.SGD(p, lr=0.1), step_size=0),
        lambda p: optim.CosineLR(optim.SGD(p, lr=0.1), total_steps=3, warmup_steps=3),
        lambda p: optim.CosineLR(optim.SGD(p, lr=0.1), total_steps=3, min_lr=0.5),
    ],
)
def test_bad_hyper_parameters_are_value_errors(make):
    with pytest.raises(ValueError, match="got"):
        make({"w": np.zeros(1)})
