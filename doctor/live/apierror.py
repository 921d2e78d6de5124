"""The words a Google API answered with, for one-line error messages.

google-api-core wraps an HTTP error as ``GoogleAPICallError`` whose ``str()`` carries the method, the
URL and the whole JSON body; what the user needs is the body's ``error.message`` (e.g. "<email> does
not have storage.objects.create access to the Google Cloud Storage object"). One helper for every
caller that turns such an error into a line: the remote-logging probe and the ``gs://`` report
upload/read.
"""
from __future__ import annotations

import json
import re

_MESSAGE = re.compile(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"')


def api_message(e: BaseException) -> str:
    """The API's own error message (the JSON body's error.message), not the client's wrapping."""
    resp = getattr(e, "response", None)
    try:
        body = resp.json() if resp is not None else None
        msg = body.get("error", {}).get("message") if isinstance(body, dict) else None
        if isinstance(msg, str) and msg.strip():
            return msg.strip()
    except Exception:  # noqa: BLE001 - not JSON
        pass
    text = (getattr(e, "message", None) or str(e)).strip()
    m = _MESSAGE.search(text)
    return json.loads(f'"{m.group(1)}"') if m else text
