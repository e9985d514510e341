"""Reports: one record per claim x target, plus the environment that produced them."""
from __future__ import annotations

from icltest.report.build import build_report, environment, terminal_lines
from icltest.report.html import render_html, write_html
from icltest.report.markdown import render_markdown, write_markdown
from icltest.report.json import write_json

__all__ = ["build_report", "environment", "terminal_lines", "render_markdown", "write_markdown", "write_json",
           "render_html", "write_html"]
