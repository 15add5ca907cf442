"""The application factory."""

from importlib.metadata import version

from bedel.app import create_app


class TestVersion:
    def test_the_api_reports_the_installed_package_version(self) -> None:
        assert create_app().openapi()["info"]["version"] == version("bedel")
