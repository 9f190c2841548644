"""Component "chat": the Slack-compatible webhook sink the responder's notifications reach."""

from __future__ import annotations

import sys

from sandbox.net import free_port, port_open
from sandbox.stack import Stack, component

TOKEN_SECRET = "chat-webhook-token"
URL_SECRET = "chat-webhook-url"  # the receiver's webhook_url, as Slack's is: a secret


@component("chat")
def start_chat(stack: Stack) -> None:
    """Run the sink on a free port; write its webhook URL where the responder reads it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = stack.secret(TOKEN_SECRET)
    stack.spawn(
        "chat",
        [sys.executable, "-m", "sandbox.chat", "--port", str(port), "--token-file", str(token)],
        url=url,
        ready=lambda: port_open(port),
    )
    webhook = stack.secret(URL_SECRET)
    webhook.write_text(f"{url}/hooks/{token.read_text().strip()}\n")
