"""Structured logs: JSON lines with round/run ids, plain text by default, nothing secret."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import subprocess
import sys
from pathlib import Path

import pytest

from fedgov.logging import REDACTED, JsonFormatter, ScrubFilter, logging_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def capture():
    """A logger wired exactly as settings wire the console handler, into a buffer."""
    created = []
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)

    def _capture(log_format: str):
        config = logging_config(log_format, "DEBUG")
        logging.config.dictConfig(
            {
                **config,
                "handlers": {
                    "buffer": {
                        **config["handlers"]["console"],
                        "stream": io.StringIO(),
                    }
                },
                "root": {"handlers": [], "level": "WARNING"},
                "loggers": {"fedgov.test": {"handlers": ["buffer"], "level": "DEBUG"}},
            }
        )
        logger = logging.getLogger("fedgov.test")
        logger.propagate = False
        created.append(logger)
        stream = logger.handlers[0].stream
        return logger, stream

    yield _capture
    for logger in created:
        logger.handlers.clear()
        logger.propagate = True
    # dictConfig replaced the root handlers; give the rest of the session its logging back.
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_json_line_carries_round_and_run_ids_from_extra(capture):
    logger, stream = capture("json")

    logger.warning("round %s approved", 7, extra={"round_id": 7, "run_id": 3, "site": "de-legal"})

    line = json.loads(stream.getvalue())
    assert line["message"] == "round 7 approved"
    assert (line["round_id"], line["run_id"], line["site"]) == (7, 3, "de-legal")
    assert line["level"] == "WARNING" and line["logger"] == "fedgov.test"
    assert line["ts"].endswith("+00:00")
    assert list(line)[4:6] == ["run_id", "round_id"]  # context right after the message


def test_json_line_without_extra_has_no_context_keys(capture):
    logger, stream = capture("json")

    logger.info("plain event")

    line = json.loads(stream.getvalue())
    assert "round_id" not in line and "run_id" not in line
    assert set(line) == {"ts", "level", "logger", "message", "where", "process"}


def test_one_json_object_per_line_even_with_a_traceback(capture):
    logger, stream = capture("json")

    try:
        raise RuntimeError("oned unreachable")
    except RuntimeError:
        logger.exception("provisioning failed", extra={"round_id": 9})
    logger.info("next")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["exc_type"] == "RuntimeError" and "oned unreachable" in first["exc"]
    assert first["round_id"] == 9


def test_credentials_and_pseudonyms_never_reach_the_json_line(capture):
    logger, stream = capture("json")

    logger.warning(
        "login with password=hunter2 token: abcd1234efgh and header Bearer eyJhbGciOi.xyz123",
        extra={
            "round_id": 1,
            "subject_pseudonym": "subj-000042",
            "excluded_pseudonyms": ["subj-000001"],
            "api_token": "t0k3n-secret",
            "detail": {"password": "p4ss", "zone": 2},
            "endpoint": "http://oneadmin:opennebula-pw@127.0.0.1:2633/RPC2",
        },
    )

    raw = stream.getvalue()
    for secret in (
        "hunter2",
        "abcd1234efgh",
        "eyJhbGciOi",
        "subj-000042",
        "subj-000001",
        "t0k3n-secret",
        "p4ss",
        "opennebula-pw",
    ):
        assert secret not in raw
    line = json.loads(raw)
    assert line["subject_pseudonym"] == REDACTED and line["excluded_pseudonyms"] == REDACTED
    assert line["detail"] == {"password": REDACTED, "zone": 2}
    assert line["round_id"] == 1
    assert "127.0.0.1:2633" in line["endpoint"]


def test_plain_text_stays_the_default_and_shows_extra_as_key_values(capture):
    logger, stream = capture(logging_config()["handlers"]["console"]["formatter"])

    logger.warning("round approved", extra={"round_id": 7, "run_id": 3, "secret_key": "x" * 12})

    text = stream.getvalue().strip()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert "WARNING fedgov.test round approved" in text
    assert "run_id=3 round_id=7" in text
    assert "x" * 12 not in text and f'secret_key="{REDACTED}"' in text


def test_scrub_filter_masks_secrets_in_formatted_args_for_every_format():
    record = logging.LogRecord(
        "fedgov.test", logging.INFO, __file__, 1, "connecting with %s", ("password=abc123",), None
    )

    assert ScrubFilter().filter(record) is True

    assert record.getMessage() == f"connecting with password={REDACTED}"
    assert "abc123" not in JsonFormatter().format(record)


@pytest.mark.parametrize(
    ("log_format", "level", "field"),
    [("yaml", "INFO", "LOG_FORMAT"), ("json", "LOUD", "LOG_LEVEL")],
)
def test_unknown_format_or_level_is_refused_with_the_setting_named(log_format, level, field):
    with pytest.raises(ValueError, match=field):
        logging_config(log_format, level)


def test_log_format_json_is_selected_from_the_environment(tmp_path):
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('fedgov.orchestrate').warning('gated', extra={'round_id': 5})"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "fedgov.settings",
        "FEDGOV_VAR_DIR": str(tmp_path),
        "LOG_FORMAT": "json",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    line = json.loads(done.stderr.strip().splitlines()[-1])
    assert (line["message"], line["round_id"], line["logger"]) == (
        "gated",
        5,
        "fedgov.orchestrate",
    )
