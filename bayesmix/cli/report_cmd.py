"""`bayesmix report`: not available yet."""

from .common import not_available


def add_parser(sub):
    p = sub.add_parser("report", help="(not available yet)", description="Not available yet.")
    p.set_defaults(func=not_available("report", "planned"))
    return p
