"""Rows in and results out: the CSV reader (``reader``), the reader of what ``jacobian``
wrote (``readback``), the writers of the data formats with one atomic-output rule
(``writers``), and the small matrix files (``matrices``).  Nothing here knows a model."""
