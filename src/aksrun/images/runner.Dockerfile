# The aksrun runner image: this exact aksrun (a wheel built from the client into the context),
# cloudpickle pinned to the client's version, and a non-root user whose HOME and work dir are
# where the Job mounts its writable emptyDirs (the root filesystem is read-only in the pod).
#
# BASE defaults to Microsoft's mirror of the Docker official python image on MCR: ACR Tasks
# agents share egress IPs, and Docker Hub's anonymous pull limit is per IP, so builds that pull
# from Docker Hub fail at random with "toomanyrequests". The MCR mirror has no such limit.
ARG BASE=mcr.microsoft.com/mirror/docker/library/python:3.11-slim
FROM ${BASE}

# A private package feed (Azure Artifacts, a proxy) reaches pip through these, never through
# the context. Values passed as build arguments are visible in the run's log: no tokens here.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG AKSRUN_VERSION
ARG AKSRUN_PYTHON

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY wheels/ /tmp/aksrun-wheels/
# A venv, not the system interpreter: Debian-based images mark their Python as externally
# managed (PEP 668), and a venv keeps aksrun's pins apart from whatever the base ships.
RUN python3 -m venv /opt/aksrun \
 && /opt/aksrun/bin/pip install --find-links /tmp/aksrun-wheels \
        --constraint /tmp/aksrun-wheels/constraints.txt \
        "aksrun[runner]==${AKSRUN_VERSION}" \
 && rm -rf /tmp/aksrun-wheels \
 && /opt/aksrun/bin/python -c "import sys, aksrun, cloudpickle; \
assert '%d.%d' % sys.version_info[:2] == '${AKSRUN_PYTHON}', \
'base image has Python %d.%d, the client has ${AKSRUN_PYTHON}' % sys.version_info[:2]; \
print('aksrun', aksrun.__version__, 'cloudpickle', cloudpickle.__version__, 'python', sys.version.split()[0])"

RUN (getent group 1000 >/dev/null || groupadd --gid 1000 aksrun) \
 && (getent passwd 1000 >/dev/null || useradd --uid 1000 --gid 1000 --no-create-home \
        --home-dir /home/aksrun --shell /usr/sbin/nologin aksrun) \
 && mkdir -p /home/aksrun /work \
 && chown 1000:1000 /home/aksrun /work

ENV PATH=/opt/aksrun/bin:$PATH \
    HOME=/home/aksrun
WORKDIR /work
USER 1000:1000
LABEL io.aksrun.python="${AKSRUN_PYTHON}" \
      io.aksrun.version="${AKSRUN_VERSION}" \
      io.aksrun.requirements="[]"
ENTRYPOINT ["python", "-m", "aksrun.runner"]
