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

# Default: JupyterLab. Inside a container it must listen beyond loopback to be reachable;
# publish the port only to the host (docker run -p 127.0.0.1:8888:8888 ...).
EXPOSE 8888 8080
CMD ["jupyter", "lab", "--ip", "0.0.0.0", "--port", "8888", "--no-browser", "--allow-root"]
