# GPU image for remote orchestrators / step operators. The base brings a CUDA build of torch.
FROM pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    ZENML_ANALYTICS_OPT_IN=false

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the requirements change.
COPY requirements.txt .
# The base image's torch satisfies the pipeline; do not pull the CPU pin from requirements.
RUN grep -v '^torch==' requirements.txt > /tmp/req.txt \
    && pip install -r /tmp/req.txt \
    && rm /tmp/req.txt

COPY configs/ configs/
COPY utils/ utils/
COPY materializers/ materializers/
COPY steps/ steps/
COPY pipelines/ pipelines/
COPY run.py .

# No tokens here: HF_TOKEN comes from the environment or a ZenML secret at run time.
ENTRYPOINT ["python", "run.py"]
