"""Tests of dlrun.data.preprocessing: no leakage, encoding, imputation, errors, target round trips, images."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dlrun.data.preprocessing import Preprocessor
from dlrun.errors import DataError
from dlrun.spec.models import ImageSpec, PreprocessingSpec, TargetSpec

SENTINEL = 1e9


def _spec(**kw: Any) -> PreprocessingSpec:
    return PreprocessingSpec.model_validate(kw)


def _numeric_frame(n: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(5.0, 2.0, n), "b": rng.uniform(0.0, 10.0, n)})


# ----------------------------------------------------------------------------- leakage
@pytest.mark.parametrize("scaling", ["standard", "minmax", "robust", "power"])
def test_scaler_sees_only_training_rows(scaling: str) -> None:
    X = _numeric_frame(40)
    held_out = np.arange(30, 40)
    X.loc[held_out, "a"] = SENTINEL  # any statistic that saw these rows is ruined
    y = pd.DataFrame({"t": np.r_[np.zeros(20), np.ones(20)]})
    train = X.iloc[:30]
    pre = Preprocessor(_spec(scaling=scaling), "binary").fit(train, y.iloc[:30])
    assert pre.numeric_pipeline_ is not None
    scaler = pre.numeric_pipeline_.named_steps["scale"]
    if scaling == "standard":
        np.testing.assert_allclose(scaler.mean_, train.mean().to_numpy())
        assert scaler.mean_[0] != pytest.approx(X["a"].mean())
    elif scaling == "minmax":
        np.testing.assert_allclose(scaler.data_max_, train.max().to_numpy())
    elif scaling == "robust":
        np.testing.assert_allclose(scaler.center_, train.median().to_numpy())
    # whatever the scaler, training rows come out on a sane scale and held-out rows do not
    assert np.abs(pre.transform_x(train)).max() < 10
    assert np.abs(pre.transform_x(X.iloc[held_out])[:, 0]).min() > 1e3


def test_imputer_and_target_scaler_see_only_training_rows() -> None:
    X = pd.DataFrame({"a": [1.0, np.nan, 3.0, SENTINEL, SENTINEL]})
    y = pd.DataFrame({"t": [1.0, 2.0, 3.0, SENTINEL, SENTINEL]})
    pre = Preprocessor(_spec(impute="mean", target={"transform": "standard"}), "regression")
    pre.fit(X.iloc[:3], y.iloc[:3])
    assert pre.numeric_pipeline_ is not None
    imputer = pre.numeric_pipeline_.named_steps["impute"]
    assert imputer.statistics_[0] == pytest.approx(2.0)
    assert pre.target_scaler_ is not None
    assert pre.target_scaler_.mean_[0] == pytest.approx(2.0)


def test_classes_from_full_column_keep_fold_output_size() -> None:
    X = _numeric_frame(6)
    y = pd.DataFrame({"t": ["a", "a", "b", "b", "c", "c"]})
    fold = Preprocessor(_spec(), "multiclass").fit(X.iloc[:4], y.iloc[:4], classes=y["t"])
    assert fold.n_outputs == 3
    assert fold.transform_y(y.iloc[4:]).tolist() == [2.0, 2.0]
    own = Preprocessor(_spec(), "multiclass").fit(X.iloc[:4], y.iloc[:4])
    assert own.n_outputs == 2
    with pytest.raises(DataError, match="not among the known classes"):
        own.transform_y(y.iloc[4:])


# ----------------------------------------------------------------------------- features
def test_categorical_auto_one_hot() -> None:
    X = pd.DataFrame({"n": [1.0, 2.0, 3.0, 4.0], "c": ["red", "blue", "red", "green"], "flag": [True, False] * 2})
    y = pd.DataFrame({"t": [0, 1, 0, 1]})
    pre = Preprocessor(_spec(), "binary").fit(X, y)
    assert pre.categorical_columns_ == ["c", "flag"]
    out = pre.transform_x(X)
    assert out.dtype == np.float32
    assert out.shape == (4, 1 + 3 + 2)
    assert pre.input_shape == (6,)
    # an unseen category encodes as all zeros instead of failing
    new = pre.transform_x(pd.DataFrame({"n": [1.0], "c": ["purple"], "flag": [True]}))
    assert new[0, 1:4].tolist() == [0.0, 0.0, 0.0]


def test_categorical_explicit_list_encodes_integer_codes() -> None:
    X = pd.DataFrame({"n": [1.0, 2.0, 3.0], "code": [7, 8, 9]})
    y = pd.DataFrame({"t": [0, 1, 0]})
    pre = Preprocessor(_spec(categorical=[1]), "binary").fit(X, y)
    assert pre.categorical_columns_ == ["code"]
    assert pre.input_shape == (4,)
    with pytest.raises(DataError, match="did you mean 'code'"):
        Preprocessor(_spec(categorical=["cod"]), "binary").fit(X, y)


def test_non_numeric_column_with_categorical_none() -> None:
    X = pd.DataFrame({"n": [1.0, 2.0], "colour": ["red", "blue"]})
    with pytest.raises(DataError) as err:
        Preprocessor(_spec(categorical="none"), "binary").fit(X, pd.DataFrame({"t": [0, 1]}))
    msg = str(err.value)
    assert "colour" in msg and "preprocessing.categorical: auto" in msg


def test_nan_without_imputation_names_columns_and_counts() -> None:
    X = pd.DataFrame({"ok": [1.0, 2.0, 3.0], "holes": [1.0, np.nan, np.nan]})
    with pytest.raises(DataError) as err:
        Preprocessor(_spec(), "binary").fit(X, pd.DataFrame({"t": [0, 1, 0]}))
    msg = str(err.value)
    assert "holes (2 missing)" in msg and "preprocessing.impute: median" in msg and "ok" not in msg


def test_nan_in_new_rows_without_imputation() -> None:
    X = _numeric_frame(5)
    pre = Preprocessor(_spec(), "regression").fit(X, pd.DataFrame({"t": np.arange(5.0)}))
    bad = X.copy()
    bad.loc[0, "b"] = np.nan
    with pytest.raises(DataError, match=r"b \(1 missing\)"):
        pre.transform_x(bad)


def test_imputation_numeric_and_categorical() -> None:
    X = pd.DataFrame({"n": [1.0, np.nan, 3.0, 5.0], "c": ["x", None, "x", "y"]})
    y = pd.DataFrame({"t": [0, 1, 0, 1]})
    pre = Preprocessor(_spec(impute="median", scaling="none"), "binary").fit(X, y)
    out = pre.transform_x(X)
    assert not np.isnan(out).any()
    assert out[1, 0] == pytest.approx(3.0)  # median of 1, 3, 5
    assert out[1, 1:].tolist() == [1.0, 0.0]  # most frequent category 'x'


def test_missing_feature_column_at_transform() -> None:
    X = _numeric_frame(5)
    pre = Preprocessor(_spec(), "regression").fit(X, pd.DataFrame({"t": np.arange(5.0)}))
    with pytest.raises(DataError, match="feature column\\(s\\) b are missing"):
        pre.transform_x(X[["a"]])
    # extra columns (e.g. the target in a file of the training layout) are ignored
    assert pre.transform_x(X.assign(t=1.0)).shape == (5, 2)


def test_scaling_none_passes_values_through() -> None:
    X = _numeric_frame(5)
    pre = Preprocessor(_spec(scaling="none"), "regression").fit(X, pd.DataFrame({"t": np.arange(5.0)}))
    np.testing.assert_allclose(pre.transform_x(X), X.to_numpy(dtype=np.float32))


def test_not_fitted() -> None:
    pre = Preprocessor(_spec(), "binary")
    with pytest.raises(DataError, match="not fitted"):
        pre.transform_x(_numeric_frame(2))
    with pytest.raises(DataError, match="not fitted"):
        _ = pre.input_shape


# ----------------------------------------------------------------------------- targets
@pytest.mark.parametrize(
    ("labels", "task"),
    [
        (["'-1'", "'1'", "'-1'", "'-1'"], "binary"),
        (["M", "R", "R", "M"], "binary"),
        ([0, 1, 1, 0], "binary"),
        (["setosa", "virginica", "versicolor", "setosa"], "multiclass"),
        ([3, 5, 8, 5], "multiclass"),
    ],
)
@pytest.mark.parametrize("onehot", [False, True])
def test_label_round_trip(labels: list[Any], task: str, onehot: bool) -> None:
    X = _numeric_frame(len(labels))
    y = pd.DataFrame({"t": labels})
    pre = Preprocessor(_spec(target={"onehot": onehot}), task).fit(X, y)
    assert pre.classes_ is not None
    assert pre.classes_.tolist() == sorted(set(labels))
    encoded = pre.transform_y(y)
    assert encoded.dtype == np.float32
    n_classes = len(pre.classes_)
    if onehot:
        assert encoded.shape == (len(labels), n_classes)
        raw = encoded
    elif task == "binary":
        assert encoded.shape == (len(labels), 1)
        assert set(encoded[:, 0].tolist()) <= {0.0, 1.0}
        raw = encoded
    else:
        assert encoded.shape == (len(labels),)
        raw = np.eye(n_classes, dtype=np.float32)[encoded.astype(int)]
    assert pre.n_outputs == raw.shape[1]
    pred, proba = pre.decode(raw)
    assert pred.tolist() == labels
    assert proba is not None and proba.shape == (len(labels), n_classes)


def test_binary_sigmoid_decode_probabilities() -> None:
    y = pd.DataFrame({"t": ["M", "R"]})
    pre = Preprocessor(_spec(), "binary").fit(_numeric_frame(2), y)
    pred, proba = pre.decode(np.array([[0.2], [0.9]], dtype=np.float32))
    assert pred.tolist() == ["M", "R"]
    assert proba is not None
    np.testing.assert_allclose(proba, [[0.8, 0.2], [0.1, 0.9]], rtol=1e-6)


def test_multiclass_single_output_is_a_mismatch() -> None:
    y = pd.DataFrame({"t": ["a", "b", "c"]})
    pre = Preprocessor(_spec(), "multiclass").fit(_numeric_frame(3), y)
    with pytest.raises(DataError, match="mismatch"):
        pre.decode(np.zeros((3, 1)))


def test_binary_with_three_classes() -> None:
    with pytest.raises(DataError, match="exactly 2 classes"):
        Preprocessor(_spec(), "binary").fit(_numeric_frame(3), pd.DataFrame({"t": ["a", "b", "c"]}))


@pytest.mark.parametrize("transform", ["none", "log", "standard", "minmax"])
def test_regression_transforms_invert(transform: str) -> None:
    y = pd.DataFrame({"t": [0.0, 1.5, 10.0, 250.0, 3.25]})
    pre = Preprocessor(_spec(target={"transform": transform}), "regression").fit(_numeric_frame(5), y)
    encoded = pre.transform_y(y)
    assert encoded.shape == (5, 1) and encoded.dtype == np.float32
    if transform == "standard":
        assert encoded.mean() == pytest.approx(0.0, abs=1e-6)
    if transform == "minmax":
        assert (encoded.min(), encoded.max()) == (0.0, 1.0)
    if transform == "log":
        np.testing.assert_allclose(encoded[:, 0], np.log1p(y["t"].to_numpy()), rtol=1e-6)
    pred, proba = pre.decode(encoded)
    assert proba is None and pred.shape == (5,)
    np.testing.assert_allclose(pred, y["t"].to_numpy(), rtol=1e-6, atol=1e-5)


def test_regression_transform_inverts_exactly_in_float64() -> None:
    y = pd.DataFrame({"t": [0.1, 2.7, 31.4, 5.0]})
    pre = Preprocessor(_spec(target={"transform": "standard"}), "regression").fit(_numeric_frame(4), y)
    assert pre.target_scaler_ is not None
    exact = pre.target_scaler_.transform(y.to_numpy())
    np.testing.assert_allclose(pre.decode(exact)[0], y["t"].to_numpy(), rtol=1e-12)


def test_multi_output_regression() -> None:
    y = pd.DataFrame({"u": [1.0, 2.0, 3.0], "v": [10.0, 20.0, 40.0]})
    pre = Preprocessor(_spec(target={"transform": "minmax"}), "regression").fit(_numeric_frame(3), y)
    assert pre.n_outputs == 2
    pred, _ = pre.decode(pre.transform_y(y))
    assert pred.shape == (3, 2)
    np.testing.assert_allclose(pred, y.to_numpy(), rtol=1e-6)
    with pytest.raises(DataError, match="mismatch"):
        pre.decode(np.zeros((3, 1)))


def test_log_transform_rejects_values_at_or_below_minus_one() -> None:
    with pytest.raises(DataError, match="> -1"):
        Preprocessor(_spec(target={"transform": "log"}), "regression").fit(
            _numeric_frame(2), pd.DataFrame({"t": [-1.0, 3.0]})
        )


def test_regression_needs_numbers() -> None:
    with pytest.raises(DataError, match="numeric"):
        Preprocessor(_spec(), "regression").fit(_numeric_frame(2), pd.DataFrame({"t": ["a", "b"]}))


# ----------------------------------------------------------------------------- images
def _images(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, 4, 4), dtype=np.uint8)


def _labels(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({"label": [i % 3 for i in range(n)]})


def test_image_rescale_keeps_shape() -> None:
    spec = PreprocessingSpec(image=ImageSpec(rescale=1 / 255))
    pre = Preprocessor(spec, "multiclass").fit(_images(), _labels())
    out = pre.transform_x(_images())
    assert out.shape == (6, 4, 4) and out.dtype == np.float32
    assert pre.input_shape == (4, 4)
    assert out.max() <= 1.0 and pre.image_scaler_ is None  # scaling applies only to 2-D results


def test_image_flatten_then_scaled_on_training_rows() -> None:
    imgs = _images(6)
    spec = PreprocessingSpec(image=ImageSpec(rescale=1 / 255, flatten=True), scaling="standard")
    pre = Preprocessor(spec, "multiclass").fit(imgs[:4], _labels()[:4])
    assert pre.input_shape == (16,)
    np.testing.assert_allclose(pre.image_scaler_.mean_, (imgs[:4].reshape(4, -1) / 255).mean(axis=0), rtol=1e-5)
    assert pre.transform_x(imgs[4:]).shape == (2, 16)


def test_image_reshape_adds_channel_axis() -> None:
    spec = PreprocessingSpec(image=ImageSpec(reshape=[4, 4, 1]), scaling="none")
    pre = Preprocessor(spec, "multiclass").fit(_images(), _labels())
    assert pre.transform_x(_images()).shape == (6, 4, 4, 1)
    assert pre.input_shape == (4, 4, 1)


def test_image_reshape_size_mismatch() -> None:
    spec = PreprocessingSpec(image=ImageSpec(reshape=[5, 5]))
    with pytest.raises(DataError, match="cannot reshape"):
        Preprocessor(spec, "multiclass").fit(_images(), _labels())


def test_target_spec_defaults() -> None:
    assert TargetSpec().transform == "none" and not TargetSpec().onehot


def test_fitted_preprocessor_pickles() -> None:
    # a run saves the fitted preprocessor next to the model so `predict` decodes the same way
    X = pd.DataFrame({"n": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    y = pd.DataFrame({"t": ["'-1'", "'1'", "'-1'"]})
    pre = Preprocessor(_spec(), "binary").fit(X, y)
    clone = pickle.loads(pickle.dumps(pre))
    np.testing.assert_array_equal(clone.transform_x(X), pre.transform_x(X))
    assert clone.decode(np.array([[0.9]]))[0].tolist() == ["'1'"]
