"""A report as sections of HTML text and figures, written as one self-contained HTML file
or as PNG files."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from .._files import atomic_path, write_text_atomic
from ..errors import UsageError
from .figures import png_bytes
from .layout import CSS


@dataclass
class Section:
    """One section of the report.

    Attributes
    ----------
    id : str
        HTML id of the section (one of :data:`SECTIONS`).
    title : str
    body : str
        HTML text (tables, paragraphs), already escaped.
    figures : list of (name, Figure, caption)
        matplotlib figures, drawn in order after ``body``.
    omitted : str or None
        When set, the section's input was not given: the one-line note shown instead.
    """

    id: str
    title: str
    body: str = ""
    figures: list = field(default_factory=list)
    omitted: str | None = None


@dataclass
class Report:
    """A rendered report: sections with HTML text and figures.

    Use :func:`build_report` to create one.
    """

    title: str
    sections: list
    meta: dict = field(default_factory=dict)

    def section(self, section_id: str) -> Section:
        """The section with id ``section_id`` (KeyError if there is none)."""
        return {sec.id: sec for sec in self.sections}[section_id]

    def figure_names(self) -> list:
        """``<section>-<name>`` of every figure, in order."""
        return [f"{sec.id}-{name}" for sec in self.sections for name, _, _ in sec.figures]

    def to_html(self) -> str:
        """The report as one HTML document with the figures embedded as base64 PNG."""
        parts = [
            "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
            f"<title>{html.escape(self.title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
            f"<h1>{html.escape(self.title)}</h1>",
            f'<p class="meta">{html.escape(self.meta.get("generated", ""))}</p>',
            '<nav><ul>' + "".join(f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>' for s in self.sections)
            + "</ul></nav>",
        ]
        for sec in self.sections:
            cls = ' class="omitted"' if sec.omitted else ""
            parts.append(f'<section id="{sec.id}"{cls}>')
            parts.append(f"<h2>{html.escape(sec.title)}</h2>")
            if sec.omitted:
                parts.append(f'<p class="note">{html.escape(sec.omitted)}</p>')
            else:
                parts.append(sec.body)
                for name, fig, caption in sec.figures:
                    data = base64.b64encode(png_bytes(fig)).decode("ascii")
                    parts.append(
                        f'<figure id="fig-{sec.id}-{name}"><img src="data:image/png;base64,{data}" '
                        f'alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'
                    )
            parts.append("</section>")
        parts += ["</body>", "</html>"]
        return "\n".join(parts)

    def write_html(self, path) -> Path:
        """Write :meth:`to_html` to ``path`` atomically (folders created as needed)."""
        return write_text_atomic(path, self.to_html())

    def write_pngs(self, folder) -> list:
        """Write every figure as ``<folder>/<section>-<name>.png``; returns the paths."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder}: exists and is not a folder; --format png writes the figures into a folder")
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for sec in self.sections:
            for name, fig, _ in sec.figures:
                path = folder / f"{sec.id}-{name}.png"
                with atomic_path(path) as tmp:
                    Path(tmp).write_bytes(png_bytes(fig))
                paths.append(path)
        return paths
