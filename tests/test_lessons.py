"""Each chapter notebook writes the code its chapter teaches in its own code cells (issue 16), and
the chapter-10 notebooks hold the checks issue 13 asks for: checked without executing anything."""

from __future__ import annotations

import pytest

from notebook_tools import REPO, course_notebooks, read

# notebook -> calls its code cells must contain (the lesson, not a call into pmlv_utils)
CORE_CALLS = {
    "05_create_dataset/05_label_images.ipynb": ["widgets.Button", "on_click"],  # saving is a button
    "05_create_dataset/05_split_tfrecord.ipynb": [
        "beam.Pipeline",
        "tf.train.Example",
        "with_outputs(",
    ],
    "07_training/07a_ingest.ipynb": [".interleave(", ".prefetch(", ".cache(", "num_parallel_calls"],
    "07_training/07b_gpumax.ipynb": ["keras.layers.Layer", "tf.function", "input_signature"],
    "07_training/07c_export.ipynb": ["ModelCheckpoint", "EarlyStopping", ".fit(", "ExportArchive"],
    "07_training/07d_distribute.ipynb": ["strategy.scope()", "TF_CONFIG"],
    # the ablation over seeds; the frozen backbone written in Keras beside the trainer's
    "07_training/07e_augment_transfer.ipynb": [
        "augmentation_ablation",
        "keras.applications.MobileNetV2",
        "trainable = False",
    ],
    "09_deploying/09a_inmemory.ipynb": ["beam.DoFn", "Shared", ".acquire(", "BatchElements"],
    "09_deploying/09b_rest.ipynb": ["requests.post", "curl"],
    "09_deploying/09c_changesig.ipynb": ["tf.function", "tf.saved_model.save", "signatures"],
    "09_deploying/09d_bytes.ipynb": ["def predict_bytes", "def predict_filename", "base64"],
    "09_deploying/09e_tflite.ipynb": [
        "TFLiteConverter",
        "representative_dataset",
        "tf.float16",
        "Interpreter",
        "get_signature_runner",
    ],
    "09_deploying/09f_explain.ipynb": ["SavedModelMetadataBuilder"],
    "10_mlops/10a_mlpipeline.ipynb": ["@dsl.component", "@dsl.pipeline", "dsl.If", "Compiler"],
    # IG by hand from the signature, deletion/insertion, alibi's IG
    "10_mlops/10b_explain.ipynb": [
        "GradientTape",
        "faithfulness_table",
        "alibi_integrated_gradients",
    ],
    # LIME by hand; faithfulness, the blog's experiment, sanity checks, TracIn, the black boxes
    "10_mlops/10c_compare_explainers.ipynb": [
        "explain.superpixels(",
        "pairwise_distances",
        "Ridge(",
        "sample_weight",
        "faithfulness_table",
        "remove_negative_superpixels",
        "cascading_randomisation",
        "label_randomisation",
        "TracIn",
        "to_onnx",
        "to_frozen_graph",
    ],
    "10_mlops/10d_explain_mlflow.ipynb": ["mlflow.start_run", "mlflow.pyfunc"],
    "10_mlops/10e_shortcut_detection.ipynb": ["cue_set", "score_table"],  # the planted-cue table
}


def code_of(relative: str) -> str:
    nb = read(REPO / relative)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("notebook", sorted(CORE_CALLS))
def test_the_lesson_is_in_the_notebook(notebook):
    code = code_of(notebook)
    missing = [call for call in CORE_CALLS[notebook] if call not in code]
    assert not missing, f"{notebook}: its code cells never write {missing}"


@pytest.mark.parametrize("path", course_notebooks(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_getsource_as_a_teaching_device(path):
    assert "getsource" not in code_of(str(path.relative_to(REPO)))


def test_every_notebook_has_its_lesson_listed():
    notebooks = {str(p.relative_to(REPO)) for p in course_notebooks()}
    assert set(CORE_CALLS) == notebooks, set(CORE_CALLS) ^ notebooks
