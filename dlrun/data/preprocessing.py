"""Feature and target preprocessing, fitted on training rows only.

A :class:`Preprocessor` is fitted once per training set (one per fold in cross-validation):
scalers, imputers, encoders and target transforms learn their statistics from the rows passed
to :meth:`Preprocessor.fit` and nothing else, so held-out rows never leak into training.
The only thing that may come from all rows is the list of class labels (see ``fit``), which is
metadata, not a statistic. scikit-learn is imported when a preprocessor is fitted, not before."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import pandas as pd

from dlrun.data.columns import (
    is_categorical_dtype,
    labels_from_plain,
    labels_to_plain,
    make_scaler,
    resolve_categorical,
    select_columns,
    sorted_unique,
)
from dlrun.data.task import missing_listing
from dlrun.errors import CorruptFileError, DataError
from dlrun.spec.dotted import suggest
from dlrun.spec.models import PreprocessingSpec

TASKS = ("binary", "multiclass", "regression")


class Preprocessor:
    """Turns features and targets into float32 arrays for Keras, and model outputs back into labels.

    Args:
        spec: The ``preprocessing`` section; task: ``"binary"``, ``"multiclass"`` or ``"regression"``.

    Attributes:
        features_: The fitted ColumnTransformer for tables with categorical columns (else None).
        numeric_pipeline_: The fitted imputer/scaler pipeline of the numeric columns.
        image_scaler_: The fitted scaler for images that end up 2-D (None otherwise).
        target_scaler_: The fitted StandardScaler/MinMaxScaler of a regression target, or None.
        classes_: Sorted original class labels, shape (n_classes,), for classification; None for regression.
        feature_names_in_: The feature columns seen at fit (tabular only).
        numeric_columns_: Columns scaled as numbers; ``categorical_columns_``: columns one-hot encoded.
    """

    def __init__(self, spec: PreprocessingSpec, task: str) -> None:
        if task not in TASKS:
            raise DataError(f"the preprocessor needs a concrete task ({', '.join(TASKS)}), got '{task}'")
        self.spec = spec
        self.task = task
        self.features_: Any = None
        self.numeric_pipeline_: Any = None
        self.image_scaler_: Any = None
        self.target_scaler_: Any = None
        self.classes_: np.ndarray | None = None
        self.feature_names_in_: list[str] = []
        self.numeric_columns_: list[str] = []
        self.categorical_columns_: list[str] = []
        self.target_names_: list[str] = []
        self._input_shape: tuple[int, ...] | None = None
        self._n_outputs: int | None = None
        self._is_image = False

    # ------------------------------------------------------------------ properties
    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one transformed sample: (n_features_out,) for tabular data, (h, w[, c]) or as set for images."""
        if self._input_shape is None:
            raise DataError("the preprocessor is not fitted yet; call fit() on the training rows first")
        return self._input_shape

    @property
    def n_outputs(self) -> int:
        """Number of model output units the encoded target needs."""
        if self._n_outputs is None:
            raise DataError("the preprocessor is not fitted yet; call fit() on the training rows first")
        return self._n_outputs

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` has run."""
        return self._n_outputs is not None

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame | np.ndarray, y: pd.DataFrame, classes: Any = None) -> Preprocessor:
        """Learn every statistic from the given (training) rows only.

        Args:
            X: Training features, a DataFrame (n, n_features) or images (n, h, w[, c]).
            y: Training targets with original values, shape (n, n_targets).
            classes: Optional labels to take the class list from, e.g. the FULL label column, so that
                every fold has the same output size even if a fold lacks a class. Only the set of
                distinct values is used. None: the classes of the training rows.

        Returns:
            self.

        Raises:
            DataError: Non-numeric columns without encoding, NaNs without imputation, a target that
                does not fit the task, or images that cannot be reshaped as asked.
        """
        if len(X) != len(y):
            raise DataError(f"X has {len(X)} rows but y has {len(y)}; they must be the same rows")
        if isinstance(X, np.ndarray) and X.ndim > 2:
            self._fit_images(X)
        else:
            self._fit_tabular(self._as_frame(X))
        self._fit_target(y, classes)
        return self

    def _as_frame(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            return X if all(isinstance(c, str) for c in X.columns) else X.rename(columns=str)
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise DataError(f"tabular features must be 2-D (n_rows, n_features), got shape {arr.shape}")
        return pd.DataFrame(arr, columns=[str(i) for i in range(arr.shape[1])])

    def _fit_tabular(self, X: pd.DataFrame) -> None:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder

        self._is_image = False
        spec = self.spec
        columns = list(X.columns)
        # one flag per column from a plain list: indexing a dtypes Series column by column cost more than the scaler
        is_label = dict(zip(columns, (is_categorical_dtype(dt) for dt in list(X.dtypes))))
        if spec.categorical == "auto":
            categorical = [c for c in columns if is_label[c]]
        elif spec.categorical == "none":
            categorical = []
        else:
            categorical = list(dict.fromkeys(resolve_categorical(ref, columns) for ref in spec.categorical))
        cat_set = set(categorical)
        numeric = [c for c in columns if c not in cat_set]
        non_numeric = [c for c in numeric if is_label[c]]
        if non_numeric:
            examples = ", ".join(f"{c} (e.g. {X[c].dropna().iloc[0]!r})" for c in non_numeric[:5] if X[c].notna().any())
            raise DataError(
                f"non-numeric feature column(s) {', '.join(non_numeric)} cannot be scaled as numbers"
                f"{': ' + examples if examples else ''}; set preprocessing.categorical: auto (or list them) to "
                "one-hot encode them, or drop them with data.drop"
            )
        # all-numeric tables are scaled from one float matrix, also used to look for NaN
        try:
            values = None if categorical else select_columns(X, numeric).to_numpy(dtype=np.float64)
        except ValueError as exc:
            raise DataError(f"could not fit the feature preprocessing: {exc}") from None
        if spec.impute == "none" and (values is None or np.isnan(values).any()):
            self._check_no_nans(X, "training rows")

        transformers: list[tuple[str, Any, list[str]]] = []
        self.numeric_pipeline_ = None
        if numeric:
            steps: list[tuple[str, Any]] = []
            if spec.impute != "none":
                steps.append(("impute", SimpleImputer(strategy=spec.impute)))
            steps.append(("scale", make_scaler(spec.scaling)))
            self.numeric_pipeline_ = Pipeline(steps)
            transformers.append(("num", self.numeric_pipeline_, numeric))
        self.feature_names_in_ = columns
        self.numeric_columns_ = numeric
        self.categorical_columns_ = categorical
        if values is not None and self.numeric_pipeline_ is not None:
            # All-numeric tables skip the ColumnTransformer: its per-call pandas overhead dominated
            # cross-validation runs of hundreds of small folds.
            self.features_ = None
            try:
                out = self.numeric_pipeline_.fit_transform(values)
            except ValueError as exc:
                raise DataError(f"could not fit the feature preprocessing: {exc}") from None
            self._input_shape = (int(np.asarray(out).shape[1]),)
            return
        if categorical:
            cat_steps: list[tuple[str, Any]] = []
            if spec.impute != "none":
                cat_steps.append(("impute", SimpleImputer(strategy="most_frequent")))
            cat_steps.append(("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)))
            transformers.append(("cat", Pipeline(cat_steps), categorical))
        features = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
        try:
            out = features.fit_transform(self._prepare(X, categorical))
        except ValueError as exc:
            raise DataError(f"could not fit the feature preprocessing: {exc}") from None
        self.features_ = features
        self.feature_names_in_ = columns
        self.numeric_columns_ = numeric
        self.categorical_columns_ = categorical
        self._input_shape = (int(np.asarray(out).shape[1]),)

    @staticmethod
    def _prepare(X: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
        # Encoders and imputers handle plain object columns most reliably (category/str dtypes vary by version).
        if not categorical:
            return X
        X = X.copy()
        for c in categorical:
            if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]):
                X[c] = X[c].astype(object).where(X[c].notna(), np.nan)
        return X

    def _check_no_nans(self, X: pd.DataFrame, where: str) -> None:
        listing = missing_listing(X)
        if listing:
            raise DataError(
                f"missing values (NaN) in the {where}: {listing}; set preprocessing.impute: median (or mean, "
                "most_frequent) to fill them from the training rows, or drop those columns with data.drop"
            )

    def _image_array(self, X: np.ndarray) -> np.ndarray:
        """Rescale, flatten and reshape images (n, h, w[, c]) as the spec asks; no fitted statistics."""
        img = self.spec.image
        out = np.asarray(X, dtype=np.float32)
        if img.rescale is not None:
            out = out * np.float32(img.rescale)
        if img.flatten:
            out = out.reshape(len(out), -1)
        if img.reshape is not None:
            per_sample = int(np.prod(out.shape[1:]))
            target = int(np.prod(img.reshape))
            if per_sample != target:
                raise DataError(
                    f"cannot reshape samples of shape {tuple(out.shape[1:])} ({per_sample} values) to "
                    f"{list(img.reshape)} ({target} values); fix preprocessing.image.reshape so the sizes match"
                )
            out = out.reshape(len(out), *img.reshape)
        return out

    def _fit_images(self, X: np.ndarray) -> None:
        self._is_image = True
        out = self._image_array(X)
        self.image_scaler_ = None
        if out.ndim == 2 and self.spec.scaling != "none":
            self.image_scaler_ = make_scaler(self.spec.scaling)
            self.image_scaler_.fit(out)
        self._input_shape = tuple(int(d) for d in out.shape[1:])

    def _fit_target(self, y: pd.DataFrame, classes: Any) -> None:
        from sklearn.preprocessing import MinMaxScaler, StandardScaler

        if not isinstance(y, pd.DataFrame):
            y = pd.DataFrame(np.asarray(y).reshape(len(y), -1))
        self.target_names_ = [str(c) for c in y.columns]
        if y.isna().to_numpy().any():
            raise DataError(f"the target {', '.join(self.target_names_)} has missing values; remove those rows")
        if self.task == "regression":
            self.classes_ = None
            values = self._regression_values(y)
            self._check_log(values)
            transform = self.spec.target.transform
            self.target_scaler_ = None
            if transform == "standard":
                self.target_scaler_ = StandardScaler().fit(values)
            elif transform == "minmax":
                self.target_scaler_ = MinMaxScaler().fit(values)
            self._n_outputs = values.shape[1]
            return
        if y.shape[1] != 1:
            raise DataError(
                f"task '{self.task}' needs one target column, got {y.shape[1]} ({', '.join(self.target_names_)})"
            )
        source = y.iloc[:, 0] if classes is None else pd.Series(np.asarray(classes).reshape(-1))
        self.classes_ = sorted_unique(source.dropna())
        n = len(self.classes_)
        if self.task == "binary" and n != 2:
            raise DataError(
                f"task 'binary' needs exactly 2 classes, got {n} ({', '.join(map(repr, self.classes_.tolist()[:6]))}); "
                "set data.task: multiclass or auto"
            )
        if self.task == "multiclass" and n < 2:
            raise DataError(f"task 'multiclass' needs at least 2 classes, got {n}; choose another data.target")
        if self.task == "binary":
            self._n_outputs = 2 if self.spec.target.onehot else 1
        else:
            self._n_outputs = n

    def _regression_values(self, y: pd.DataFrame) -> np.ndarray:
        bad = [str(c) for c in y.columns if not pd.api.types.is_numeric_dtype(y[c]) or pd.api.types.is_bool_dtype(y[c])]
        if bad:
            raise DataError(
                f"task 'regression' needs numeric targets, but {', '.join(bad)} holds non-numeric values; "
                "set data.task: binary/multiclass or auto"
            )
        return y.to_numpy(dtype=np.float64)

    def _check_log(self, values: np.ndarray) -> None:
        if self.spec.target.transform == "log" and np.any(values <= -1):
            raise DataError(
                f"preprocessing.target.transform: log needs every target value > -1 (it uses log1p), but the "
                f"smallest is {float(values.min())}; use transform: standard or none"
            )

    # ------------------------------------------------------------------ transform
    def transform_x(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Apply the fitted feature preprocessing.

        Args:
            X: Features in the training layout: a DataFrame (n, n_features) (extra columns are
                ignored) or images (n, h, w[, c]).

        Returns:
            float32 array of shape (n, n_features_out) for tabular data or (n, *input_shape) for images.

        Raises:
            DataError: Not fitted, a training column is missing, or NaNs without imputation.
        """
        if not self.is_fitted:
            raise DataError("the preprocessor is not fitted yet; call fit() on the training rows first")
        if self._is_image:
            if not isinstance(X, np.ndarray) or X.ndim < 3:
                raise DataError(f"expected images of shape (n, h, w[, c]), got {type(X).__name__}")
            out = self._image_array(X)
            if self.image_scaler_ is not None:
                out = self.image_scaler_.transform(out)
            return np.asarray(out, dtype=np.float32)
        frame = self._as_frame(X)
        missing = [c for c in self.feature_names_in_ if c not in frame.columns]
        if missing:
            raise DataError(
                f"feature column(s) {', '.join(missing)} are missing{suggest(missing[0], list(frame.columns))}; "
                f"the model was trained on: {', '.join(self.feature_names_in_)}"
            )
        frame = select_columns(frame, self.feature_names_in_)
        if self.features_ is None and self.numeric_pipeline_ is not None:
            values = frame.to_numpy(dtype=np.float64)
            if self.spec.impute == "none" and np.isnan(values).any():
                self._check_no_nans(frame, "rows to transform")
            return np.asarray(self.numeric_pipeline_.transform(values), dtype=np.float32)
        if self.spec.impute == "none":
            # scikit-learn scalers pass NaN through silently, which would turn into NaN predictions
            self._check_no_nans(frame, "rows to transform")
        assert self.features_ is not None
        out = self.features_.transform(self._prepare(frame, self.categorical_columns_))
        return np.asarray(out, dtype=np.float32)

    def transform_y(self, y: pd.DataFrame) -> np.ndarray:
        """Encode targets for training.

        Args:
            y: Original target values, shape (n, n_targets).

        Returns:
            float32: binary (n, 1) 0/1, or (n, 2) one-hot with ``target.onehot``; multiclass (n,)
            integer codes (for sparse categorical crossentropy), or (n, C) one-hot; regression
            (n, k) after ``target.transform``.

        Raises:
            DataError: Not fitted, an unknown label, or a value the target transform cannot take.
        """
        if not self.is_fitted:
            raise DataError("the preprocessor is not fitted yet; call fit() on the training rows first")
        if not isinstance(y, pd.DataFrame):
            y = pd.DataFrame(np.asarray(y).reshape(len(y), -1))
        if self.task == "regression":
            values = self._regression_values(y)
            if values.shape[1] != self.n_outputs:
                raise DataError(f"expected {self.n_outputs} target column(s), got {values.shape[1]}")
            transform = self.spec.target.transform
            if transform == "log":
                self._check_log(values)
                values = np.log1p(values)
            elif self.target_scaler_ is not None:
                values = self.target_scaler_.transform(values)
            return np.asarray(values, dtype=np.float32)
        assert self.classes_ is not None
        codes = pd.Index(self.classes_).get_indexer(y.iloc[:, 0].to_numpy())
        if np.any(codes < 0):
            unknown = pd.unique(y.iloc[:, 0].to_numpy()[codes < 0])
            raise DataError(
                f"label(s) {', '.join(map(repr, unknown[:6].tolist()))} are not among the known classes "
                f"{', '.join(map(repr, self.classes_.tolist()))}; pass the full label column as fit(classes=...)"
            )
        n_classes = len(self.classes_)
        if self.spec.target.onehot:
            return np.eye(n_classes, dtype=np.float32)[codes]
        if self.task == "binary":
            return codes.astype(np.float32).reshape(-1, 1)
        return codes.astype(np.float32)

    # ------------------------------------------------------------------ decode
    def decode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Turn raw model outputs into predictions in the original form and units.

        Args:
            raw: Model outputs, shape (n, n_outputs) (or (n,) for one output).

        Returns:
            ``(predictions, probabilities)``: predictions have shape (n,) for one target (original
            labels for classification) or (n, k) for multi-output regression; probabilities have
            shape (n, n_classes) for classification and are None for regression.

        Raises:
            DataError: The number of model outputs does not fit the target.
        """
        if not self.is_fitted:
            raise DataError("the preprocessor is not fitted yet; call fit() on the training rows first")
        out = np.asarray(raw, dtype=np.float64)
        if out.ndim == 1:
            out = out.reshape(-1, 1)
        if out.ndim != 2:
            raise DataError(f"expected model outputs of shape (n, n_outputs), got {out.shape}")
        if self.task == "regression":
            if out.shape[1] != self.n_outputs:
                raise DataError(self._mismatch(out.shape[1], f"{self.n_outputs} target column(s)", "linear"))
            if self.spec.target.transform == "log":
                out = np.expm1(out)
            elif self.target_scaler_ is not None:
                out = self.target_scaler_.inverse_transform(out)
            return (out[:, 0] if out.shape[1] == 1 else out), None
        assert self.classes_ is not None
        n_classes = len(self.classes_)
        if self.task == "binary" and out.shape[1] == 1:
            p = np.clip(out[:, 0], 0.0, 1.0)
            proba = np.column_stack([1.0 - p, p])
        elif out.shape[1] == n_classes:
            proba = out  # softmax outputs, one column per class in classes_ order
        else:
            hint = "1 unit with sigmoid (or 2 with softmax)" if self.task == "binary" else f"{n_classes} units"
            raise DataError(self._mismatch(out.shape[1], f"{n_classes} classes", "softmax", hint))
        return self.classes_[np.argmax(proba, axis=1)], proba

    def _mismatch(self, got: int, need: str, activation: str, units: str | None = None) -> str:
        units = units or str(self.n_outputs) + " units"
        return (
            f"the model outputs {got} value(s) per row but the {self.task} target has {need}; "
            f"end the model with Dense(units: {units}, activation: {activation}) (model/target mismatch)"
        )


# ----------------------------------------------------------------------------- saving without pickle
# Every type a fitted Preprocessor's scikit-learn objects contain that skops does not trust by
# itself. A file asking for any other type is refused: loading it could run code.
TRUSTED_SKOPS_TYPES: tuple[str, ...] = ("numpy.dtype",)
_ESTIMATORS = ("features_", "numeric_pipeline_", "image_scaler_", "target_scaler_")


def preprocessor_to_json(pre: Preprocessor) -> dict[str, Any]:
    """A fitted :class:`Preprocessor` as JSON data: plain fields, and its scikit-learn objects as
    base64 ``skops.io`` bytes (no pickle anywhere)."""
    import skops.io as sio

    if not pre.is_fitted:
        raise DataError("the preprocessor is not fitted yet; call fit() on the training rows first")
    estimators = {k: getattr(pre, k) for k in _ESTIMATORS}
    return {
        "format": "dlrun-preprocessor/1",
        "spec": pre.spec.model_dump(mode="json"),
        "task": pre.task,
        "classes": labels_to_plain(pre.classes_),
        "feature_names_in": list(pre.feature_names_in_),
        "numeric_columns": list(pre.numeric_columns_),
        "categorical_columns": list(pre.categorical_columns_),
        "target_names": list(pre.target_names_),
        "input_shape": list(pre.input_shape),
        "n_outputs": int(pre.n_outputs),
        "is_image": bool(pre._is_image),
        "estimators_skops": base64.b64encode(sio.dumps(estimators)).decode("ascii"),
    }


def preprocessor_from_json(d: dict[str, Any], source: Any = "preprocessor") -> Preprocessor:
    """Inverse of :func:`preprocessor_to_json`; refuses any type outside :data:`TRUSTED_SKOPS_TYPES`.

    Raises:
        CorruptFileError: The data is malformed or asks for an untrusted type (``source`` is named).
    """
    import skops.io as sio

    try:
        blob = base64.b64decode(str(d["estimators_skops"]).encode("ascii"), validate=True)
        untrusted = sio.get_untrusted_types(data=blob)
        refused = sorted(set(untrusted) - set(TRUSTED_SKOPS_TYPES))
        if refused:
            raise CorruptFileError(
                source, f"asks to load type(s) dlrun does not trust: {', '.join(refused[:5])}; refused, nothing loaded"
            )
        estimators = sio.loads(blob, trusted=list(untrusted))
        pre = Preprocessor(PreprocessingSpec.model_validate(d["spec"]), str(d["task"]))
        for k in _ESTIMATORS:
            setattr(pre, k, estimators.get(k))
        pre.classes_ = labels_from_plain(d.get("classes"))
        pre.feature_names_in_ = [str(c) for c in d["feature_names_in"]]
        pre.numeric_columns_ = [str(c) for c in d["numeric_columns"]]
        pre.categorical_columns_ = [str(c) for c in d["categorical_columns"]]
        pre.target_names_ = [str(c) for c in d["target_names"]]
        pre._input_shape = tuple(int(v) for v in d["input_shape"])
        pre._n_outputs = int(d["n_outputs"])
        pre._is_image = bool(d["is_image"])
    except CorruptFileError:
        raise
    except (KeyError, TypeError, ValueError, binascii.Error, OSError) as exc:
        raise CorruptFileError(source, f"is not a dlrun preprocessing file ({type(exc).__name__}: {exc})") from None
    return pre
