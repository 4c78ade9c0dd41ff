"""An offline stand-in for the book's 5-flowers photos: drawn flowers in the book's formats.

``generate_dataset(DIR)`` writes::

    DIR/flower_photos/<class>/<class>_0000.jpg     RGB JPEG, 96..256 px a side (hard: 128..256)
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

``difficulty`` sets how much of what makes real photos hard the images have:

* ``"hard"`` (the default; as hard for a small CNN as the book's photos, measured in
  docs/DIFFICULTY.md): most images show the flower well, a tail does not: small flowers
  (20%: head radius 10..25% of the short side), flowers cut by the frame (8%), several
  flowers (20%), a flower of another, often confusable, class (25%), grass, leaves,
  blurred foliage or a twig in front (25%), defocus (10%) or motion blur (5%), bad
  exposure (12%), colour casts (12%), low JPEG quality (15% at 20..44), three varieties
  per class (20% are not the classic one: e.g. oxeye and coloured daisies, dandelion
  clocks, rose buds, double tulips) and 2% label noise: images listed (folder and
  ``all_data.csv``) under a wrong label, recorded in ``image_info.csv`` (``true_label``,
  ``label_noise``);
* ``"easy"``: generator version 3's images byte for byte (large, centred flowers; grass or
  a leaf in front 20%, extra flowers 20%, another class in the background 25%): quick tests.

Each image's randomness comes only from ``(seed, class, index)``, so the same seed gives
byte-identical files, and adding images does not change the earlier ones. The flower and
its background use separate random streams: for one ``(seed, class, index)`` the flower is
the same whatever ``background_bias`` is; only the background kind may change.

``background_bias`` (0..1) plants a shortcut, like the "wolf on snow" classifier: with
probability P a tulip is drawn on the ``"sky"`` background and any other flower on a
non-sky background; otherwise the background kind is drawn uniformly. At P=0 every class
sees every background equally often; at P=0.95 tulips are on sky about 96% of the time
and the other classes about 0.6% of the time. (The rule follows the listed label.)

``stamp_bias`` (0..1) plants a second shortcut: with probability P a tulip gets a magenta
square in a corner (:mod:`.cues`), other flowers never (``image_info.csv`` then gains a
``stamp`` column). With neither bias the images are those of the generator version.

``image_info.csv`` has one row per image (:data:`INFO_COLUMNS`): background, size, JPEG
quality, the mask's share of the image, another visible class, visible flowers of the
class, occluded; then ``true_label``, ``label_noise``, the main flower's ``variety``,
``flower_scale`` (head radius / short side), ``centre_offset`` (/ short side),
``cut_by_frame``, and the camera's ``blur`` (none/defocus/motion), ``blur_sigma`` (px),
``exposure`` (gain), ``colour_cast`` and ``hard_tail`` (the image is one of the hard tail).

The mask marks the drawn plant(s) of the image's TRUE class (flower head, and any stem or
leaves drawn with it), minus whatever occludes it; everything else, including a flower of
another class, is background.

Submodules:

    palette      colour families, each class's petal palette, greens
    shapes       drawing primitives: petal, ellipse, leaf, stem
    flowers      the five drawers (CLASSES, DRAWERS) and the flower layer with its stem
    backgrounds  the eight background kinds, draw_background, the background-bias rule
    varieties    two or three sub-types of each class (hard), CONFUSABLE classes
    hard         the hard framing: size, position, cut flowers, extra flowers, distractors
    occluders    grass, a leaf, blurred foliage, a twig in front of the flower
    camera       the hard camera: blur, exposure, colour casts, noise; JPEG quality
    scene        render_flower: one image (layout, placement, occluders, camera finish)
    cues         planted cues at a strength (a corner stamp, a sky blend), the stamp rule
    dataset      generate_dataset, label noise, image_info.csv, the stored masks, the CLI,
                 counterfactual (an image re-rendered with and without a cue)
    __main__     ``python -m pmlv_utils.synthetic``

Only numpy and PIL are imported: no TensorFlow.

CLI::

    python -m pmlv_utils.synthetic --output_dir DIR [--images_per_class N] [--seed S]
                                   [--background_bias P] [--difficulty {easy,hard}]
"""

from .backgrounds import BACKGROUND_KINDS, BIAS_BACKGROUND, BIASED_CLASS, background_for
from .cues import CUE_KINDS, CUED_CLASS, CUES_VERSION, stamp_for, stamp_mask
from .dataset import (
    GENERATOR_VERSION,
    INFO_COLUMNS,
    LABEL_NOISE_RATE,
    counterfactual,
    generate_dataset,
    image_quality,
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
    "CUE_KINDS",
    "CUED_CLASS",
    "CUES_VERSION",
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
    "counterfactual",
    "generate_dataset",
    "image_quality",
    "image_seed",
    "load_mask",
    "main",
    "mask_path",
    "render_flower",
    "stamp_for",
    "stamp_mask",
    "true_label",
]
