import json

import pytest
import structlog

from bedel.ops.logging import configure_logging


class TestLogLines:
    def test_phones_are_masked_in_every_field(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging()
        try:
            structlog.get_logger().info(
                "request", path="/students/+525512345678", note="llamó 55 1234 5678 el 2026-11-29"
            )
        finally:
            structlog.reset_defaults()

        line = json.loads(capsys.readouterr().err.strip())
        assert line["path"] == "/students/+52******5678"
        assert "1234 5678" not in line["note"]
        assert "5512345678" not in json.dumps(line)
        assert line["note"].endswith("el 2026-11-29")
        assert line["timestamp"].startswith("20") and "*" not in line["timestamp"]

    def test_exception_lines_are_masked_and_ids_left_alone(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging()
        try:
            try:
                raise ValueError("duplicate phone +525512345678")
            except ValueError:
                structlog.get_logger().exception("failed", thread_id="123e4567-e89b-12d3-a456-426614174000")
        finally:
            structlog.reset_defaults()

        line = json.loads(capsys.readouterr().err.strip())
        assert "+525512345678" not in line["exception"]
        assert "+52******5678" in line["exception"]
        assert line["thread_id"] == "123e4567-e89b-12d3-a456-426614174000"
