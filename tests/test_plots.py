"""pmlv_utils.plots: the grid and confusion-matrix helpers accept what the notebooks pass."""

import io

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from pmlv_utils import plots  # noqa: E402


def test_show_image_grid_mixes_paths_bytes_and_arrays(tmp_path):
    arr = np.zeros((8, 10, 3), np.uint8)
    arr[..., 0] = 200
    Image.fromarray(arr).save(tmp_path / "a.jpg")
    buf = io.BytesIO()
    Image.fromarray(arr).convert("L").save(buf, "PNG")
    images = [str(tmp_path / "a.jpg"), buf.getvalue(), arr, arr[..., 0] / 255.0, arr[..., :1]]
    fig = plots.show_image_grid(images, titles=list("abcde"), ncols=3)
    axes = fig.axes
    assert len(axes) == 6 and [ax.get_title() for ax in axes[:5]] == list("abcde")
    assert axes[0].images[0].get_array().shape == (8, 10, 3)
    assert axes[1].images[0].get_array().shape == (8, 10, 3)  # grayscale PNG shown as RGB
    assert not axes[5].images  # the spare cell stays empty


def test_show_image_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="no images"):
        plots.show_image_grid([])
    with pytest.raises(ValueError, match="2 images but 1 titles"):
        plots.show_image_grid([np.zeros((2, 2, 3))] * 2, titles=["x"])


def test_plot_confusion_matrix_writes_counts():
    fig = plots.plot_confusion_matrix([[3, 1], [0, 4]], ["a", "b"], title="t")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["3", "1", "0", "4"]
    with pytest.raises(ValueError, match="3 labels"):
        plots.plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b", "c"])
