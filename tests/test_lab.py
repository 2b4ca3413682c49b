"""`make lab` serves JupyterLab with the database ready: the server answers with the
token it was given (and refuses without it), and notebook 00 runs on one of its kernels,
cell by cell, through the Jupyter server's own HTTP and websocket API."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import websocket  # type: ignore[import-untyped]

from dbkit.settings import PROJECT_ROOT
from tests.helpers import lab_api, running_lab

TOKEN = "course-test-token"


def api(port: int, path: str, method: str = "GET", token: str | None = TOKEN) -> dict:
    return lab_api(port, path, token, method)


@pytest.fixture(scope="module")
def lab() -> Iterator[int]:
    # a namespace of its own, so its databases cannot collide with nbval's notebook 00
    with running_lab(TOKEN, DBKIT_NAMESPACE=os.environ["DBKIT_NAMESPACE"] + "lab") as port:
        yield port
    # stopping it stopped JupyterLab too: nothing answers on the port any more
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        api(port, "/api/status")


def test_lab_answers_with_its_token_only(lab: int) -> None:
    assert "started" in api(lab, "/api/status")
    with pytest.raises(urllib.error.HTTPError) as err:
        api(lab, "/api/status", token=None)
    assert err.value.code == 403


def run_cell(ws: websocket.WebSocket, code: str) -> tuple[str, list[str]]:
    """Execute one cell; return ('ok' | 'error', the texts it printed)."""
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "test",
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": True,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
            }
        )
    )
    texts: list[str] = []
    status, idle = None, False
    # the reply (shell) and the outputs (iopub) come on different channels: the outputs
    # are complete when the kernel reports itself idle again
    while status is None or not idle:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "stream":
            texts.append(msg["content"]["text"])
        elif kind == "error":
            texts.append("\n".join(msg["content"]["traceback"]))
        elif kind == "execute_reply":
            status = msg["content"]["status"]
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            idle = True
    return status, texts


def test_notebook_00_runs_on_a_lab_kernel(lab: int) -> None:
    kernel = api(lab, "/api/kernels", method="POST")
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{lab}/api/kernels/{kernel['id']}/channels?token={TOKEN}", timeout=120
    )
    try:
        nb = nbformat.read(PROJECT_ROOT / "notebooks" / "00_setup.ipynb", as_version=4)
        # the lab's kernels start in the notebook's folder; a kernel opened through the
        # API starts at the root, so go where the notebook is first
        assert run_cell(ws, "import os; os.chdir('notebooks')")[0] == "ok"
        outputs = []
        for cell in (c for c in nb.cells if c.cell_type == "code"):
            status, texts = run_cell(ws, cell.source)
            assert status == "ok", "".join(texts)
            outputs.append("".join(texts))
        assert outputs[-1].startswith("exercise ok")
    finally:
        ws.close()


def test_the_lab_keeps_state_of_its_own_and_no_news_pop_up(tmp_path: Path) -> None:
    # the user's other labs left tabs open: a notebook that is not this course's
    home = tmp_path / "home"
    workspaces = home / ".jupyter" / "lab" / "workspaces"
    workspaces.mkdir(parents=True)
    polluted = {
        "data": {"notebook:elsewhere.ipynb": {"data": {"path": "elsewhere.ipynb"}}},
        "metadata": {"id": "default"},
    }
    (workspaces / "default-37a8.jupyterlab-workspace").write_text(json.dumps(polluted))
    with running_lab(TOKEN, HOME=str(home)) as port:
        workspace = api(port, "/lab/api/workspaces/default")
        assert "elsewhere.ipynb" not in json.dumps(workspace)
        news = api(port, "/lab/api/settings/@jupyterlab/apputils-extension:notification")
        assert news["settings"]["fetchNews"] == "false"
