"""deploy/Dockerfile, checked without a Docker engine: hadolint, and the paths it copies."""

import shlex
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1]) for line in lines]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


class TestDockerfile:
    @pytest.mark.slow  # runs hadolint
    def test_hadolint_finds_nothing(self) -> None:
        hadolint = Path(sys.executable).parent / "hadolint"
        result = subprocess.run([hadolint, "--no-color", DOCKERFILE], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_every_copied_path_exists_and_reaches_the_builder(self) -> None:
        ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
        admitted = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
        sources = [
            source
            for op, args in instructions()
            if op == "COPY" and "--from=" not in args
            for source in shlex.split(args)[:-1]
        ]
        assert sources
        for source in sources:
            assert (ROOT / source).exists(), source
            assert any(fnmatch(source, pattern) for pattern in admitted), f"{source} is left out by the .dockerignore"

    def test_final_stage_runs_bedel_unprivileged_as_pid_1_with_a_healthcheck(self) -> None:
        steps = dict(final_stage())
        assert steps["USER"].split(":")[0] not in ("root", "0")
        assert steps["ENTRYPOINT"] == '["bedel"]'  # exec form: SIGTERM reaches bedel itself
        assert "/healthz" in steps["HEALTHCHECK"]
        assert not any(op == "RUN" and ("apt-get" in args or "gcc" in args) for op, args in final_stage())
