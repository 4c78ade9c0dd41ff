"""Shared code of the course *Practical Machine Learning for Computer Vision*.

Modules follow the data's path:

    synthetic     -> offline 5-flowers JPEGs (all_data.csv, dict.txt)
    dataset_files -> reading the CSV and labels, the deterministic split
    tfrecords     -> the Beam job that writes TFRecords (+ dead-letter output)
    ingest        -> tf.data pipelines over TFRecords / JPEG files, timing
    preprocess    -> THE preprocessing function (training, export, serving)
    model         -> model builders (small CNN, MobileNetV2)
    training      -> fit with checkpoints / early stopping / resume; train = CLI
    distribute    -> create_strategy(mode)
    export        -> SavedModel with serving signatures
    predict       -> in-memory and Beam batch prediction
    serving       -> local REST model server
    tflite        -> TFLite conversion and LiteRT inference
    explain       -> IG, XRAI, Grad-CAM, LIME, KernelSHAP, Anchors
    pipeline      -> kfp v2 components and pipeline
    workspace     -> where artifacts live; build-or-reuse upstream artifacts
    plots         -> image grids, confusion matrices (shared plot helpers)
    tracking      -> MLflow: explanations as artifacts, the explainer served as a model
    course        -> the whole course as one job (`make run`)

Importing this package has no side effects: submodules are imported on demand.
"""

__version__ = "0.1.0"
