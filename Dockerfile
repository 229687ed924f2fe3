# The project's image: workers, starter.py and the REST API (docker-compose.yml runs each
# with its own command). qemu-img sizes the file backend's raw/qcow2 images; Debian's
# python3-rados and python3-rbd are the rbd driver's librados/librbd bindings (not on PyPI,
# built for Debian's python3: bookworm's is 3.11, as this image's, hence the pinned Debian;
# they are linked into it below by the rule scripts/setup.sh uses for .venv). g++ and
# libradospp-dev build the rbd driver's helper that reads image headers without opening the
# images (volume_manage/drivers/rbd_fastpath.py), as scripts/setup.sh does; g++ is removed
# after the build.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends qemu-utils python3-rados python3-rbd \
       g++ libradospp-dev \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . .
RUN pip install . \
    && python -m volume_manage.operations.cephbindings --require \
    && python -m volume_manage.drivers.rbd_fastpath --build --require \
    && apt-get purge -y --auto-remove g++ \
    && useradd --system --uid 10001 --home-dir /app volume-manage \
    && mkdir -p /srv/volumes /app/data \
    && chown volume-manage /srv/volumes /app/data

# A named volume mounted on /srv/volumes starts with this owner, so the file driver can
# rename images in it without root.
USER volume-manage
EXPOSE 8776 9464
CMD ["python", "worker.py", "--help"]
