"""SequenceRegressor and SequenceClassifier: scikit-learn estimators over a recurrent
layer, the last step of its output and a Dense head, trained by ``Sequential.fit``."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from lstmcore.sklearn import _files
from lstmcore.sklearn._base import SequenceEstimator

_PARAMETERS = """
    Parameters
    ----------
    cell : {"lstm", "gru", "rnn"}, default="lstm"
        The recurrent layer: ``lstmcore.LSTM``, ``GRU`` or ``RNN`` (tanh).
    hidden_size : int, default=32
        Units of each recurrent layer (and direction).
    num_layers : int, default=1
        Stacked recurrent layers.
    bidirectional : bool, default=False
        Both directions, their last steps concatenated.
    dropout : float, default=0.0
        Dropout on the input of each stacked layer after the first (PyTorch's meaning).
    epochs : int, default=50
        Passes over the training data.
    batch_size : int, default=32
        Sequences per gradient step.
    lr : float, default=0.01
        Adam's learning rate.
    clip_norm : float or None, default=1.0
        Limit of the global gradient norm at each step; None does not clip.
    validation_fraction : float, default=0.0
        A random fraction of the training data held out to score each epoch; the
        weights of the epoch with the lowest validation loss are kept.
    patience : int or None, default=None
        Stop after that many epochs without a lower validation loss (needs
        ``validation_fraction > 0``).
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the order of the samples and the validation split: the same
        int gives the same fit.
    verbose : bool or int, default=False
        A progress bar and a line per epoch on stderr.
"""

_INPUT = """
    ``X`` is (N, T, F): N sequences of T steps of F features; (N, T) is N univariate
    sequences, the same as (N, T, 1). Every sequence has the T steps fit saw
    (``n_features_in_`` = T, scikit-learn's count of X's columns) and F features per step
    (``input_size_``). Computed in float32; inputs are not scaled (scale them first, e.g.
    a StandardScaler in a Pipeline on (N, T)).
"""


class SequenceRegressor(RegressorMixin, SequenceEstimator):
    __doc__ = (
        """Regression of sequences: a recurrent layer, its last step, a Dense layer, trained
    on the mean squared error of the standardized targets.
"""
        + _INPUT
        + """
    ``y`` is (N,) or (N, outputs); predictions have its shape, in float64. The targets are
    standardized for training (``target_mean_``, ``target_scale_``) and predictions scaled
    back, so their units do not matter to the learning rate.
"""
        + _PARAMETERS
        + """
    Attributes
    ----------
    model_ : lstmcore.Sequential
        The trained model; its outputs are standardized targets.
    history_ : lstmcore.History
        Per-epoch losses (None after ``load``).
    n_iter_ : int
        Epochs run.
    n_features_in_ : int
        Steps per sequence (T).
    input_size_ : int
        Features per step (F).
    n_outputs_ : int
        Targets per sample.
    target_mean_, target_scale_ : ndarray of shape (n_outputs_,)
        The standardization of the targets.
"""
    )

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any) -> SequenceRegressor:
        params = self._checked_params()
        X, y = validate_data(self, X, y, allow_nd=True, dtype=np.float32, multi_output=True, y_numeric=True)
        x = self._steps(X, reset=True)
        y = np.asarray(y, dtype=np.float64)
        self._y_ndim = y.ndim
        target = y.reshape(len(y), -1)
        self.n_outputs_ = target.shape[1]
        self.target_mean_ = target.mean(axis=0)
        scale = target.std(axis=0)
        self.target_scale_ = np.where(scale > 0, scale, 1.0)  # a constant target: learn zeros
        standardized = ((target - self.target_mean_) / self.target_scale_).astype(np.float32)
        self._train(params, x, standardized, self.n_outputs_, "mse")
        return self

    def predict(self, X: Any) -> np.ndarray:
        prediction = self._outputs(X) * self.target_scale_ + self.target_mean_
        return prediction[:, 0] if self._y_ndim == 1 else prediction

    def _target_entries(self) -> dict[str, Any]:
        return {
            "target_ndim": self._y_ndim,
            "target_mean": self.target_mean_.tolist(),
            "target_scale": self.target_scale_.tolist(),
        }

    def _restore_targets(self, entries: _files.Entries, outputs: int) -> None:
        self._y_ndim = entries.whole_number("target_ndim")
        if self._y_ndim > 2 or (self._y_ndim == 1 and outputs != 1):
            raise entries.refuse("target_ndim", f"1 or 2 (1 only for one output; the model has {outputs})")
        self.n_outputs_ = outputs
        self.target_mean_ = entries.numbers("target_mean", outputs)
        self.target_scale_ = entries.numbers("target_scale", outputs, positive=True)


class SequenceClassifier(ClassifierMixin, SequenceEstimator):
    __doc__ = (
        """Classification of sequences: a recurrent layer, its last step, a Dense layer of
    one logit per class, trained on the softmax cross-entropy.
"""
        + _INPUT
        + """
    ``y`` holds one label per sequence, of any type ``numpy.unique`` sorts (ints,
    strings, ...). ``predict_proba`` is the softmax of the logits, one column per class in
    the order of ``classes_``.
"""
        + _PARAMETERS
        + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels, sorted.
    model_ : lstmcore.Sequential
        The trained model; its outputs are the logits.
    history_ : lstmcore.History
        Per-epoch losses (None after ``load``).
    n_iter_ : int
        Epochs run.
    n_features_in_ : int
        Steps per sequence (T).
    input_size_ : int
        Features per step (F).
"""
    )

    def fit(self, X: Any, y: Any) -> SequenceClassifier:
        params = self._checked_params()
        X, y = validate_data(self, X, y, allow_nd=True, dtype=np.float32)
        check_classification_targets(y)
        x = self._steps(X, reset=True)
        self.classes_, codes = np.unique(y, return_inverse=True)
        # One class is learned too (a single logit; it is always predicted).
        self._train(params, x, codes.reshape(-1).astype(np.int64), len(self.classes_), "cross_entropy")
        return self

    def predict_log_proba(self, X: Any) -> np.ndarray:
        logits = self._outputs(X)
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        # argmax of the probabilities, not of the logits: the two agree even where rounding ties them
        choice = np.argmax(self.predict_proba(X), axis=1)  # first: unfitted, it raises NotFittedError
        return self.classes_[choice]

    def _target_entries(self) -> dict[str, Any]:
        return {"classes": self.classes_.tolist(), "classes_dtype": self.classes_.dtype.str}

    def _restore_targets(self, entries: _files.Entries, outputs: int) -> None:
        self.classes_ = entries.classes(outputs)
