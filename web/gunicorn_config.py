"""gunicorn's settings for `tawasul web serve` (`-c python:web.gunicorn_config`): the log format of
gunicorn's own logs and the app's, and forgetting an exited worker's metrics (web/metrics.py)."""
from __future__ import annotations

import os

from gunicorn import glogging

from tawasul import logs, settings as settings_module

_settings = settings_module.load()  # from the TAWASUL_* variables `web serve` set
logs.configure(_settings)  # the app's loggers, in the master and (forked) every worker


class Logger(glogging.Logger):
    """gunicorn's error and access logs, as JSON lines when log_format = "json"."""

    def setup(self, cfg):
        super().setup(cfg)
        if _settings.log_format == "json":
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(logs.JsonFormatter())


logger_class = Logger


def child_exit(_server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(worker.pid)
