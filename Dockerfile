# syntax=docker/dockerfile:1
#
# Two images from one file:
#   docker build --target web    -t scanqueue/web .     # Flask/gunicorn + migrations: .[web]
#   docker build --target worker -t scanqueue/worker .  # Celery workers/beat/Flower: .[web,worker]
# The web image deliberately carries no TensorFlow: it validates, stores and enqueues only.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A fixed non-root uid so the shared media volume has one owner across all containers.
RUN useradd --create-home --uid 10001 --user-group scanqueue \
    && mkdir -p /data/media /app/instance \
    && chown scanqueue:scanqueue /data/media /app/instance
WORKDIR /app
COPY pyproject.toml ./

# Dependencies only, read from pyproject.toml, so this layer is rebuilt when the pins change and
# not on every code change.
FROM base AS deps-web
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p.get('dependencies', []) + p['optional-dependencies']['web']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# The pinned `tensorflow` from pip has no CUDA libraries; `tensorflow[and-cuda]` (same version)
# pulls NVIDIA's wheels so the gpu worker can use the card the compose file reserves. Build with
# --build-arg TF_EXTRA= for a smaller CPU-only image.
FROM deps-web AS deps-worker
ARG TF_EXTRA=and-cuda
RUN python -c "import os, re, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
x = os.environ.get('TF_EXTRA'); \
print('\n'.join(re.sub(r'^tensorflow(?=[=<>~!; ]|$)', f'tensorflow[{x}]', r) if x else r \
for r in p['optional-dependencies']['worker']))" > /tmp/requirements-worker.txt \
    && pip install -r /tmp/requirements-worker.txt

# Editable install of the code itself: core/config.py derives PROJECT_ROOT from its own path,
# so the package must live in /app, next to migrations/, not in site-packages.
# Both runtime images are production unless told otherwise: settings then refuse a default
# SECRET_KEY or PUBLIC_URL, so a forgotten variable stops start-up instead of running as dev.
FROM deps-web AS web
ENV SCANQUEUE_ENV=production
# Metrics of every gunicorn process, summed at GET /metrics (README "Metrics").
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/scanqueue-metrics
COPY . .
RUN pip install --no-deps -e . && chown -R scanqueue:scanqueue /app/instance
USER scanqueue
EXPOSE 8000
# Sync processes, counts and limits from deploy/gunicorn.conf.py; meant to sit behind nginx.
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "webapp:create_app()"]

FROM deps-worker AS worker
ENV SCANQUEUE_ENV=production
# Each worker node serves its pool processes' metrics on WORKER_METRICS_PORT (9808), on every
# interface of its container: reachable on the private network only, never published.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/scanqueue-metrics WORKER_METRICS_BIND=0.0.0.0
COPY . .
RUN pip install --no-deps -e . && chown -R scanqueue:scanqueue /app/instance
USER scanqueue
CMD ["celery", "-A", "workers.celery_app", "worker", "-Q", "cpu", "--loglevel", "INFO"]
