"""Deletion / insertion curves and the blog's remove-the-negative-evidence experiment, on a
model whose evidence is known (red raises class 0, blue lowers it)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from pmlv_utils import explain as ex  # noqa: E402
from pmlv_utils.explain import faithfulness as fa  # noqa: E402
from pmlv_utils.preprocess import RandomCropOrCenter  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def model():
    """Centre 24x24 crop; class 0 logit = 6 x mean(red excess) - 6 x mean(blue excess)."""
    inp = keras.Input((SIZE, SIZE, 3))
    x = RandomCropOrCenter(24, 24, random=False)(inp)
    x = keras.layers.Conv2D(2, 1, activation="relu", name="colours")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(2, activation="softmax")(x)
    m = keras.Model(inp, out)
    red_blue = np.array([[1.0, -1.0], [-1.0, -1.0], [-1.0, 1.0]]).reshape(1, 1, 3, 2)
    m.get_layer("colours").set_weights([red_blue, np.zeros(2)])
    m.layers[-1].set_weights([np.array([[30.0, 0.0], [-30.0, 0.0]]), np.zeros(2)])
    return ex.ExplainableModel.from_keras(m)


@pytest.fixture(scope="module")
def image():
    img = np.full((SIZE, SIZE, 3), 0.3, np.float32)
    img[6:14, 6:14] = [1.0, 0.0, 0.0]  # red: evidence for class 0
    img[18:26, 18:26] = [0.0, 0.0, 1.0]  # blue: evidence against
    return img


def truth_map(image):
    return image[..., 0] - image[..., 2]  # +1 on red, -1 on blue, 0 elsewhere


def test_deletion_and_insertion_rank_a_true_map_above_random_and_reversed(model, image):
    images = image[None]
    table, curves = fa.faithfulness_table(
        images, [0], {"truth": truth_map(image)[None], "reversed": -truth_map(image)[None]}, model
    )
    auc = table.set_index("method")
    assert auc.loc["truth", "deletion_auc"] < auc.loc["random", "deletion_auc"]
    assert auc.loc["random", "deletion_auc"] < auc.loc["reversed", "deletion_auc"]
    assert auc.loc["truth", "insertion_auc"] > auc.loc["random", "insertion_auc"]
    assert auc.loc["random", "insertion_auc"] > auc.loc["reversed", "insertion_auc"]
    p0 = model.predict(images)[0, 0]
    c = curves["truth"]
    assert c["deletion"][0, 0] == pytest.approx(p0, abs=1e-6)  # nothing removed yet
    assert c["insertion"][0, -1] == pytest.approx(p0, abs=1e-6)  # everything put back
    assert c["fractions"][[0, -1]].tolist() == [0.0, 1.0]


def test_pixels_outside_the_field_of_view_are_never_ranked(model, image):
    frame_map = np.zeros((SIZE, SIZE))
    frame_map[:4] = 10.0  # the map's top pixels lie in the frame the model never sees
    order = fa.pixel_order(frame_map, model.field_of_view)
    assert model.field_of_view.mask().ravel()[order].all()
    assert len(order) == 24 * 24


def test_remove_negative_superpixels_raises_the_probability(model, image):
    grid = (np.arange(SIZE)[:, None] // 8) * 4 + np.arange(SIZE)[None] // 8  # 16 squares
    # hide="black": on this flat image SLIC's segments can follow the patches exactly (ties
    # broken by the CPU's arithmetic), and a segment switched off to its own mean changes nothing
    lime = ex.explain(image[None], [0], "lime", model, num_samples=300, seed=1, hide="black")
    table = fa.remove_negative_superpixels(
        image[None], [0], lime.attributions, lime.extra["segments"], model, hide="black"
    )
    row = table.iloc[0]
    assert row["negative superpixels"] >= 1
    assert row["negative removed"] > row["P(target)"]  # the blog's result: certainty rises
    assert row["as many top-positive removed"] < row["P(target)"]
    truth = fa.remove_negative_superpixels(
        image[None], [0], truth_map(image)[None], [grid], model, hide="black"
    ).iloc[0]
    assert truth["negative superpixels"] == 4  # the four squares under the blue patch's corner
    assert truth["negative removed"] > truth["P(target)"]


def test_bad_inputs_raise(model, image):
    with pytest.raises(ValueError, match="one \\[H, W\\] map"):
        fa.deletion_insertion(image[None], [0], np.zeros((1, 8, 8)), model)
    with pytest.raises(ValueError, match="steps"):
        fa.deletion_insertion(image[None], [0], np.zeros((1, SIZE, SIZE)), model, steps=0)
    with pytest.raises(ValueError, match="fill"):
        fa.fill_image(image, "pink")


def test_plots_draw(model, image):
    import matplotlib.pyplot as plt

    _, curves = fa.faithfulness_table(image[None], [0], {"truth": truth_map(image)[None]}, model)
    fig = ex.plots.plot_deletion_insertion(curves, "t")
    assert len(fig.axes) == 2
    fig2 = ex.plots.plot_method_comparison(
        image[None], {"truth": truth_map(image)[None]}, field_of_view=model.field_of_view
    )
    assert all(len(ax.patches) == 1 for ax in fig2.axes)  # the dashed frame on every panel
    plt.close("all")


def test_readable_views_draw_with_colour_bars(model, image):
    import matplotlib.pyplot as plt

    fig = ex.plots.plot_readable_views(image, truth_map(image), 1.5, "t", model.field_of_view)
    assert len(fig.axes) == 4 + 3  # four panels, three colour bars
    plt.close("all")
