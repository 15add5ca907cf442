"""The index every replica holds: its build process and its folder, through the real app."""

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bedel.config import Settings
from tests.knowledge.test_endpoints import markdown, search, upload


class TestBuildProcess:
    async def test_a_build_process_that_died_is_replaced(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        app_client = make_client(make_settings())
        async with app_client as client:
            await upload(client, markdown("pagos.md", "# Pagos\n\nEl recargo es del 10 % del importe."))
            builder = app_client.app.state.bedel.knowledge._builder
            for process in list(builder._processes.values()):
                os.kill(process.pid, signal.SIGKILL)
                process.join()

            added = await upload(client, markdown("biblioteca.md", "# Biblioteca\n\nPrestamos de cinco libros."))
            found = await search(client, "prestamo de libros en la biblioteca")

        assert added.json()["added"] == 1
        assert found and found[0]["title"] == "Biblioteca"


class TestIndexFolder:
    async def test_folders_it_did_not_write_are_left_alone(
        self, client: httpx.AsyncClient, make_settings: Callable[..., Settings]
    ) -> None:
        index_dir: Path = make_settings().knowledge_index_dir
        (index_dir / "respaldos").mkdir(parents=True)
        (index_dir / "respaldos" / "importante.txt").write_text("no borrar")

        await upload(client, markdown("pagos.md", "# Pagos\n\nEl recargo es del 10 % del importe."))
        await upload(client, markdown("pagos.md", "# Pagos\n\nEl recargo es del 12 % del importe."))

        assert (index_dir / "respaldos" / "importante.txt").read_text() == "no borrar"
        assert len([p for p in index_dir.iterdir() if not p.name.startswith(".")]) == 2

    async def test_when_the_index_cannot_be_saved_the_previous_one_keeps_serving(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings], tmp_path: Path
    ) -> None:
        index_dir = tmp_path / "indices"
        async with make_client(make_settings(knowledge_index_dir=index_dir)) as client:
            await upload(client, markdown("pagos.md", "# Pagos\n\nEl recargo es del 10 % del importe."))
            # The folder becomes a file: nothing can be saved there any more (even as root).
            index_dir.rename(tmp_path / "apartado")
            index_dir.write_text("")
            await upload(client, markdown("biblioteca.md", "# Biblioteca\n\nPrestamos de cinco libros."))
            found = await search(client, "recargo del importe")
            missing = await search(client, "prestamos de libros en la biblioteca")

        assert missing == []
        assert found and found[0]["title"] == "Pagos"
