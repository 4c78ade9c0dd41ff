"""A local Spark session for batch explanations (10d §7): ``local[2]`` on loopback, no UI, quiet.

PySpark 4 runs on Java 17 or newer (``tools/install_java.sh`` installs Debian's
``openjdk-17-jre-headless``): :func:`java_runtime` finds one, and :data:`JAVA_MISSING` is the
reason Spark cells and tests give when there is none.

:func:`local_spark` binds the driver to 127.0.0.1 (nothing listens on another address and no
host name is looked up), turns the web UI and the console progress bars off, makes the Python
workers this interpreter (the venv), logs errors only (``log4j2.properties`` next to this file)
and sends what the JVM and its Python workers write on stderr to ``<workspace>/spark.log``,
not into the notebook.

Batch explanations (:func:`spark_explanations`): a DataFrame of file paths; each file is read on
the trusted side (:func:`image_frame`, a pandas UDF from :mod:`pmlv_utils.b64files`: an
unreadable file gives ``read_error``, not a failed task), the logged explainer runs as
``mlflow.pyfunc.spark_udf`` with a struct result type (:data:`tracking.explainer.RESULT_TYPE`),
and :func:`split_dead_letters` sends each row with a read or explainer error to a dead-letter
DataFrame ``(path, reason)``. The explainer
answers ``""`` rather than None in its string fields: ``spark_udf`` would turn a None into the
text "None" in a partition that has other rows (MLflow 3.17's ``astype(str)``). The UDF is
marked nondeterministic: otherwise Spark's optimizer may run the model twice per row (once in
the pushed-down dead-letter filter, once for the struct's fields).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow.pyfunc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .. import b64files
from .. import workspace as ws
from .explainer import RESULT_TYPE, quiet_pyfunc_warnings

LOG4J2 = Path(__file__).with_name("log4j2.properties")
MIN_JAVA = 17
JAVA_MISSING = (
    f"no Java >= {MIN_JAVA} runtime for PySpark: run `bash tools/install_java.sh` "
    "(installs Debian's openjdk-17-jre-headless; needs root and apt-get)"
)


def java_major(java: str) -> int | None:
    """The major version of a ``java`` binary (17), or None if it does not run."""
    try:
        done = subprocess.run(
            [java, "-XshowSettings:properties", "-version"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"java\.specification\.version = (\d+)", done.stderr + done.stdout)
    return int(found.group(1)) if found else None


def java_runtime() -> tuple[str, int] | None:
    """``(path, major)`` of the java Spark will start ($JAVA_HOME first, then PATH) if it is
    at least :data:`MIN_JAVA`, else None."""
    home = os.environ.get("JAVA_HOME")
    candidates = [str(Path(home) / "bin" / "java")] if home else []
    candidates += [found] if (found := shutil.which("java")) else []
    for java in candidates:
        if os.access(java, os.X_OK) and (major := java_major(java)) and major >= MIN_JAVA:
            return java, major
    return None


@contextlib.contextmanager
def stderr_to(path: str | os.PathLike):
    """Point file descriptor 2 at ``path`` for the block: a child started inside (the JVM)
    keeps it; this process gets its own stderr back afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def local_spark(
    app: str = "pmlv-10d", cores: int = 2, driver_memory: str = "2g", workspace=None
) -> SparkSession:
    """A local Spark session (see the module doc). ``spark.pmlv_start_s``: its start time.

    Raises RuntimeError(:data:`JAVA_MISSING`) without a Java runtime."""
    if java_runtime() is None:
        raise RuntimeError(JAVA_MISSING)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("SPARK_LOCAL_HOSTNAME", "localhost")
    os.environ["PYSPARK_PYTHON"] = sys.executable  # workers: this venv's interpreter
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app)
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.shuffle.partitions", str(cores))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.python.worker.reuse", "true")  # workers keep the loaded model
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{LOG4J2}")
    )
    started = time.perf_counter()
    with stderr_to(ws.workspace_dir(workspace) / "spark.log"):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    spark.pmlv_start_s = time.perf_counter() - started
    return spark


def image_frame(spark: SparkSession, paths, partitions: int = 2) -> DataFrame:
    """A DataFrame ``(path, image_b64, read_error)`` over ``partitions`` partitions."""
    frame = spark.createDataFrame([(str(p),) for p in paths], "path string")
    read = F.pandas_udf(b64files.read_b64, b64files.SPARK_TYPE)  # a light module for workers
    return frame.repartition(partitions).withColumn("file", read("path")).select("path", "file.*")


def split_dead_letters(explained: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Rows with ``read_error`` or the explainer's ``error`` -> ``(path, reason)``; the rest kept
    without those columns. ``""`` means no error (see the module doc)."""
    reason = F.coalesce(F.nullif("read_error", F.lit("")), F.nullif("error", F.lit("")))
    marked = explained.withColumn("reason", reason).drop("read_error", "error", "image_b64")
    good = marked.where(F.col("reason").isNull()).drop("reason")
    return good, marked.where(F.col("reason").isNotNull()).select("path", "reason")


def spark_explanations(
    spark: SparkSession, model_uri: str, paths, partitions: int = 2
) -> tuple[DataFrame, DataFrame]:
    """Explain image files with the logged explainer as a Spark UDF: ``(explained, dead_letter)``
    DataFrames (lazy: the first action, e.g. ``toPandas()``, runs the job; the rows are cached,
    so the other one reads them instead of explaining the images again)."""
    with quiet_pyfunc_warnings():
        explain = mlflow.pyfunc.spark_udf(
            spark, model_uri, env_manager="local", result_type=RESULT_TYPE
        ).asNondeterministic()  # once per row: not again for each field or for the filter
    frame = image_frame(spark, paths, partitions)
    out = frame.withColumn("x", explain(F.struct("image_b64"))).select(
        "path", "image_b64", "read_error", "x.*"
    )
    return split_dead_letters(out.persist())  # both results from one pass over the images
