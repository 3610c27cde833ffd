"""API routes: jobs and health."""
