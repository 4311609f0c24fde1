"""streamlens-dist: exact, chunked inter-arrival analysis of flight-test captures on Dask."""

from __future__ import annotations

__version__ = "0.1.0"

from .api import Summary, analyze  # noqa: E402
from .reader import CampaignResults, Results, open_results  # noqa: E402

__all__ = ["CampaignResults", "Results", "Summary", "__version__", "analyze", "open_results"]
