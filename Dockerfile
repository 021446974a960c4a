# One image for every component; the command picks the component (python -m watcher|registrar|heartbeater|deveureka).
# BASE_IMAGE needs Python 3.11+. Where no registry is reachable, build one with debootstrap (see ../shared/TESTING.md
# of the project notes) and pass --build-arg BASE_IMAGE=local/python-base.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
WORKDIR /app
COPY pyproject.toml ./
COPY shared ./shared
COPY watcher ./watcher
COPY registrar ./registrar
COPY heartbeater ./heartbeater
COPY deveureka ./deveureka
RUN python3 -m venv /venv && /venv/bin/pip install --no-cache-dir .
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1
USER nobody
CMD ["python", "-m", "registrar"]
