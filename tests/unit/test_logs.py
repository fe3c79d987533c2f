"""log_format: a setting checked when loaded; json gives one JSON object a line, with extra fields."""
import dataclasses
import io
import json
import logging

import pytest

from tawasul import logs, settings as settings_module
from tawasul.settings import Settings, SettingsError


def test_log_format_must_be_text_or_json():
    assert settings_module.load(environ={"TAWASUL_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(SettingsError, match="log_format: expected text or json"):
        settings_module.load(environ={"TAWASUL_LOG_FORMAT": "xml"})


def test_a_json_line_has_time_level_logger_message_extras_and_the_exception():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter(dataclasses.replace(Settings(), log_format="json")))
    logger = logging.getLogger("tawasul.test_logs")
    logger.addHandler(handler)
    try:
        logger.warning("مكالمة %s رُفضت", "PJSIP/x", extra={"endpoint": "centre-bdr-1"})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed\nacross lines")
    finally:
        logger.removeHandler(handler)
    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["message"] == "مكالمة PJSIP/x رُفضت" and first["level"] == "WARNING"
    assert first["logger"] == "tawasul.test_logs" and first["endpoint"] == "centre-bdr-1"
    assert first["time"].endswith("+00:00")
    assert second["message"] == "failed\nacross lines" and "ValueError: boom" in second["exception"]
