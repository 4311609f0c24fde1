"""Campaigns: many captures (tails x flights) analysed into one store, incrementally.

manifest (which captures) -> identity (did they change) -> run (analyse what is new, commit
each capture atomically) -> fleet (pooled tables from per-capture summaries) -> cstore (the
campaign store layout).
"""
