"""TFLite conversion (float32 / float16 / full-int8) and LiteRT inference for the edge.

Submodules:

    conversion  -> the exported model part to .tflite (float32, float16, full int8), int8 debugging
    classifier  -> TFLiteClassifier (LiteRT, one image per invoke), the input check, op_summary
    evaluation  -> accuracy / latency / size against the SavedModel, images of a TFRecord split

Only the model part is converted: the exported ``xai_model`` signature, which takes a
preprocessed float image batch ``[N, H, W, 3]`` in [0, 1] and returns ``probability``
``[N, classes]``. Decoding and cropping stay outside, on the device, done by the same
:func:`pmlv_utils.preprocess.preprocess_image` as training and serving. The converted models
take one image at a time (``[1, H, W, 3]``), as a camera pipeline feeds them.

The int8 model is fully quantised (int8 weights and activations, integer-only ops) and takes
``uint8`` pixels: with the input scale calibrated to ~1/255 these are the camera's own bytes.

    paths = convert(export_dir, out_dir, representative_images=train_images[:100])
    clf = TFLiteClassifier(paths["int8"])
    probabilities = clf.predict(test_images)            # float images in [0, 1]
    row = evaluate_tflite(paths["int8"], test_images, test_labels)

Route used (see PLATFORM_NOTES): ``tf.saved_model.load`` + ``from_concrete_functions``
on the signature; it gives correct float and int8 models for a Keras 3 export.
"""

from .classifier import TFLiteClassifier, check_float_images, op_summary
from .conversion import (
    KINDS,
    MODEL_SIGNATURE,
    OUTPUT_NAME,
    check_export_dir,
    convert,
    model_signature,
    quantization_error_by_layer,
    savedmodel_size_bytes,
)
from .evaluation import (
    compare_with_savedmodel,
    evaluate_savedmodel,
    evaluate_tflite,
    load_split_images,
)

__all__ = [
    "KINDS",
    "MODEL_SIGNATURE",
    "OUTPUT_NAME",
    "TFLiteClassifier",
    "check_export_dir",
    "check_float_images",
    "compare_with_savedmodel",
    "convert",
    "evaluate_savedmodel",
    "evaluate_tflite",
    "load_split_images",
    "model_signature",
    "op_summary",
    "quantization_error_by_layer",
    "savedmodel_size_bytes",
]
