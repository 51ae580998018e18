"""lstmcore.sklearn: SequenceRegressor and SequenceClassifier as scikit-learn estimators.

scikit-learn's own check suite (parametrize_with_checks) runs on both, on an LSTM, a GRU
and an RNN, with no expected failures; the estimators there are sized so that the many
fits it makes stay fast (16 units, 20 epochs) and still learn its data sets (accuracy
above 0.83, R^2 above 0.5). The other tests cover what the suite does not: sequences
(N, T, F), learning a sequence task, Pipeline and GridSearchCV, string labels, pickles
and model files bit for bit, and the errors.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import lstmcore

pytest.importorskip("sklearn")
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from lstmcore.sklearn import SequenceClassifier, SequenceRegressor

SMALL = dict(hidden_size=16, epochs=20, batch_size=16)
# 16 units keep a pass on one thread (docs/design.md#threads), whose speed does not suffer
# from the other work of a busy machine.
LEARN = dict(hidden_size=16, epochs=30)
FAST = dict(hidden_size=8, epochs=3, batch_size=16)  # for the tests that need a fitted model, not a good one


@parametrize_with_checks(
    [
        SequenceRegressor(**SMALL),
        SequenceClassifier(**SMALL),
        SequenceRegressor(cell="gru", **SMALL),
        SequenceClassifier(cell="rnn", **SMALL),
    ]
)
def test_scikit_learn_checks(estimator, check):
    check(estimator)


def sign_task(count=300, steps=12, features=1, seed=0):
    """Sequences of noise around a level of +-0.3; the label is the sign of their mean."""
    rng = np.random.default_rng(seed)
    level = rng.choice([-0.3, 0.3], size=(count, 1, 1))
    x = rng.normal(size=(count, steps, features)) + level
    return x, np.where(x.mean(axis=(1, 2)) > 0, "up", "down")


def sum_task(count=300, steps=10, seed=0):
    """(N, T) univariate sequences; the target is the sum of each (around 100, to show
    that the targets' units do not matter)."""
    x = np.random.default_rng(seed).uniform(-1, 1, size=(count, steps))
    return x, 100 + 10 * x.sum(axis=1)


# ----------------------------------------------------------------------- learning


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_classifier_learns_the_sign_of_the_mean(cell):
    x, y = sign_task()
    model = SequenceClassifier(cell=cell, **LEARN, random_state=0).fit(x[:200], y[:200])
    # chance is 0.5; the noise of 12 steps blurs the mean only near 0 (0.91 to 0.99 seen)
    assert model.score(x[200:], y[200:]) > 0.85
    assert list(model.classes_) == ["down", "up"]
    assert model.n_iter_ == 30 and model.history_.history["loss"][-1] < model.history_.history["loss"][0]


def test_the_regressor_learns_a_sum_in_its_own_units():
    x, y = sum_task()
    model = SequenceRegressor(**LEARN, random_state=0).fit(x[:200], y[:200])
    assert model.score(x[200:], y[200:]) > 0.95
    assert abs(model.target_mean_[0] - y[:200].mean()) < 1e-9
    assert model.predict(x[200:]).dtype == np.float64


def test_multivariate_sequences_and_several_targets():
    x, _ = sign_task(count=120, features=3)
    y = np.stack([x.sum(axis=(1, 2)), x[:, -1, 0]], axis=1)
    model = SequenceRegressor(**FAST, random_state=0).fit(x, y)
    assert model.predict(x).shape == (120, 2)
    assert (model.n_features_in_, model.input_size_, model.n_outputs_) == (12, 3, 2)


def test_validation_fraction_and_patience_stop_early_with_the_best_weights():
    x, y = sign_task(count=100)
    model = SequenceClassifier(**FAST, validation_fraction=0.25, patience=1, random_state=0)
    model.set_params(epochs=40, lr=0.2)  # a rate too high: the validation loss soon stops falling
    history = model.fit(x, y).history_
    assert "val_loss" in history.history
    assert history.stopped_early and model.n_iter_ < 40


# ----------------------------------------------------------------------- inputs


def test_univariate_2d_and_3d_input_are_the_same():
    x, y = sign_task(count=60)
    flat = x[:, :, 0]
    first = SequenceClassifier(**FAST, random_state=3).fit(flat, y)
    second = SequenceClassifier(**FAST, random_state=3).fit(x, y)
    assert np.array_equal(first.predict_proba(flat), second.predict_proba(x))
    assert np.array_equal(first.predict_proba(flat), first.predict_proba(x))
    assert first.n_features_in_ == second.n_features_in_ == 12


def test_predict_proba_rows_sum_to_one_and_agree_with_predict():
    x, y = sign_task(count=90)
    y = np.array(["a", "b", "c"])[np.arange(90) % 3]
    model = SequenceClassifier(**FAST, random_state=0).fit(x, y)
    proba = model.predict_proba(x)
    assert proba.shape == (90, 3) and proba.dtype == np.float64
    assert np.allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.array_equal(model.classes_[proba.argmax(axis=1)], model.predict(x))
    assert np.allclose(np.exp(model.predict_log_proba(x)), proba)


@pytest.mark.parametrize(
    "labels", [["no", "yes"], np.array(["no", "yes"], dtype=object), [-1, 1], [1.0, 3.0], [False, True]], ids=str
)
def test_labels_of_any_type_come_back_as_given(labels, tmp_path):
    x, y = sign_task(count=40)
    y = np.asarray(labels)[(y == "up").astype(int)]
    model = SequenceClassifier(**FAST, random_state=0).fit(x, y)
    assert model.classes_.dtype == y.dtype and set(model.predict(x)) <= set(y)
    model.save(tmp_path / "model.npz")
    loaded = SequenceClassifier.load(tmp_path / "model.npz")
    assert loaded.classes_.dtype == model.classes_.dtype and np.array_equal(loaded.classes_, model.classes_)
    assert np.array_equal(loaded.predict(x), model.predict(x))


def test_the_same_random_state_gives_the_same_fit():
    x, y = sum_task(count=80)
    first = SequenceRegressor(**FAST, random_state=5).fit(x, y).predict(x)
    assert np.array_equal(first, SequenceRegressor(**FAST, random_state=5).fit(x, y).predict(x))
    assert not np.array_equal(first, SequenceRegressor(**FAST, random_state=6).fit(x, y).predict(x))
    generator = np.random.RandomState(5)
    assert SequenceRegressor(**FAST, random_state=generator).fit(x, y).predict(x).shape == (80,)


@pytest.mark.parametrize(
    "fit_x, predict_x, message",
    [
        (np.zeros((8, 5, 2, 1)), None, r"expected X of shape \(N, T\) or \(N, T, F\).*got \(8, 5, 2, 1\)"),
        (np.zeros((8, 5, 0)), None, r"T, F >= 1, got \(8, 5, 0\)"),
        (np.zeros((8, 5, 2)), np.zeros((3, 5, 3)), "X has 3 features per step, but SequenceClassifier is expecting 2"),
        (np.zeros((8, 5, 2)), np.zeros((3, 5)), "X has 1 features per step, but SequenceClassifier is expecting 2"),
        (np.zeros((8, 5)), np.zeros((3, 6)), "X has 6 features, but SequenceClassifier is expecting 5"),
        (np.full((8, 5), np.nan), None, "NaN"),
        (np.zeros((8, 5)), np.full((3, 5), np.inf), "infinity"),
        (np.zeros(8), None, "Expected 2D array"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_shapes(fit_x, predict_x, message):
    model = SequenceClassifier(**FAST)
    y = np.arange(8) % 2
    if predict_x is None:
        with pytest.raises(ValueError, match=message):
            model.fit(fit_x, y)
    else:
        model.fit(fit_x, y)
        with pytest.raises(ValueError, match=message):
            model.predict(predict_x)


@pytest.mark.parametrize(
    "params, error, message",
    [
        (dict(cell="lstmx"), ValueError, "expected cell as one of 'lstm', 'gru', 'rnn', got 'lstmx'"),
        (dict(hidden_size=2.5), TypeError, "expected hidden_size as a positive int"),
        (dict(num_layers=0), ValueError, "expected num_layers >= 1"),
        (dict(bidirectional="no"), TypeError, "expected bidirectional as a bool"),
        (dict(dropout=1.0), ValueError, r"expected dropout in \[0, 1\)"),
        (dict(lr=0.0), ValueError, "expected lr > 0"),
        (dict(lr=float("nan")), ValueError, "expected lr as a finite number"),
        (dict(clip_norm=-1.0), ValueError, "expected clip_norm > 0 or None"),
        (dict(validation_fraction=1.0), ValueError, r"expected validation_fraction in \[0, 1\)"),
        (dict(validation_fraction=0.01), ValueError, r"validation_fraction=0.01 of 8 samples holds out 0"),
        (dict(patience=3), ValueError, "patience watches the validation loss: it needs validation_fraction > 0"),
        (dict(random_state="seed"), ValueError, "cannot be used to seed"),
        (dict(epochs=0), ValueError, "expected epochs >= 1"),
    ],
)
def test_bad_parameters_are_refused_by_fit_not_by_set_params(params, error, message):
    model = SequenceClassifier(**FAST).set_params(**params)  # scikit-learn: init and set_params never check
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(error, match=message):
        model.fit(np.zeros((8, 5)), np.arange(8) % 2)
    assert not hasattr(model, "model_")


def test_not_fitted_estimators_refuse_to_predict_and_save(tmp_path):
    for model in (SequenceRegressor(), SequenceClassifier()):
        with pytest.raises(NotFittedError):
            model.predict(np.zeros((2, 3)))
        with pytest.raises(NotFittedError):
            model.save(tmp_path / "model.npz")
    with pytest.raises(NotFittedError):
        SequenceClassifier().predict_proba(np.zeros((2, 3)))


# ----------------------------------------------------------------------- scikit-learn's tools


def test_a_pipeline_scales_univariate_sequences_before_the_regressor():
    x, y = sum_task(count=200)
    pipeline = make_pipeline(StandardScaler(), SequenceRegressor(**LEARN, random_state=0))
    pipeline.fit(10 * x[:150] + 3, y[:150])
    assert pipeline.score(10 * x[150:] + 3, y[150:]) > 0.9


def test_grid_search_picks_among_cells_and_sizes():
    x, y = sign_task(count=120)
    search = GridSearchCV(
        SequenceClassifier(**FAST, random_state=0), {"cell": ["lstm", "gru", "rnn"], "hidden_size": [4, 8]}, cv=2
    )
    search.fit(x, y)
    assert search.best_params_["cell"] in ("lstm", "gru", "rnn")
    assert len(search.cv_results_["mean_test_score"]) == 6
    assert search.best_estimator_.predict(x).shape == (120,)


# ----------------------------------------------------------------------- pickles and files


def fitted_pair():
    x, y = sign_task(count=60)
    classifier = SequenceClassifier(**FAST, bidirectional=True, num_layers=2, random_state=0).fit(x, y)
    regressor = SequenceRegressor(**FAST, cell="gru", random_state=0).fit(x, np.stack([x.sum(axis=(1, 2))] * 2, axis=1))
    return x, classifier, regressor


def outputs(model, x):
    return model.predict_proba(x) if hasattr(model, "predict_proba") else model.predict(x)


def test_pickles_and_deep_copies_predict_bit_for_bit():
    x, *models = fitted_pair()
    for model in models:
        for again in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
            assert np.array_equal(outputs(again, x), outputs(model, x))
            assert again.get_params() == model.get_params()
            assert again.model_ is not model.model_


def test_model_files_give_the_estimator_back_bit_for_bit(tmp_path):
    x, *models = fitted_pair()
    for model in models:
        path = tmp_path / f"{type(model).__name__}.npz"
        model.save(path)
        loaded = type(model).load(path)
        assert np.array_equal(outputs(loaded, x), outputs(model, x))
        assert loaded.get_params() == model.get_params()
        assert (loaded.n_features_in_, loaded.input_size_, loaded.n_iter_) == (12, 1, 3)
        assert loaded.history_ is None
        # the file is an ordinary model file: lstmcore.load reads it, its metadata names the estimator
        plain = lstmcore.load(path)
        assert plain.metadata["lstmcore.sklearn"]["estimator"] == type(model).__name__
        assert np.array_equal(plain.predict(x), model.model_.predict(x))


def test_a_random_state_instance_is_saved_as_none(tmp_path):
    x, y = sign_task(count=40)
    model = SequenceClassifier(**FAST, random_state=np.random.RandomState(0)).fit(x, y)
    model.save(tmp_path / "model.npz")
    assert SequenceClassifier.load(tmp_path / "model.npz").random_state is None


def edited(path, tmp_path, change):
    model = lstmcore.load(path)
    change(model.metadata["lstmcore.sklearn"])
    target = tmp_path / "edited.npz"
    model.save(target)
    return target


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda entry: entry.update(estimator="SequenceRegressor"), "expected a model saved by SequenceClassifier.save"),
        (lambda entry: entry.update(version=2), r"\['version'\] as 1"),
        (lambda entry: entry["params"].pop("lr"), r"\['params'\] as an object of the parameters"),
        (lambda entry: entry["params"].update(cell="gru"), "expected the layers GRU, LastStep, Dense"),
        (lambda entry: entry["params"].update(hidden_size=9), "the layers do not match the metadata"),
        (lambda entry: entry["params"].update(lr=-1), r"parameters that SequenceClassifier accepts \(expected lr > 0"),
        (lambda entry: entry.update(input_size=2), "the layers do not match the metadata"),
        (lambda entry: entry.update(classes=["a"]), r"\['classes'\] as a list of 2 labels"),
        (lambda entry: entry.update(classes=["a", "a"]), r"\['classes'\] as 2 distinct labels"),
        (lambda entry: entry.update(classes_dtype="V8"), r"\['classes_dtype'\] as a NumPy dtype"),
        (lambda entry: entry.update(classes_dtype="O", classes=[1, "a"]), r"\['classes'\] as labels of dtype object"),
        (lambda entry: entry.update(classes=[1, 2]), r"\['classes'\] as strings, as classes_dtype says"),
        (lambda entry: entry.update(n_features_in=0), r"\['n_features_in'\] as an integer >= 1"),
        (lambda entry: entry.update(feature_names_in=["a"]), r"\['feature_names_in'\] as a list of 12 strings"),
    ],
)
def test_edited_or_foreign_files_are_model_file_errors(change, message, tmp_path):
    x, y = sign_task(count=40)
    SequenceClassifier(**FAST, random_state=0).fit(x, y).save(tmp_path / "model.npz")
    with pytest.raises(lstmcore.ModelFileError, match=message):
        SequenceClassifier.load(edited(tmp_path / "model.npz", tmp_path, change))


def test_string_classes_take_the_width_of_their_labels_not_of_the_file(tmp_path):
    x, y = sign_task(count=40)
    SequenceClassifier(**FAST, random_state=0).fit(x, y).save(tmp_path / "model.npz")
    path = edited(tmp_path / "model.npz", tmp_path, lambda entry: entry.update(classes_dtype="<U200000000"))
    assert SequenceClassifier.load(path).classes_.dtype == np.dtype("<U4")  # "down", "up"


def test_a_plain_model_file_is_not_an_estimator(tmp_path):
    lstmcore.Sequential([lstmcore.LSTM(1, 4), lstmcore.LastStep(), lstmcore.Dense(4, 1)]).save(tmp_path / "plain.npz")
    with pytest.raises(lstmcore.ModelFileError, match=r"expected a model saved by SequenceRegressor\.save, got no estimator"):
        SequenceRegressor.load(tmp_path / "plain.npz")


def test_regressor_targets_in_files_are_checked(tmp_path):
    x, _ = sign_task(count=40)
    SequenceRegressor(**FAST, random_state=0).fit(x, x.sum(axis=(1, 2))).save(tmp_path / "model.npz")
    for change, message in [
        (lambda entry: entry.update(target_scale=[0.0]), r"\['target_scale'\] as a list of 1 finite numbers > 0"),
        (lambda entry: entry.update(target_mean=[1.0, 2.0]), r"\['target_mean'\] as a list of 1 finite numbers"),
        (lambda entry: entry.update(target_ndim=3), r"\['target_ndim'\] as 1 or 2"),
    ]:
        with pytest.raises(lstmcore.ModelFileError, match=message):
            SequenceRegressor.load(edited(tmp_path / "model.npz", tmp_path, change))
