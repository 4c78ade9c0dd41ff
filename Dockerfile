# The course image: runs the notebooks, the kfp components (base_image) and the model server.
# It cannot be built on the project's development machines (no Docker engine there); it installs
# exactly what `make` installs: requirements.txt, then the pmlv_utils package.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=2
RUN apt-get update && apt-get install -y --no-install-recommends make git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src/practical-ml-vision-book
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY . .
RUN pip install --no-deps -e .

# One image, three uses:
#  - JupyterLab (the default CMD). Inside a container it must listen beyond loopback to be
#    reachable; publish the port to the host's loopback only: docker run -p 127.0.0.1:8888:8888 IMAGE
#  - the kfp components' base_image (pmlv_utils.pipeline runs `python -m pmlv_utils...` in it);
#  - the model server (KServe / Vertex custom container), with the SavedModel mounted at /model:
#      docker run -p 127.0.0.1:8080:8080 -v $PWD/export:/model:ro IMAGE \
#        python -m pmlv_utils.serving --model_dir /model --host 0.0.0.0 --port 8080 --allowed_root /data
#    On Vertex, AIP_HTTP_PORT, AIP_PREDICT_ROUTE, AIP_HEALTH_ROUTE and AIP_STORAGE_URI are read.
EXPOSE 8888 8080
CMD ["jupyter", "lab", "--ip", "0.0.0.0", "--port", "8888", "--no-browser", "--allow-root"]
