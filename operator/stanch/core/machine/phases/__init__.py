"""The reducer's handlers, one module per phase (see :func:`stanch.core.machine.reducer.reduce`)."""
