"""Shared code of the course *Practical Machine Learning for Computer Vision*.

The module map, in the order the data flows (a test checks that every module is on it):

    safe_io                 -> atomic JSON/text writes, error text fit for a client
    b64files                -> files as base64 rows with a read error (what Spark workers run)
    quiet                   -> TensorFlow's C++ start-up lines kept out of notebook outputs
    image_limits            -> the pixel budget read from image headers, before any decode
    workspace               -> where artifacts live; build-or-reuse the upstream artifacts
    synthetic               -> the offline 5-flowers data set (numpy + PIL only)
    synthetic.palette       -> colour families, each class's petal palette, greens
    synthetic.shapes        -> drawing primitives: petal, ellipse, leaf, stem
    synthetic.flowers       -> the five drawers and the flower layer (head + stem + leaves)
    synthetic.backgrounds   -> the background kinds and the background-bias rule
    synthetic.varieties     -> two or three varieties per class (hard), confusable classes
    synthetic.hard          -> the hard framing: size, position, cut, extra flowers, distractors
    synthetic.occluders     -> grass, a leaf, blurred foliage, a twig in front (hard)
    synthetic.camera        -> the hard camera: blur, exposure, colour casts, noise, JPEG quality
    synthetic.scene         -> render_flower: one image (layout, occluders, camera finish)
    synthetic.cues          -> planted cues at a strength (a corner stamp, a sky blend)
    synthetic.dataset       -> generate_dataset, image_info.csv, masks, the CLI
    dataset_files           -> all_data.csv and dict.txt, the deterministic split, shard globs
    labeling                -> multi-label annotation into label.json (chapter 5)
    baseline                -> the colour-histogram baseline classifier
    tfrecords               -> the chapter 5 Beam job: all_data.csv -> TFRecords + dead letters
    tfrecords.examples      -> the tf.train.Example schema: make, parse, decode
    tfrecords.images        -> one image: read, convert when needed, reject reasons
    tfrecords.job           -> DatasetJobConfig, the Beam graph, run_pipeline
    tfrecords.options       -> PipelineOptions for the DirectRunner or Dataflow
    tfrecords.reading       -> reading a run back: counts, records, errors, size report
    tfrecords.demo          -> a CSV with one line of every problem kind
    ingest                  -> tf.data pipelines over TFRecords / JPEG files (chapter 7)
    preprocess              -> THE preprocessing function and the augmentation layers
    model                   -> model builders (small CNN, MobileNetV2)
    backbone                -> transfer learning offline: a MobileNetV2 backbone of our own
    backbone.shapes         -> the pretext task: 24 shape classes drawn with numpy + PIL
    backbone.pretrain       -> BackboneConfig, pretrain_backbone: the no-top weights file
    backbone.transfer       -> fine_tune_table: few labels, from scratch vs fine-tuned
    distribute              -> create_strategy(mode), local multi-worker processes
    training                -> train, checkpoint, early-stop, resume, evaluate, export
    training.config         -> TrainConfig: every setting that changes the model
    training.checkpoints    -> best/last checkpoints, early stopping, state.json
    training.loop           -> Keras fit, or the custom loop over several replicas
    training.run            -> train_and_export: data -> fit -> evaluate -> export
    training.evaluation     -> evaluate, training curves, artifacts, the tuning metric
    training.hparams        -> the book's search space and a local random search
    training.tensorboard    -> TensorBoard logs of a run, read_scalars, a local server
    training.ablation       -> augmentation ablation over seeds, its summary, curves
    training.cli            -> the book's trainer flags, Vertex job specs
    error_review            -> confusion, worst FP/FN galleries, mislabels by loss rank
    train                   -> the book's entry point `python -m pmlv_utils.train`
    grayscale               -> chapter 7b: five ways to compute grayscale
    timing                  -> CPU + wall timing, ratio tables and charts
    export                  -> the SavedModel with its serving signatures, model_info.json
    predict                 -> prediction with the exported model, in memory and with Beam
    predict.model           -> LoadedModel: the SavedModel in memory
    predict.inmemory        -> predict_files / predict_bytes, JSON rows, tables
    predict.beam            -> the DoFns (Shared model + BatchElements, naive, REST)
    predict.rest            -> REST batch calls: bounded retries, circuit breaker, dead letters
    predict.job             -> run_batch_prediction: files, CSV, TestStream, Pub/Sub
    predict.rest            -> batch prediction over REST: bounded retries, circuit breaker
    serving                 -> the local REST model server
    serving.paths           -> PathPolicy: which files a request may read
    serving.requests        -> the body, JSON, validation into a ParsedRequest
    serving.service         -> PredictionService: public signatures, strict outputs, errors -> 4xx
    serving.inputs          -> ImageLoader: files opened once (fstat, size cap), pixel budget
    serving.explaining      -> :explain option bounds, time budget, ExplainQueue (429 when busy)
    serving.guards          -> HostGuard (Host allowlist, 421), Admission (concurrency limit, 429)
    serving.workers         -> DaemonExecutor (threads that never block SIGTERM), PixelBudget
    serving.batching        -> MicroBatcher: concurrent requests in one model call
    serving.app             -> create_app: the FastAPI routes and error answers
    serving.tfserving       -> TF Serving REST: model status, signature_def metadata, columnar
    serving.oip             -> KServe v2 (Open Inference Protocol) codec: JSON + binary tensors
    serving.oip_tensors     -> KServe v2 tensors checked against the served signatures
    serving.cli             -> `python -m pmlv_utils.serving` flags
    serving.client          -> start_server, wait_until_ready, load_test, predict_jsonl
    serving.battery         -> the bad-request battery and its runner
    tflite                  -> TFLite conversion and LiteRT inference (chapter 9)
    tflite.conversion       -> float32 / float16 / int8 conversion, int8 debugging
    tflite.classifier       -> TFLiteClassifier on LiteRT, op_summary
    tflite.evaluation       -> accuracy / latency / size against the SavedModel
    explain                 -> IG, XRAI, Grad-CAM, LIME, KernelSHAP, Anchors (chapter 10)
    explain.adapters        -> ExplainableModel and its loaders
    explain.checks          -> input checks and IG baselines
    explain.gradients       -> IG and its integration rules, XRAI, Grad-CAM
    explain.perturbation    -> superpixels, LIME, KernelSHAP, Anchors
    explain.api             -> explain(): one entry point over every method
    explain.metrics         -> agreement, stability, attribution share, gap vs steps
    explain.fov             -> FieldOfView: the window of the input the model sees
    explain.faithfulness    -> deletion/insertion curves and AUCs, removing negative evidence
    explain.cues            -> the cue benchmark: counterfactual reliance vs share on the cue
    explain.sanity          -> Adebayo et al.'s randomisation checks (cascade, shuffled labels)
    explain.tracin          -> TracIn from checkpoints: proponents, opponents, self-influence
    explain.blackbox        -> the export as ONNX (tf2onnx, onnxruntime) and as a frozen graph
    explain.examples        -> test images with their flower masks
    explain.encoding        -> maps as base64 PNG, :explain answers, a REST predict fn
    explain.plots           -> overlays, the book's grid, comparisons
    explain.vertex_metadata -> explanation_metadata.json, Vertex AI commands
    tracking                -> MLflow: explanations as artifacts, the explainer as a model
    tracking.runs           -> the tracking store, runs, artifacts, reading them back
    tracking.shap_model     -> the SHAP partition explainer (image masker) as a pyfunc class
    tracking.explainer      -> the explainer as a pyfunc model from code
    tracking.explainer_model -> the "model from code" file MLflow runs
    tracking.served         -> `mlflow models serve` on 127.0.0.1
    tracking.batch          -> batch explanations with Beam
    tracking.server         -> `mlflow server` (sqlite + local artifacts) started and stopped
    tracking.spark          -> a local[2] Spark session and spark_udf batch explanations
    pipeline                -> the course as a kfp v2 pipeline (chapter 10)
    pipeline.steps          -> what each step does, the atomic deploy
    pipeline.fingerprints   -> content hashes of data and code (the cache keys)
    pipeline.components     -> the kfp components
    pipeline.gate           -> the deploy gate: accuracy AND explanations' background share
    pipeline.graph          -> the pipeline definition, compile, load, plot
    pipeline.local          -> run_local in kfp's local runner, PipelineRun
    pipeline.cloud          -> Vertex AI Pipelines / Kubeflow submission
    pipeline.watch          -> the folder watcher
    plots                   -> image grids, confusion matrices (shared plot helpers)
    course                  -> the whole course as one job (`make run`)

Importing this package has no side effects and imports no TensorFlow: import the module you
need (``from pmlv_utils import serving``).
"""

__version__ = "0.1.0"
