# GPU image for remote orchestrators and step operators (`remote.docker` in configs/*.yaml).
# The base brings a CUDA build of torch at requirements.txt's torch pin (the one torch
# version of the project; tests/unit/test_docker.py holds the tag to it). ZenML adds its
# stack requirements and the code on top.
FROM pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ZENML_ANALYTICS_OPT_IN=false

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the requirements change.
COPY requirements.txt .
# The base's CUDA torch (2.13.0+cuXXX) satisfies the pin `torch==2.13.0`: pip keeps it,
# and a requirement wanting another torch makes pip fail rather than swap in a CPU wheel.
# A base whose torch is not the pinned version stops the build here.
RUN python -c "import re, torch; pin = re.search(r'^torch==(\S+)', open('requirements.txt').read(), re.M)[1]; got = torch.__version__.split('+')[0]; assert got == pin, f'base image torch {got} != requirements.txt torch=={pin}'" \
    && pip install -r requirements.txt

# Code last: it changes most often. Configs are small and read by run.py.
COPY configs/ configs/
COPY materializers/ materializers/
COPY utils/ utils/
COPY steps/ steps/
COPY pipelines/ pipelines/
COPY run.py .
# The embedded ViGGO splits (dataset.source: embedded, the default; CC BY-SA 4.0, see its LICENSE.md).
COPY data/viggo/ data/viggo/

# No tokens here: HF_TOKEN comes from the environment or a ZenML secret at run time.
# No ENTRYPOINT: orchestrators and step operators start their own command in this image.
CMD ["python", "run.py", "--help"]
