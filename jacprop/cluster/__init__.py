"""``--engine dask``: the commands' own plans run over partitions of the inputs on a Dask
cluster (``runner``), with the same output as the local run."""
