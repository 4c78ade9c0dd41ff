"""An offline stand-in for the book's 5-flowers photos: drawn flowers in the book's formats.

``generate_dataset(DIR)`` writes::

    DIR/flower_photos/<class>/<class>_0000.jpg     the images (RGB JPEG, 96..256 px a side)
    DIR/flower_photos/all_data.csv                 headerless ``path,label`` (absolute paths)
    DIR/flower_photos/dict.txt                     one label a line, in CLASSES order
    DIR/flower_masks/<class>/<class>_0000.png      1-bit mask: where the flower is
    DIR/image_info.csv                             per image: background, size, other flower...

The classes need SHAPE, not only colour: colours overlap as in real flowers (roses and tulips
share reds, pinks and yellows; dandelions and sunflowers share yellow; daisies are white but
sometimes pink or yellowish), while each class has its own silhouette:

* daisy: many thin rounded petals around a small yellow disc;
* dandelion: a dense pom-pom of very fine rays, no visible disc;
* roses: layered rounded petals around a spiral centre, seen from the top;
* sunflowers: a large dark disc with a seed spiral and a ring of pointed petals;
* tulips: a cup of tall pointed petals seen from the side, on a stem with long leaves.

Each image's randomness comes only from ``(seed, class, index)``, so the same seed gives
byte-identical files, and adding images does not change the earlier ones. The flower and
its background use separate random streams: for one ``(seed, class, index)`` the flower is
the same whatever ``background_bias`` is; only the background kind may change.

``background_bias`` (0..1) plants a shortcut, like the "wolf on snow" classifier: with
probability P a tulip is drawn on the ``"sky"`` background and any other flower on a
non-sky background; otherwise the background kind is drawn uniformly. At P=0 every class
sees every background equally often; at P=0.95 tulips are on sky about 96% of the time
and the other classes about 0.6% of the time.

Nuisances a model must ignore: image size and aspect ratio, position, scale, rotation and
tilt, eight background kinds, lighting and white balance, noise, JPEG quality, grass or a
leaf in front of the flower (20%), extra flowers of the same class (20%) and, in 25% of the
images, a smaller flower of ANOTHER class in the background.

The mask marks the drawn plant(s) of the image's class (flower head, and any stem or leaves
drawn with it), minus whatever occludes it; everything else, including a flower of another
class, is background.

Submodules:

    palette      colour families, each class's petal palette, greens
    shapes       drawing primitives: petal, ellipse, leaf, stem
    flowers      the five drawers (CLASSES, DRAWERS) and the flower layer with its stem
    backgrounds  the eight background kinds, draw_background, the background-bias rule
    scene        render_flower: one image (layout, placement, occluders, camera finish)
    dataset      generate_dataset, image_info.csv, the stored masks, the CLI (main)
    __main__     ``python -m pmlv_utils.synthetic``

Only numpy and PIL are imported: no TensorFlow.

CLI::

    python -m pmlv_utils.synthetic --output_dir DIR [--images_per_class N] [--seed S]
                                   [--background_bias P]
"""

from .backgrounds import BACKGROUND_KINDS, BIAS_BACKGROUND, BIASED_CLASS, background_for
from .dataset import (
    GENERATOR_VERSION,
    INFO_COLUMNS,
    LABEL_NOISE_RATE,
    generate_dataset,
    image_seed,
    load_mask,
    main,
    mask_path,
    true_label,
)
from .flowers import CLASSES
from .palette import PETAL_PALETTES, Rng
from .scene import (
    DIFFICULTIES,
    DISTRACTOR_PROBABILITY,
    MAX_SIDE,
    MIN_SIDE,
    SUPERSAMPLE,
    render_flower,
)
from .varieties import CONFUSABLE, VARIETIES

__all__ = [
    "BACKGROUND_KINDS",
    "BIAS_BACKGROUND",
    "BIASED_CLASS",
    "CLASSES",
    "CONFUSABLE",
    "DIFFICULTIES",
    "DISTRACTOR_PROBABILITY",
    "GENERATOR_VERSION",
    "INFO_COLUMNS",
    "LABEL_NOISE_RATE",
    "MAX_SIDE",
    "MIN_SIDE",
    "PETAL_PALETTES",
    "Rng",
    "SUPERSAMPLE",
    "VARIETIES",
    "background_for",
    "generate_dataset",
    "image_seed",
    "load_mask",
    "main",
    "mask_path",
    "render_flower",
    "true_label",
]
