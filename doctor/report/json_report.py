"""``--output json``: one document on stdout, schema docs/schema/report-v1.json."""
from __future__ import annotations

import orjson

from . import RunReport


def render(report: RunReport) -> str:
    return orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
