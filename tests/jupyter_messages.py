"""A value from a Jupyter kernel over its WebSocket channel (messaging protocol 5.3),
for the session tests behind the local and the Slurm proxy."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable


def evaluate(send: Callable[[str], object], receive: Callable[[], str],
             expression: str) -> str:
    """``expression`` evaluated in the kernel, read from the execute_reply on the shell
    channel (user_expressions): a new connection may miss a fresh kernel's first iopub
    messages (prints), never its replies. ``send``/``receive`` are the WebSocket
    client's text calls (websockets' or Starlette's test client)."""
    msg_id = uuid.uuid4().hex
    send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "t",
                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": "import os", "silent": False, "store_history": False,
                    "user_expressions": {"v": expression}, "allow_stdin": False,
                    "stop_on_error": True},
    }))
    while True:
        msg = json.loads(receive())
        if (msg["msg_type"] == "execute_reply"
                and msg.get("parent_header", {}).get("msg_id") == msg_id):
            value = msg["content"]["user_expressions"]["v"]
            assert value["status"] == "ok", value
            return str(value["data"]["text/plain"]).strip("'")
