"""The investigation's pure core: what is gathered (``gathering``, ``signals``, ``breakdowns``,
``diffs``, ``config_memory``: data the adapters fill and may import) and what is concluded from it
(``analysis``: decisions, which the adapters may not import)."""
