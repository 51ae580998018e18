"""scikit-learn estimators over lstmcore models: ``SequenceRegressor`` and
``SequenceClassifier`` (docs/sklearn.md).

Needs scikit-learn (``pip install 'lstmcore[sklearn]'``); ``import lstmcore`` does not
import it, only ``import lstmcore.sklearn`` does.
"""

try:
    import sklearn  # the real scikit-learn: imports are absolute, this package is lstmcore.sklearn
except ImportError:
    raise ImportError("lstmcore.sklearn needs scikit-learn: pip install 'lstmcore[sklearn]'") from None

from lstmcore.sklearn._estimators import SequenceClassifier, SequenceRegressor

del sklearn

__all__ = ["SequenceRegressor", "SequenceClassifier"]
