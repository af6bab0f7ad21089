"""What ``kubectl stanch`` shows and builds, as pure functions: the Incident view, the tables of
``get``, a Mitigation made from a hypothesis' suggestion, a Mitigation's audit in time order."""
