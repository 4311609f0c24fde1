"""Stage 2: per-frame dissection and the classification ladder (CONTRACT.md §2-§3).

One protocol per module, each returning a small record or None; `classify` dispatches
through them in ladder order.
"""
