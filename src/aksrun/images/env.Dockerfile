# A dependency image: a runner image plus one function's `requirements=`. Built FROM the
# runner by digest, so it carries exactly the aksrun and cloudpickle the client expects; the
# constraints keep a requirement from replacing either (pip then fails with the conflict).
ARG RUNNER
FROM ${RUNNER}

ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG AKSRUN_REQUIREMENTS

COPY requirements.txt constraints.txt /tmp/aksrun-env/
USER 0:0
RUN python -m pip install --requirement /tmp/aksrun-env/requirements.txt \
        --constraint /tmp/aksrun-env/constraints.txt \
 && rm -rf /tmp/aksrun-env
USER 1000:1000
LABEL io.aksrun.requirements="${AKSRUN_REQUIREMENTS}"
