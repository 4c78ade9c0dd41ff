"""Explaining an image classifier: IG, XRAI, Grad-CAM, LIME, KernelSHAP and Anchors.

One entry point, used by the notebooks and by the model server's ``:explain`` route::

    model = ExplainableModel.from_saved_model(export_dir)      # or .from_keras / .from_predict_fn
    result = explain(images, target_classes, method="ig", model=model, steps=50)
    result.attributions   # [N, H, W] float: one map per image
    result.approx_error   # [N] IG completeness gap (IG and XRAI), else None

The algorithms come from well-kept libraries: ``saliency`` (IG, XRAI, Grad-CAM), ``lime``
(``lime_image``), ``shap`` (``KernelExplainer`` over superpixels) and ``alibi``
(``AnchorImage``). What this package adds is the plumbing between them and a model, the IG
integration rules that ``saliency`` lacks (left/right/middle/trapezoid Riemann sums and
Gauss-Legendre), the completeness gap Vertex AI reports as ``approx_error``, a count of model
evaluations, and the metrics that compare explanations (rank correlation, top-k IoU, LIME
stability across seeds, attribution share on the object vs the background).

``model_calls`` counts images evaluated by the model (forward, or forward + gradient), not
batches: it is the cost that scales with the image count on a serving platform.

Submodules (every public name of the first eight is also importable from here):

    adapters        -> ExplainableModel and its loaders (SavedModel, Keras, job dir, black box)
    fov             -> FieldOfView: the window of the input the model sees (every map and
                       measure is drawn and scored on it)
    checks          -> check_images, check_targets, make_baseline (IG baselines)
    gradients       -> IG with its integration rules, completeness_gap, XRAI, Grad-CAM
    perturbation    -> superpixels, hidden_image, segment_map; LIME, KernelSHAP, Anchors
    api             -> explain(), METHODS, Explanation, the method -> runner / options tables
    metrics         -> rank correlation, top-k IoU, agreement_table, lime_stability,
                       attribution_share, pooled_background_share, gap_vs_steps /
                       steps_for_gap
    examples        -> Examples, load_examples, preprocess_mask (images + flower masks)
    faithfulness    -> deletion / insertion curves and their AUCs, the blog's experiment of
                       removing the negative superpixels (``explain.faithfulness.…``)
    cues            -> the ground-truth benchmark of planted cues: true reliance by
                       re-rendering, share on the cue, Spearman per method x cue
                       (``from pmlv_utils.explain import cues``; notebook 10e section 7)
    sanity          -> cascading weight randomisation and label randomisation (Adebayo et
                       al., 2018) (``explain.sanity.…``: imports keras' training stack)
    tracin          -> TracIn over the last layer of saved checkpoints: proponents, opponents,
                       self-influence (``explain.tracin.…``)
    blackbox        -> the export as ONNX and as a frozen graph, with predict functions for
                       from_predict_fn (import it: ``from pmlv_utils.explain import blackbox``;
                       it needs tf2onnx and onnxruntime)
    encoding        -> maps as base64 PNG, :explain responses decoded, rest_predict_fn
    plots           -> overlays, the book's grid, method comparisons (``explain.plots.…``)
    vertex_metadata -> explanation_metadata.json, Vertex AI upload commands
                       (``explain.vertex_metadata.…``)
"""

from . import faithfulness, plots, sanity, tracin, vertex_metadata
from .adapters import BLACK_BOX_METHODS, GRADIENT_METHODS, ExplainableModel
from .api import METHODS, Explanation, explain
from .checks import IG_BASELINES, check_images, check_targets, make_baseline
from .encoding import (
    attribution_to_png_b64,
    explanations_from_response,
    image_to_png_bytes,
    png_b64_to_array,
    rest_predict_fn,
)
from .examples import Examples, load_examples, preprocess_mask
from .fov import FieldOfView
from .gradients import (
    DEFAULT_IG_STEPS,
    IG_INTEGRATION,
    completeness_gap,
    integrated_gradients,
    integration_points,
)
from .metrics import (
    LIME_STABILITY_SEEDS,
    MAP_KINDS,
    agreement_table,
    attribution_share,
    comparable,
    gap_vs_steps,
    iou,
    lime_stability,
    pooled_background_share,
    rank_correlation,
    ranked_pairs,
    steps_for_gap,
    top_k_iou,
    top_k_mask,
)
from .perturbation import HIDE_MODES, hidden_image, segment_map, segment_means, superpixels

__all__ = [
    "faithfulness",
    "plots",
    "sanity",
    "tracin",
    "vertex_metadata",
    # api / adapters / checks
    "METHODS",
    "GRADIENT_METHODS",
    "BLACK_BOX_METHODS",
    "Explanation",
    "explain",
    "ExplainableModel",
    "IG_BASELINES",
    "check_images",
    "check_targets",
    "make_baseline",
    "FieldOfView",
    # gradients
    "IG_INTEGRATION",
    "DEFAULT_IG_STEPS",
    "integration_points",
    "completeness_gap",
    "integrated_gradients",
    # perturbation
    "HIDE_MODES",
    "superpixels",
    "segment_means",
    "hidden_image",
    "segment_map",
    # metrics
    "LIME_STABILITY_SEEDS",
    "MAP_KINDS",
    "rank_correlation",
    "comparable",
    "ranked_pairs",
    "top_k_mask",
    "iou",
    "top_k_iou",
    "agreement_table",
    "lime_stability",
    "attribution_share",
    "pooled_background_share",
    "gap_vs_steps",
    "steps_for_gap",
    # examples
    "Examples",
    "load_examples",
    "preprocess_mask",
    # encoding
    "attribution_to_png_b64",
    "explanations_from_response",
    "image_to_png_bytes",
    "rest_predict_fn",
    "png_b64_to_array",
]
