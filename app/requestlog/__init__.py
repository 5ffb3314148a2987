"""The request log as the dashboard shows it: every authenticated API request of the organization."""
