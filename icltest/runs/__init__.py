"""The run layer: one metric on one input set under a list of interventions, cached.

``metrics`` is the one table of metrics (torch-free: the schema and the CLI read it); ``run``
holds :class:`~icltest.runs.run.Run`, which builds the inputs once, evaluates any number of
intervention variants (stacked K to a forward pass) and caches each value by variant.
"""
