"""The blog's black box: the export as ONNX (tf2onnx + onnxruntime) and as a frozen graph gives
the same predictions, and the perturbation methods the same maps, as the model in-process."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")

from pmlv_utils import explain as ex  # noqa: E402
from pmlv_utils import export  # noqa: E402
from pmlv_utils.explain import blackbox  # noqa: E402
from pmlv_utils.preprocess import RandomCropOrCenter  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(3)
    inp = keras.Input((SIZE, SIZE, 3), name="input_images")
    x = RandomCropOrCenter(24, 24, random=False)(inp)
    x = keras.layers.Conv2D(8, 3, activation="relu", padding="same")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(8, 3, activation="tanh", padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inp, out)
    folder = tmp_path_factory.mktemp("bb")
    export_dir = export.export_saved_model(model, str(folder / "export"), ["a", "b", "c"], SIZE)
    return folder, export_dir


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    imgs = np.stack([np.stack([yy, xx, 0.5 * np.ones_like(xx)], -1)] * 2).astype(np.float32)
    imgs[0, 8:20, 10:24] = [0.9, 0.8, 0.1]
    imgs[1, 14:30, 4:14] = [0.1, 0.2, 0.9]
    return np.clip(imgs + 0.03 * rng.standard_normal(imgs.shape), 0, 1).astype(np.float32)


def test_onnx_and_frozen_graph_predict_like_the_saved_model(exported, images):
    folder, export_dir = exported
    reference = ex.ExplainableModel.from_saved_model(export_dir).predict(images)
    onnx_fn = blackbox.onnx_predict_fn(blackbox.to_onnx(export_dir, folder / "m.onnx"))
    frozen_fn = blackbox.frozen_graph_predict_fn(
        blackbox.to_frozen_graph(export_dir, folder / "m.pb")
    )
    np.testing.assert_allclose(onnx_fn(images), reference, atol=1e-5)
    np.testing.assert_allclose(frozen_fn(images), reference, atol=1e-5)


@pytest.mark.parametrize("method", ["lime", "kernelshap"])
def test_perturbation_maps_through_onnx_equal_in_process(method, exported, images):
    folder, export_dir = exported
    in_process = ex.ExplainableModel.from_saved_model(export_dir)
    box = ex.ExplainableModel.from_predict_fn(
        blackbox.onnx_predict_fn(blackbox.to_onnx(export_dir, folder / f"{method}.onnx")),
        SIZE,
        labels=in_process.labels,
        field_of_view=in_process.field_of_view,
        name="onnx",
    )
    a = ex.explain(images, [0, 2], method, in_process, num_samples=200, seed=1).attributions
    b = ex.explain(images, [0, 2], method, box, num_samples=200, seed=1).attributions
    np.testing.assert_allclose(a, b, atol=1e-4)
