"""Draws deploy/grafana/keel-dashboard.json from a real Prometheus's answers, for the README's
picture: Grafana itself cannot be installed here (not in Debian, PyPI or npm). ``snapshot.py``
next to this package runs the whole thing; docs/observability.md says what the picture is."""
