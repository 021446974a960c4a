# One image for every component and the RQ dashboard; the command picks which:
#   python -m watcher | registrar | heartbeater | deveureka,  rq-dashboard
# Built by `make images` (scripts/images.py), which puts the wheels of the pinned dependencies
# (constraints.txt) in wheels/ and the project's own in project/: nothing is downloaded while building.
# BASE_IMAGE: any image with Python 3.11 and its venv module (the wheels are built for 3.11).
ARG BASE_IMAGE=local/python-base:bookworm

FROM ${BASE_IMAGE} AS install
COPY wheels /wheels
RUN python3 -m venv /venv && /venv/bin/pip install --no-cache-dir --no-index --no-deps /wheels/*.whl
COPY project /project
RUN /venv/bin/pip install --no-cache-dir --no-index --find-links /project --find-links /wheels \
        'eureka-registrator[dashboard]'

FROM ${BASE_IMAGE} AS runtime
COPY --from=install /venv /venv
RUN groupadd --system --gid 10001 registrator \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin registrator
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1
# Not root; only the watcher is run as root, for the Docker socket.
USER 10001:10001

# The dev Eureka, listening on all interfaces at 8080 (where Netflix's Eureka image listens too).
FROM runtime AS dev-eureka
ENV DEVEUREKA_HOST=0.0.0.0 DEVEUREKA_PORT=8080
EXPOSE 8080
CMD ["python", "-m", "deveureka"]

FROM runtime AS registrator
CMD ["python", "-m", "registrar"]
