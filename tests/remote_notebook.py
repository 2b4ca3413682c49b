"""Run a notebook on a kernel of a remote Jupyter server (here: a learner's server behind
JupyterHub), through the server's REST API and the kernel's websocket, and check every
cell as nbval does in strict mode: nbval's own markers, sanitizing and comparison code,
with the project's sanitize file (tests/sanitize.cfg)."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections import OrderedDict, defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import websocket  # type: ignore[import-untyped]
from nbval import plugin as nbval

from dbkit.settings import PROJECT_ROOT

SANITIZE = PROJECT_ROOT / "tests" / "sanitize.cfg"
# what nbval leaves out of a comparison by default (IPyNbFile.skip_compare, no nbdime)
SKIP_COMPARE = (
    *("metadata", "traceback", "prompt_number", "output_type", "name", "execution_count"),
    *("application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg"),
)


class _Compare:
    """Just enough of an nbval cell item to call nbval's comparison on it."""

    colors = nbval.nocolors
    compare_outputs = nbval.IPyNbCell.compare_outputs
    sanitize = nbval.IPyNbCell.sanitize
    format_output_compare = nbval.IPyNbCell.format_output_compare

    def __init__(self) -> None:
        patterns = OrderedDict(nbval.get_sanitize_patterns(SANITIZE.read_text()))
        self.parent = SimpleNamespace(sanitize_patterns=patterns, skip_compare=SKIP_COMPARE)
        self.comparison_traceback: list[str] = []


class RemoteKernel:
    """A kernel started through a Jupyter server's sessions API (as JupyterLab opens a
    notebook: the kernel's working directory is the notebook's folder)."""

    def __init__(self, base: str, token: str, notebook_path: str, timeout: float = 120) -> None:
        self.base, self.token = base, token  # base: http://host:port/user/<name>
        session = self._api(
            "POST",
            "/api/sessions",
            {
                "path": notebook_path,
                "name": Path(notebook_path).name,
                "type": "notebook",
                "kernel": {"name": "python3"},
            },
        )
        self.session_id, self.kernel_id = session["id"], session["kernel"]["id"]
        ws_base = base.replace("http://", "ws://", 1)
        self.ws = websocket.create_connection(
            f"{ws_base}/api/kernels/{self.kernel_id}/channels",
            header=[f"Authorization: token {token}"],
            timeout=timeout,
        )

    def _api(self, method: str, path: str, body: dict | None = None) -> Any:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def execute(self, code: str) -> list[nbformat.NotebookNode]:
        """Run one cell; its outputs as nbformat outputs, in the order they came."""
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "test"}
        header |= {"session": uuid.uuid4().hex, "version": "5.3"}
        content = {"code": code, "silent": False, "store_history": True}
        content |= {"user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        self.ws.send(json.dumps({**message, "channel": "shell"}))
        outputs: list[nbformat.NotebookNode] = []
        replied = idle = False
        while not (replied and idle):
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, body = msg["msg_type"], msg["content"]
            if kind == "execute_reply":
                replied = True
            elif kind == "status":
                idle = body["execution_state"] == "idle"
            elif kind in ("stream", "display_data", "execute_result", "error"):
                outputs.append(nbformat.v4.output_from_msg(msg))
        return outputs

    def close(self) -> None:
        self.ws.close()
        self._api("DELETE", f"/api/sessions/{self.session_id}")  # ends the kernel too


def check_notebook(kernel: RemoteKernel, notebook: Path) -> list[str]:
    """Run every code cell of `notebook` on `kernel`; return nbval's complaints (an empty
    list: every cell ran, and every checked output matched the stored one)."""
    nb = nbformat.read(notebook, as_version=4)
    problems: list[str] = []
    for number, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        options: defaultdict[str, bool] = defaultdict(bool, nbval.find_metadata_tags(cell.metadata))
        options.update(dict(nbval.find_comment_markers(cell.source)))
        options.setdefault("check", True)  # strict, as --nbval
        if options["skip"]:
            continue
        outs = kernel.execute(cell.source)
        where = f"{notebook.name} cell {number}"
        errors = [o for o in outs if o.output_type == "error"]
        if errors and not options["check_exception"]:
            problems.append(f"{where} raised {errors[0].ename}: {errors[0].evalue}")
            break  # as nbval: the notebook's later cells depend on this one
        if options["check"] and cell.execution_count is not None:
            compare = _Compare()
            stored = nbval.coalesce_streams([nbformat.from_dict(o) for o in cell.outputs])
            if not compare.compare_outputs(nbval.coalesce_streams(outs), stored):
                problems.append(
                    f"{where} outputs differ:\n" + "\n".join(compare.comparison_traceback)
                )
    return problems
