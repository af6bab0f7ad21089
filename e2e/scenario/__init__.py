"""Incident scenarios as data: one YAML file per incident, run end to end on the local world."""
