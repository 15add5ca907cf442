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
