# GPU image for remote orchestrators and step operators (`remote.docker` in configs/*.yaml).
# The base brings a CUDA build of torch; ZenML adds its stack requirements and the code on top.
FROM pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ZENML_ANALYTICS_OPT_IN=false

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the requirements change.
COPY requirements.txt .
# The base image's CUDA torch serves the pipeline: drop the CPU pin, and hold torch at the
# base's version so that no requirement can replace it with a CPU wheel (pip fails instead).
RUN grep -v '^torch==' requirements.txt > /tmp/requirements.txt \
    && python -c "import torch; print(f'torch=={torch.__version__}')" > /tmp/constraints.txt \
    && pip install -r /tmp/requirements.txt -c /tmp/constraints.txt \
    && rm /tmp/requirements.txt /tmp/constraints.txt

# Code last: it changes most often. Configs are small and read by run.py.
COPY configs/ configs/
COPY materializers/ materializers/
COPY utils/ utils/
COPY steps/ steps/
COPY pipelines/ pipelines/
COPY run.py .

# No tokens here: HF_TOKEN comes from the environment or a ZenML secret at run time.
# No ENTRYPOINT: orchestrators and step operators start their own command in this image.
CMD ["python", "run.py", "--help"]
