"""What every kind of background job shares: the worker's context and the handler signature.

Job modules (`app/<domain>/jobs.py`) import these from here, never from `app.worker`, so the
worker can import the job modules without an import cycle.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from app.core.config import Settings


@dataclass
class WorkerContext:
    engine: Engine
    settings: Settings
    worker_id: str
    stop: threading.Event


JobHandler = Callable[[WorkerContext], bool]


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"
