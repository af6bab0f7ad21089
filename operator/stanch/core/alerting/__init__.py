"""Alertmanager → Incident, the pure part: the webhook payload's model, the mapping of an alert's
labels to a target, and the plan that turns a notification into one Incident per alert group.

The HTTP receiver (``stanch.adapters.alert_receiver``) and the writes (``stanch.wiring.alerts``)
only carry these decisions out.
"""
