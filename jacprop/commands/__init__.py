"""One module per command: a frozen spec of its options, ``prepare(spec) -> Plan`` and
``run(plan) -> Outcome`` of plain data (``common`` says how).  The CLI builds the specs,
picks the runner (here, or ``cluster`` on Dask) and shows the outcome."""
