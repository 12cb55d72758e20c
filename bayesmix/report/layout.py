"""The report's layout: its sections, limits, print-friendly series styles and CSS."""

SECTIONS = (
    ("overview", "Fit overview"),
    ("data", "Data summary"),
    ("diagnostics", "Sampler diagnostics"),
    ("ppc", "Posterior predictive check"),
    ("scaling", "Loss against model size and tokens"),
    ("recommendation", "Recommended mixture"),
    ("comparison", "Law comparison"),
    ("next", "Next runs (acquisition ranking)"),
)

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
#: Greys for series that also differ by marker/line style (colour is never the only cue).
GREYS = ("0.0", "0.35", "0.55", "0.2", "0.45", "0.65")

#: Rank plots show at most this many parameters (those with the highest R-hat).
MAX_RANK_PANELS = 12
#: The diagnostics table lists at most this many parameters (worst R-hat first).
MAX_TABLE_ROWS = 40

#: The page's style sheet.
CSS = """
body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;color:#111;line-height:1.4}
h1{border-bottom:2px solid #111}h2{border-bottom:1px solid #999;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #999;padding:3px 8px;text-align:right}th{background:#eee}
td.text,th.text{text-align:left}
figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}figcaption{font-size:0.9em;color:#333}
.note{font-style:italic;color:#444}.warn{font-weight:bold}.meta{color:#555}
nav ul{columns:2}
"""
