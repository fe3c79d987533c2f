# Tawasul's processes (web, FastAGI, call watcher, SMS sender, the migrate step): Debian 12's Python
# with the Tawasul wheel in a venv, running as `tawasul`. Built by build-images.sh (the wheels come
# from its build context: no package index is used here).
ARG BASE
FROM $BASE
# espeak-ng and sox make the prompts and the waiting music; openssl the certificates; the
# PostgreSQL client is what `tawasul backup` uses (pg_dump).
RUN apt-get update \
 && apt-get install -y python3 python3-venv espeak-ng sox openssl ca-certificates postgresql-client \
 && rm -rf /var/lib/apt/lists/*
COPY wheels /tmp/wheels
RUN python3 -m venv /opt/tawasul \
 && /opt/tawasul/bin/pip install --quiet --no-index --find-links /tmp/wheels tawasul \
 && rm -rf /tmp/wheels /root/.cache
COPY tawasul-container /usr/local/bin/tawasul-container
# The state folder and Asterisk's instance folder are volumes (docker/compose.yaml).
RUN install -d -o tawasul -g tawasul -m 0700 /var/lib/tawasul \
 && install -d -o tawasul -g asterisk -m 0750 /srv/tawasul-asterisk
ENV PATH=/opt/tawasul/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    TAWASUL_STATE_DIR=/var/lib/tawasul \
    TAWASUL_ASTERISK_INSTANCE=/srv/tawasul-asterisk
USER tawasul
WORKDIR /var/lib/tawasul
ENTRYPOINT ["/usr/local/bin/tawasul-container"]
CMD ["web", "serve"]
