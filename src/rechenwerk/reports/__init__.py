"""Usage reports (GPU-hours, utilisation, waiting times, energy and CO2) for the portal,
the API (``/api/v1/reports``) and the CLI (``rechenwerk report``)."""
