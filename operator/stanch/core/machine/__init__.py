"""The mitigation state machine: a pure reducer from (state, observation) to (state, effects)."""
