"""Contact imports (JSON, CSV upload, CSV from a URL) and exports, on top of the jobs of ``app.bgjobs``."""
