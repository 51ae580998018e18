"""What SequenceRegressor and SequenceClassifier share: their parameters and the checks of
them, the input checks, the model they build and train, pickling, and model files.

The model is always ``Sequential([LSTM | GRU | RNN, LastStep(), Dense])`` trained by
``Sequential.fit``. The two estimators differ only in the head's width, the loss, and how
they encode targets and decode outputs (``_estimators.py``); what a model file must hold
for them is checked in ``_files.py``.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, TypeVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from lstmcore._util.checks import check_bool, check_finite_real, check_positive_int, shape_text
from lstmcore.nn import Dense, History, LastStep, Sequential, load
from lstmcore.nn.model_files._header import LAYER_TYPES
from lstmcore.nn.optim import Adam
from lstmcore.rnn import GRU, LSTM, RNN
from lstmcore.sklearn import _files

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}

_Estimator = TypeVar("_Estimator", bound="SequenceEstimator")


class SequenceEstimator(BaseEstimator):
    """The parameters, training, pickling and files of the sequence estimators (the
    parameters are described in docs/sklearn.md and the subclasses' docstrings)."""

    # Every argument is stored unchanged and checked in fit: scikit-learn's clone and
    # set_params must never fail, and a grid search may set any of them later.
    def __init__(
        self,
        cell: str = "lstm",
        hidden_size: int = 32,
        num_layers: int = 1,
        *,
        bidirectional: bool = False,
        dropout: float = 0.0,
        epochs: int = 50,
        batch_size: int = 32,
        lr: float = 0.01,
        clip_norm: float | None = 1.0,
        validation_fraction: float = 0.0,
        patience: int | None = None,
        random_state: Any = None,
        verbose: bool | int = False,
    ) -> None:
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.clip_norm = clip_norm
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    # ----------------------------------------------------------------- parameters

    def _checked_params(self) -> dict[str, Any]:
        """The parameters as fit uses them, checked, as JSON values: what the model file
        keeps (a RandomState instance is kept as None: it has no JSON form)."""
        if not isinstance(self.cell, str) or self.cell not in CELLS:
            raise ValueError(f"expected cell as one of {', '.join(map(repr, CELLS))}, got {self.cell!r}")
        dropout = check_finite_real(self.dropout, "dropout")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"expected dropout in [0, 1), got {dropout}")
        lr = check_finite_real(self.lr, "lr")
        if lr <= 0:
            raise ValueError(f"expected lr > 0, got {lr}")
        clip_norm = None if self.clip_norm is None else check_finite_real(self.clip_norm, "clip_norm")
        if clip_norm is not None and clip_norm <= 0:
            raise ValueError(f"expected clip_norm > 0 or None, got {clip_norm}")
        fraction = check_finite_real(self.validation_fraction, "validation_fraction")
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"expected validation_fraction in [0, 1), got {fraction}")
        patience = None if self.patience is None else check_positive_int(self.patience, "patience")
        if patience is not None and not fraction:
            raise ValueError("patience watches the validation loss: it needs validation_fraction > 0")
        check_random_state(self.random_state)  # the check: None, an int or a RandomState
        random_state = self.random_state
        if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
            random_state = int(random_state)
        elif random_state is not None:
            random_state = None
        if isinstance(self.verbose, bool) or not isinstance(self.verbose, numbers.Integral):
            verbose = check_bool(self.verbose, "verbose")
        else:
            verbose = int(self.verbose)
        return {
            "cell": self.cell,
            "hidden_size": check_positive_int(self.hidden_size, "hidden_size"),
            "num_layers": check_positive_int(self.num_layers, "num_layers"),
            "bidirectional": check_bool(self.bidirectional, "bidirectional"),
            "dropout": dropout,
            "epochs": check_positive_int(self.epochs, "epochs"),
            "batch_size": check_positive_int(self.batch_size, "batch_size"),
            "lr": lr,
            "clip_norm": clip_norm,
            "validation_fraction": fraction,
            "patience": patience,
            "random_state": random_state,
            "verbose": verbose,
        }

    # ----------------------------------------------------------------- inputs

    def _sequences(self, X: Any, *, reset: bool) -> np.ndarray:
        """X checked by scikit-learn (finite numbers; at fit n_features_in_ := T and the
        feature names, later compared with them) as (N, T, F) float32; (N, T) is N
        univariate sequences."""
        X = validate_data(self, X, reset=reset, allow_nd=True, dtype=np.float32)
        return self._steps(X, reset=reset)

    def _steps(self, X: np.ndarray, *, reset: bool) -> np.ndarray:
        if X.ndim == 2:
            X = X[:, :, None]
        if X.ndim != 3 or 0 in X.shape[1:]:
            raise ValueError(f"expected X of shape (N, T) or (N, T, F) with T, F >= 1, got {shape_text(X.shape)}")
        if reset:
            self.input_size_ = X.shape[2]
        elif X.shape[2] != self.input_size_:
            raise ValueError(
                f"X has {X.shape[2]} features per step, but {type(self).__name__} is expecting "
                f"{self.input_size_} features per step as input"
            )
        return X

    def _outputs(self, X: Any) -> np.ndarray:
        """The model's raw outputs (N, outputs) for X, in float64."""
        check_is_fitted(self)
        return self.model_.predict(self._sequences(X, reset=False)).astype(np.float64)

    # ----------------------------------------------------------------- training

    def _train(self, params: dict[str, Any], x: np.ndarray, target: np.ndarray, outputs: int, loss: str) -> None:
        """Builds and fits ``self.model_`` (the cell layer, LastStep, Dense(outputs)) on
        (x, target); sets model_, history_, n_iter_."""
        fraction = params["validation_fraction"]
        held = round(len(x) * fraction)
        if fraction and not 1 <= held < len(x):
            raise ValueError(
                f"validation_fraction={fraction} of {len(x)} samples holds out {held}; expected between 1 and {len(x) - 1}"
            )
        # Three seeds from one generator: the same random_state gives the same weights,
        # the same shuffling and the same validation split.
        rng = check_random_state(self.random_state)
        layer_seed, head_seed, fit_seed = (int(seed) for seed in rng.randint(np.iinfo(np.int32).max, size=3))
        recurrent = CELLS[params["cell"]](
            x.shape[2],
            params["hidden_size"],
            params["num_layers"],
            bidirectional=params["bidirectional"],
            dropout=params["dropout"],
            seed=layer_seed,
        )
        width = params["hidden_size"] * (2 if params["bidirectional"] else 1)
        model = Sequential([recurrent, LastStep(), Dense(width, outputs, seed=head_seed)])
        history = model.fit(
            x,
            target,
            loss=loss,
            optimizer=Adam(model.params, lr=params["lr"]),
            epochs=params["epochs"],
            batch_size=params["batch_size"],
            validation_split=fraction,
            patience=params["patience"],
            clip_norm=params["clip_norm"],
            seed=fit_seed,
            verbose=bool(params["verbose"]),
        )
        self.model_ = model
        self.history_: History | None = history
        self.n_iter_ = history.epochs
        model.metadata = {_files.KEY: _files.describe(self, params)}

    def _target_entries(self) -> dict[str, Any]:
        """The fitted attributes of the targets, as JSON values for the model file."""
        raise NotImplementedError

    def _restore_targets(self, entries: _files.Entries, outputs: int) -> None:
        """Sets the fitted attributes of the targets from a model file's entries."""
        raise NotImplementedError

    # ----------------------------------------------------------------- pickling

    # A Sequential holds locks and caches that do not pickle; its layer configurations and
    # weights do, and rebuild it exactly (as a model file does, without the file).
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        model = state.pop("model_", None)
        if model is not None:
            state["_model_state"] = {
                "config": model.get_config(),
                "params": {name: np.array(value) for name, value in model.params.items()},
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        model_state = state.pop("_model_state", None)
        if model_state is not None:
            config = model_state["config"]
            layers = [LAYER_TYPES[entry["type"]](**entry["config"]) for entry in config["layers"]]
            model = Sequential(layers, metadata=config["metadata"])
            for name, value in model_state["params"].items():
                model.params[name] = value  # a copy: a read-only memory map stays unwritten
            state["model_"] = model
        super().__setstate__(state)

    # ----------------------------------------------------------------- model files

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted model to ``path``: one lstmcore model file whose metadata holds
        the parameters and fitted attributes (``est.model_.save(path)`` writes the same);
        ``type(est).load(path)`` gives the estimator back."""
        check_is_fitted(self)
        self.model_.save(path)

    @classmethod
    def load(cls: type[_Estimator], path: str | os.PathLike[str]) -> _Estimator:
        """The fitted estimator saved to ``path`` by ``save``. A file that is not a model
        file, or a model file of another estimator, or whose metadata does not match its
        layers, raises ``lstmcore.ModelFileError``."""
        model = load(path)
        entries = _files.Entries(model, path, cls.__name__)
        estimator = cls(**entries.params(cls._get_param_names()))
        try:
            params = estimator._checked_params()
        except (TypeError, ValueError) as error:
            raise entries.refuse("params", f"parameters that {cls.__name__} accepts ({error})") from None
        estimator.input_size_ = entries.whole_number("input_size")
        estimator.n_features_in_ = entries.whole_number("n_features_in")
        names = entries.feature_names(estimator.n_features_in_)
        if names is not None:
            estimator.feature_names_in_ = np.asarray(names, dtype=object)
        outputs = entries.check_layers(CELLS[params["cell"]], params, estimator.input_size_)
        estimator._restore_targets(entries, outputs)
        estimator.model_ = model
        estimator.n_iter_ = entries.whole_number("n_iter")
        estimator.history_ = None  # per-epoch values are not kept in the file
        return estimator
