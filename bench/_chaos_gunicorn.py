"""gunicorn settings for `bench chaos`'s replicas: the responder's own
(responder/gunicorn_conf.py), with the third-party libraries every worker imports loaded
once in the master. Each worker forks with them already there, so a replica a schedule
starts, or a worker it killed, answers about two seconds sooner on a loaded machine
(pydo alone takes a second to import). None of the responder's own modules is loaded
before the fork: its metrics, stores and threads are still made in each worker.
"""

from __future__ import annotations

import azure.core  # noqa: F401
import boto3  # noqa: F401
import flask  # noqa: F401
import pydo  # noqa: F401

from responder.gunicorn_conf import *  # noqa: F403
from responder.gunicorn_conf import child_exit, on_starting, post_worker_init, worker_exit

__all__ = ["child_exit", "on_starting", "post_worker_init", "worker_exit"]
