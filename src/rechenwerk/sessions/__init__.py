"""Interactive sessions: JupyterLab on a job's GPUs, opened through the portal."""
