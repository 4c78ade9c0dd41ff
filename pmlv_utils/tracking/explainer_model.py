"""MLflow "model from code" file: the SHAP explainer served and run in batch (10d).

MLflow executes this file when it loads the model, so no pickled Python object is stored or
loaded. The package never imports it (``pmlv_utils.tracking.log_explainer`` points MLflow at it:
``tracking.explainer.MODEL_CODE``); the class is in :mod:`pmlv_utils.tracking.shap_model`.
"""

from mlflow.models import set_model

from pmlv_utils.tracking.shap_model import ShapImageExplainer

set_model(ShapImageExplainer())
